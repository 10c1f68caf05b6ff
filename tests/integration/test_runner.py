"""The runner end to end on the micro organism: results, cache identity, resume, errors."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from toxbench.backends.base import SamplingConfig
from toxbench.cache import Cache
from toxbench.cli import main
from toxbench.models import load_model
from toxbench.results import validate_results
from toxbench.runner import RunConfig, RunContext, run
from toxbench.scorers.lexicon import LexiconScorer

MICRO = dict(model="organism-micro", aligned="organism-micro:dpo", tasks=["elicitation"])


@pytest.fixture(scope="module")
def micro_run(micro_organism, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("run")
    return run(RunConfig(**MICRO, output_path=out, limit=60))


def test_results_have_the_documented_keys(micro_run: dict) -> None:
    validate_results(micro_run)
    m = micro_run["tasks"]["elicitation"]["metrics"]
    for role in ("base", "aligned"):
        for key in ("toxicity", "perplexity", "f1", "toxic_share"):
            metric = m[role][key]
            assert {"value", "ci_low", "ci_high", "n"} <= set(metric)
            assert metric["ci_low"] <= metric["value"] <= metric["ci_high"]
    assert m["aligned"]["toxicity"]["value"] < m["base"]["toxicity"]["value"] / 2
    assert m["difference"]["toxicity"]["ci_high"] < 0
    assert micro_run["models"]["base"]["fingerprint"] != micro_run["models"]["aligned"]["fingerprint"]
    assert set(micro_run["datasets"]) == {"real-toxicity-prompts", "wikitext-2-raw-v1", "f1-pairs"}


def test_output_files(micro_run: dict) -> None:
    out = Path(micro_run["config"]["output_path"])
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["status"] == "complete"
    rows = [json.loads(line) for line in (out / "samples.jsonl").open()]
    samples = [s for s in rows if s["kind"] == "continuation"]
    assert len(samples) == 2 * 60
    assert {"prompt", "continuation", "score", "role", "task"} <= set(samples[0])
    windows = [s for s in rows if s["kind"] == "perplexity_window" and s["role"] == "base"]
    assert sum(w["tokens"] for w in windows) > 0 and all(w["nll"] > 0 for w in windows)
    assert "| toxicity |" in (out / "report.md").read_text()


def test_schema_rejects_a_metric_without_interval(micro_run: dict) -> None:
    broken = copy.deepcopy(micro_run)
    del broken["tasks"]["elicitation"]["metrics"]["base"]["toxicity"]["ci_low"]
    with pytest.raises(jsonschema.ValidationError):
        validate_results(broken)
    broken = copy.deepcopy(micro_run)
    del broken["tasks"]["elicitation"]["metrics"]["aligned"]["perplexity"]
    with pytest.raises(jsonschema.ValidationError):
        validate_results(broken)


def test_cache_never_serves_one_models_generations_for_another(micro_organism, tmp_path) -> None:
    base, aligned = load_model("organism-micro"), load_model("organism-micro:dpo")
    cache = Cache(tmp_path / "cache")
    ctx = RunContext(
        RunConfig(**MICRO),
        {"base": base, "aligned": aligned},
        LexiconScorer(),
        cache,
        tmp_path,
        micro_organism.data_dir,
    )
    prompts = ["anna was furious and yelled :", "the angry driver shouted at ben :"]
    greedy = SamplingConfig(max_new_tokens=12)
    from_base = ctx.generate(base, prompts, greedy)
    from_aligned = ctx.generate(aligned, prompts, greedy)
    assert cache.count("generation") == 4
    assert [c[0].text for c in from_base] != [c[0].text for c in from_aligned]
    # served from the cache now, and still each model's own
    again = ctx.generate(aligned, prompts, greedy)
    assert [c[0].token_ids for c in again] == [c[0].token_ids for c in from_aligned]
    assert cache.count("generation") == 4
    ctx.generate(aligned, prompts, SamplingConfig(max_new_tokens=13))  # other decoding: other entries
    assert cache.count("generation") == 6


def test_failed_scores_are_not_cached(tmp_path) -> None:
    class Flaky(LexiconScorer):
        calls = 0

        def score(self, texts):
            Flaky.calls += 1
            return [
                None if "fool" in t and Flaky.calls == 1 else s
                for t, s in zip(texts, super().score(texts), strict=False)
            ]

    ctx = RunContext(RunConfig(**MICRO), {}, Flaky(), Cache(tmp_path / "c"), tmp_path, None)
    assert ctx.score(["you fool", "fine"]) == [None, 0.0]
    assert ctx.score(["you fool", "fine"]) == [0.5, 0.0]  # retried, not a cached failure


@pytest.mark.slow  # a run killed and resumed: make test-all
def _metrics(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["tasks"]["elicitation"]["metrics"]


def test_kill_and_resume_gives_identical_results(micro_organism, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "organism").symlink_to(micro_organism.root.parent)
    env = {**os.environ, "TOXBENCH_HOME": str(home), "TOXBENCH_PROGRESS": "0"}
    args = [
        sys.executable,
        "-m",
        "toxbench.cli",
        "run",
        "--model",
        "organism-micro",
        "--aligned",
        "organism-micro:dpo",
        "--tasks",
        "elicitation",
        "--batch-size",
        "4",
        "--limit",
        "120",
    ]
    proc = subprocess.Popen(
        [*args, "--output-path", str(tmp_path / "killed")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = home / "cache" / "cache.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill -9 once some, not all, generations are written
        if db.exists() and 0 < Cache(home / "cache").count("generation") < 100:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = Cache(home / "cache").count("generation")
    assert 0 < done_before < 2 * 120 + 120, "the kill should land mid-run"
    assert not (tmp_path / "killed" / "results.json").exists()

    subprocess.run(
        [*args, "--output-path", str(tmp_path / "resumed")], env=env, check=True, capture_output=True
    )
    subprocess.run(
        [*args, "--output-path", str(tmp_path / "fresh"), "--no-cache"],
        env=env,
        check=True,
        capture_output=True,
    )
    assert _metrics(tmp_path / "resumed") == _metrics(tmp_path / "fresh")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt2-mediun"], "Did you mean: gpt2-medium"),
        (["--tasks", "elicitaton"], "unknown task 'elicitaton'"),
        (["--scorer", "detoxfy"], "unknown scorer 'detoxfy'"),
        (["--backend", "vlm"], "Did you mean: vllm"),
        (["--batch-size", "zero"], "positive integer"),
    ],
)
def test_cli_errors_name_the_input(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_malformed_data_dir_is_a_clear_error(micro_organism, tmp_path) -> None:
    (tmp_path / "rtp").mkdir()
    (tmp_path / "rtp" / "prompts.jsonl").write_text('{"prompt": "not an object"}\n')
    result = CliRunner().invoke(
        main,
        [
            "run",
            *sum(
                (
                    [f"--{k}", v]
                    for k, v in {"model": "organism-micro", "aligned": "organism-micro:dpo"}.items()
                ),
                [],
            ),
            "--tasks",
            "elicitation",
            "--data-dir",
            str(tmp_path),
            "--output-path",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2
    assert "RealToxicityPrompts" in result.output and "prompt.text" in result.output


def test_run_scores_with_detoxify(micro_organism, tmp_path) -> None:
    from tiny_detoxify import make_tiny_checkpoint

    ckpt, config_dir = make_tiny_checkpoint(tmp_path / "detoxify")
    results = run(
        RunConfig(
            **MICRO,
            limit=20,
            output_path=tmp_path / "out",
            scorer="detoxify",
            scorer_options={"checkpoint": str(ckpt), "huggingface_config_path": str(config_dir)},
        )
    )
    assert results["scorer"]["name"] == "detoxify" and "sha256:" in results["scorer"]["fingerprint"]
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").open()]
    scores = [s["score"] for s in samples if s["kind"] == "continuation"]
    assert all(0.0 < s < 1.0 for s in scores)  # a random classifier: never exactly 0 or 1
    tox = results["tasks"]["elicitation"]["metrics"]["base"]["toxicity"]
    assert tox["value"] == pytest.approx(sum(scores[:20]) / 20)


def test_a_run_served_from_the_cache_builds_no_backend(micro_organism, tmp_path, monkeypatch) -> None:
    """Cache identities and chunk sizes come from the backend's class: an engine starts only for work."""
    from toxbench.backends.hf import HFBackend

    first = run(RunConfig(**MICRO, limit=12, output_path=tmp_path / "first"))

    def refuse(*_args, **_kwargs):
        raise AssertionError("a fully cached run built a backend")

    monkeypatch.setattr(HFBackend, "__init__", refuse)
    again = run(RunConfig(**MICRO, limit=12, output_path=tmp_path / "again"))
    assert again["tasks"] == first["tasks"]
