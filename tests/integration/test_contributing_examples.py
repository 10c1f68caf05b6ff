"""CONTRIBUTING.md's worked examples run as written: each Python block registers what it says;
the registered method, backend, protocol, executor and logger work through toxbench's own commands;
the Python API's example runs and says what it says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[2] / "CONTRIBUTING.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def api_blocks() -> list[str]:
    """The blocks that run evaluations (the Python API's), rather than register plugins."""
    return [b for b in python_blocks() if "toxbench.evaluate(" in b]


@pytest.fixture
def examples(monkeypatch) -> None:
    """Every example block executed as a module of its own, as a user's plugin file would be."""
    import sys
    import types

    blocks = [b for b in python_blocks() if b not in api_blocks()]
    assert len(blocks) >= 8
    for i, block in enumerate(blocks):
        module = types.ModuleType(f"contributing_example_{i}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(block, f"CONTRIBUTING.md block {i}", "exec"), module.__dict__)


def test_every_example_registers_its_entry(examples) -> None:
    from toxbench.models import ModelSpec
    from toxbench.registry import BACKENDS, EXECUTORS, LOGGERS, METHODS, MODELS, PROTOCOLS, SCORERS, TASKS

    for registry, name in (
        (MODELS, "lab-llama"),
        (MODELS, "lab-local"),
        (MODELS, "lab-run"),
        (SCORERS, "exclaim"),
        (TASKS, "exclamations"),
        (BACKENDS, "fp16-copy"),
        (METHODS, "shrink-mlp-out"),
        (PROTOCOLS, "paper-64"),
        (EXECUTORS, "threads"),
        (LOGGERS, "jsonl"),
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


def test_the_executor_and_logger_examples_run(examples, micro_organism, tmp_path) -> None:
    from toxbench.api import evaluate

    common = dict(model="organism-micro", aligned="organism-micro:dpo", tasks=["elicitation"], limit=6)
    local = evaluate(**common, output_path=tmp_path / "local")
    threaded = evaluate(
        **common,
        executor="threads",
        executor_args={"workers": 3},
        no_cache=True,  # scored again, on the threads
        output_path=tmp_path / "threads",
        log_to=["jsonl"],
        logger_args={"jsonl": {"path": str(tmp_path / "all.jsonl")}},
    )
    assert threaded.metrics == local.metrics
    assert threaded.logged == {"jsonl": str(tmp_path / "all.jsonl")}
    (line,) = (tmp_path / "all.jsonl").read_text().splitlines()
    logged = json.loads(line)
    assert logged["elicitation/aligned/toxicity"] == threaded.metric("elicitation", "toxicity")


def test_the_python_api_example_runs(micro_organism, tmp_path, monkeypatch) -> None:
    (block,) = api_blocks()
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "CONTRIBUTING.md, the Python API", "exec"), scope)
    results, again = scope["results"], scope["again"]
    assert results.status == "complete" and (tmp_path / "runs" / "api-example" / "config.yaml").is_file()
    assert scope["drop"] > 0  # the organism's twin is less toxic than its base
    assert len(scope["continuations"]) == 12
    assert set(scope["table"].columns) >= {"task", "role", "metric", "value", "ci_low", "ci_high"}
    assert (
        again.metrics == results.metrics
        and again.output_path.resolve() == tmp_path / "runs" / "api-example-2"
    )
