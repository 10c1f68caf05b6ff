"""The vLLM backend hands its parallelism and memory options to ``vllm.LLM`` (a stand-in
engine records them: the real one needs several accelerators to take them)."""

from __future__ import annotations

import sys
import types

import pytest


class RecordingLLM:
    seen: dict = {}

    def __init__(self, **kwargs) -> None:
        RecordingLLM.seen = kwargs
        config = types.SimpleNamespace(max_model_len=kwargs.get("max_model_len") or 128)
        self.llm_engine = types.SimpleNamespace(model_config=config)


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = RecordingLLM
    vllm.__version__ = "0.0-test"
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: False)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    return RecordingLLM


def test_parallelism_and_memory_options_reach_the_engine(fake_vllm, tmp_path) -> None:
    from harness.backends.vllm import VLLMBackend

    VLLMBackend(
        tmp_path,
        tokenizer=None,
        tensor_parallel_size=4,
        pipeline_parallel_size=2,
        data_parallel_size=2,
        max_model_len=4096,
        gpu_memory_utilization=0.85,
        enforce_eager=True,
    )
    seen = fake_vllm.seen
    assert (seen["tensor_parallel_size"], seen["pipeline_parallel_size"], seen["data_parallel_size"]) == (
        4,
        2,
        2,
    )
    assert (seen["max_model_len"], seen["gpu_memory_utilization"], seen["enforce_eager"]) == (
        4096,
        0.85,
        True,
    )
    assert seen["trust_remote_code"] is False


def test_one_engine_replica_leaves_data_parallelism_to_vllm_defaults(fake_vllm, tmp_path) -> None:
    from harness.backends.vllm import VLLMBackend

    VLLMBackend(tmp_path, tokenizer=None)
    assert "data_parallel_size" not in fake_vllm.seen
    assert fake_vllm.seen["gpu_memory_utilization"] == 0.9  # an accelerator's default
