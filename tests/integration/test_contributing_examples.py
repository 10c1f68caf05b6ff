"""CONTRIBUTING.md's worked examples run as written: each Python block registers what it says,
and the registered method, backend and protocol work through toxbench's own commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[2] / "CONTRIBUTING.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


@pytest.fixture
def examples(monkeypatch) -> None:
    """Every example block executed as a module of its own, as a user's plugin file would be."""
    import sys
    import types

    blocks = python_blocks()
    assert len(blocks) >= 6
    for i, block in enumerate(blocks):
        module = types.ModuleType(f"contributing_example_{i}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(block, f"CONTRIBUTING.md block {i}", "exec"), module.__dict__)


def test_every_example_registers_its_entry(examples) -> None:
    from toxbench.models import ModelSpec
    from toxbench.registry import BACKENDS, METHODS, MODELS, PROTOCOLS, SCORERS, TASKS

    for registry, name in (
        (MODELS, "lab-llama"),
        (MODELS, "lab-local"),
        (MODELS, "lab-run"),
        (SCORERS, "exclaim"),
        (TASKS, "exclamations"),
        (BACKENDS, "fp16-copy"),
        (METHODS, "shrink-mlp-out"),
        (PROTOCOLS, "paper-64"),
    ):
        assert name in registry, name
    assert ModelSpec.parse("lab-llama").source().revision == "3f2a9c1"
    assert ModelSpec.parse("lab-llama").load_args() == {"dtype": "bfloat16"}
    assert ModelSpec.parse("lab-run", {"run": 18}).source().target == "run-18"


def test_the_method_backend_and_protocol_examples_run(examples, micro_organism, tmp_path) -> None:
    import torch

    from toxbench.baselines.base import align
    from toxbench.mech.neurons import neuron_adapter
    from toxbench.models import load_model
    from toxbench.runner import RunConfig, run

    card = align(
        "shrink-mlp-out",
        "organism-micro",
        None,
        tmp_path / "shrink",
        {"factor": 0.5},
        device="cpu",
        show_progress=False,
    )
    assert card["training"] == {"factor": 0.5}
    base, shrunk = load_model("organism-micro", "cpu"), load_model(str(tmp_path / "shrink"), "cpu")
    a, b = neuron_adapter(base.model), neuron_adapter(shrunk.model)
    assert torch.allclose(b.values(0), 0.5 * a.values(0))
    results = run(
        RunConfig(
            model="organism-micro",
            aligned=str(tmp_path / "shrink"),
            tasks=["elicitation"],
            backend="fp16-copy",
            protocol="paper-64",
            limit=4,
            output_path=tmp_path / "run",
            dtype="float32",
        )
    )
    assert results["backend"] == "fp16-copy"
    assert results["tasks"]["elicitation"]["config"]["protocol"]["prompt_tokens"] == 64
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "complete"
