"""Plugins: a task and a scorer added without editing toxbench, by an --include-path file or an entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toxbench.cli import main
from toxbench.registry import SCORERS, TASKS, PluginError, Registry, include

PLUGIN = Path(__file__).parent / "plugins" / "exclaim.py"


def toxbench(*args: str):
    return CliRunner().invoke(main, list(args))


def test_an_include_file_is_listed_and_runs_end_to_end(micro_organism, tmp_path) -> None:
    listed = toxbench("ls", "tasks", "--include-path", str(PLUGIN))
    assert (
        listed.exit_code == 0
        and "exclamations" in listed.output
        and "[module toxbench_include_" in listed.output
    )
    out = tmp_path / "out"
    result = toxbench(
        "run",
        "--include-path",
        str(PLUGIN),
        "--model",
        "organism-micro",
        "--aligned",
        "none",
        "--tasks",
        "exclamations,elicitation",
        "--scorer",
        "exclaim",
        "--scorer-args",
        "weight=20",
        "--task-args",
        "exclamations.n_prompts=2",
        "--limit",
        "4",
        "--output-path",
        str(out),
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"]["exclamations"]["config"] == {"n_prompts": 2}
    assert 0 <= results["tasks"]["exclamations"]["metrics"]["base"]["exclaim"]["value"] <= 1
    assert results["scorer"]["fingerprint"] == "exclaim-20.0"  # the option reached the plugin's scorer


def test_task_options_from_the_command_line(micro_organism, tmp_path) -> None:
    out = tmp_path / "out"
    ok = toxbench(
        "run",
        "--model",
        "organism-micro",
        "--aligned",
        "none",
        "--tasks",
        "elicitation",
        "--limit",
        "3",
        "--task-args",
        "elicitation.perplexity_window=16",
        "--output-path",
        str(out),
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads((out / "results.json").read_text())["tasks"]["elicitation"]["config"][
        "perplexity_window"
    ] == {"base": 16}
    bad = toxbench("run", "--model", "organism-micro", "--task-args", "elicitation.perplexity_windw=16")
    assert bad.exit_code == 2 and "did you mean 'perplexity_window'" in bad.output
    malformed = toxbench("run", "--model", "organism-micro", "--task-args", "perplexity_window=16")
    assert malformed.exit_code == 2 and "TASK.KEY=VALUE" in malformed.output


def test_an_entry_point_of_an_installed_package(tmp_path, monkeypatch) -> None:
    """A package's dist-info with an entry_points.txt, as pip installs it, on sys.path."""
    site = tmp_path / "site"
    (site / "toy_plugin").mkdir(parents=True)
    (site / "toy_plugin" / "__init__.py").write_text(
        "from toxbench.scorers.base import Scorer\n"
        "class Quiet(Scorer):\n    name = 'quiet'\n    def __init__(self, device=None): pass\n"
        "    def fingerprint(self): return 'quiet-1'\n    def score(self, texts): return [0.0 for _ in texts]\n"
    )
    dist = site / "toy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[toxbench.scorers]\nquiet = toy_plugin:Quiet\nbroken = toy_plugin.missing:X\n"
    )
    monkeypatch.syspath_prepend(str(site))
    registry = Registry("scorer")
    assert registry.group == "toxbench.scorers"
    assert {"quiet", "broken"} <= set(registry.names())
    assert registry.get("quiet")().score(["a"]) == [0.0]
    assert "toy-plugin" in registry.origins["quiet"]
    with pytest.raises(
        PluginError, match=r"scorer 'broken' from entry point of toy-plugin cannot be imported"
    ):
        registry.get("broken")


def test_clashes_and_failing_plugin_files_name_the_plugin(tmp_path) -> None:
    clash = tmp_path / "clash.py"
    clash.write_text(
        "from toxbench.registry import register_task\n"
        "@register_task('elicitation')\nclass Mine:\n    '''not the real one'''\n"
    )
    with pytest.raises(
        PluginError, match=r"task 'elicitation' is registered twice: by toxbench .* and by module"
    ):
        include([clash])
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_package_anywhere\n")
    with pytest.raises(PluginError, match=r"plugin file .*broken.py' failed to load: ModuleNotFoundError"):
        include([broken])
    result = toxbench("ls", "tasks", "--include-path", str(broken))
    assert result.exit_code == 2 and "broken.py" in result.output
    assert "elicitation" in TASKS and TASKS.origins["elicitation"] == "toxbench"
    assert "exclaim" not in SCORERS or SCORERS.origins["exclaim"].startswith("module")


def test_a_backend_without_hooks_gets_hook_passes_on_a_hooks_capable_one(micro_organism, tmp_path) -> None:
    """A plugin backend that runs its own copy of the weights (as vLLM does) declares runs_hooks = False:
    patched variants and attribution's capture then run where hooks are seen, not silently unpatched."""
    import copy

    from toxbench.backends.hf import HFBackend
    from toxbench.registry import BACKENDS
    from toxbench.runner import RunConfig, run

    class CopyBackend(HFBackend):
        name = "copy"
        runs_hooks = False

        @classmethod
        def for_model(cls, model, config):
            return cls(copy.deepcopy(model.model), model.tokenizer, batch_size=config.batch_size)

    BACKENDS.register(
        "copy-weights", CopyBackend, "test: a copy of the weights, out of reach of hooks", origin="test"
    )
    try:
        common = dict(
            model="organism-micro",
            aligned="organism-micro:dpo",
            tasks=["ablation"],
            limit=10,
            task_options={
                "ablation": {
                    "top_k": [1],
                    "positive_k": [1],
                    "alpha_grid": (1.0,),
                    "refine_steps": 0,
                    "sweep_toxicity": False,
                }
            },
        )
        hooks = run(RunConfig(**common, output_path=tmp_path / "hf"))
        copied = run(RunConfig(**common, backend="copy-weights", output_path=tmp_path / "copy"))
    finally:
        BACKENDS.entries.pop("copy-weights")
    rows = {v["name"]: v for v in hooks["tasks"]["ablation"]["variants"]}
    rows_copy = {v["name"]: v for v in copied["tasks"]["ablation"]["variants"]}
    patched = [n for n in rows if n.startswith("patch-") and rows[n]["n_neurons"] > 0]
    assert patched
    for name in patched:
        assert rows_copy[name]["toxicity"]["value"] == pytest.approx(rows[name]["toxicity"]["value"])
        assert rows_copy[name]["perplexity"]["value"] == pytest.approx(rows[name]["perplexity"]["value"])
