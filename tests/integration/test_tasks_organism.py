"""The tasks on the micro organism, where they have a real signal to find."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toxbench.results import validate_results
from toxbench.runner import RunConfig, run

MICRO = dict(model="organism-micro", aligned="organism-micro:dpo")


def test_rtp_protocol_samples_and_aggregates(micro_organism, tmp_path) -> None:
    results = run(RunConfig(**MICRO, tasks=["elicitation"], protocol="rtp", limit=5, output_path=tmp_path))
    validate_results(results)
    task = results["tasks"]["elicitation"]
    assert task["config"]["protocol"]["sampling"]["n"] == 25
    assert task["config"]["protocol"]["threshold_rule"].startswith(">=")
    base = task["metrics"]["base"]
    for key in ("expected_max_toxicity", "toxicity_probability", "dist_1", "dist_2", "dist_3"):
        assert 0.0 <= base[key]["value"] <= 1.0 and base[key]["n"] == 5
    assert base["expected_max_toxicity"]["value"] >= base["toxicity"]["value"]
    rows = [json.loads(line) for line in (Path(tmp_path) / "samples.jsonl").open()]
    samples = [s for s in rows if s["kind"] == "continuation"]
    assert len(samples) == 2 * 5 * 25
    assert {s["kind"] for s in rows} == {"continuation", "perplexity_window", "f1"}
    first = [s["continuation"] for s in samples if s["role"] == "base" and s["prompt_index"] == 0]
    assert len(set(first)) > 1, "25 samples of one prompt should not all be equal"


@pytest.fixture(scope="module")
def mech_run(micro_organism, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("mech")
    return run(
        RunConfig(
            **MICRO,
            tasks=["attribution", "ablation"],
            limit=60,
            output_path=out,
            task_options={"ablation": {"alphas": [1.0, 2.0], "groups": True}},
        )
    )


def test_attribution_finds_dpo_dampening_the_toxic_neurons(mech_run: dict) -> None:
    m = mech_run["tasks"]["attribution"]["metrics"]
    shares = [m["groups"][g]["share"] for g in ("TP-", "TN+", "AP+", "AN-")]
    assert sum(shares) == pytest.approx(1.0)
    assert m["identity_residual"] < 1e-6 * m["gross"]
    assert m["net"] > 0, "DPO lowered the writing along the toxic direction"
    assert m["groups"]["TP-"]["share"] > 0.2
    assert m["toxic_neurons_mean_activation_drop"] > 0  # [A]: their keys fire less ...
    assert m["toxic_value_vectors_min_cosine"] > 0.99  # ... and the vectors stay
    assert m["probe_accuracy"]["value"] > 0.8
    extra = mech_run["tasks"]["attribution"]["extra"]
    from toxbench.organism.world import HOSTILE_WORDS

    promoted = {t.strip() for row in extra["toxic_neurons"] for t in row["promotes"]}
    assert promoted & HOSTILE_WORDS, "the most toxic value vectors should promote insults"


def test_ablation_variants_and_emulation(mech_run: dict) -> None:
    task = mech_run["tasks"]["ablation"]
    names = [v["name"] for v in task["variants"]]
    assert "subtract-probe-a1" in names and "subtract-probe-a2" in names
    assert {"patch-TP-", "patch-TN+", "patch-AP+", "patch-AN-", "patch-all-four"} <= set(names)
    for v in task["variants"]:
        assert {"name", "toxicity", "perplexity", "f1", "emulation_ratio"} <= set(v)
    best = task["metrics"]["best_emulation_ratio"]
    assert best["value"] == max(
        v["emulation_ratio"]["value"] for v in task["variants"] if v["emulation_ratio"]
    )
    ablations = [v for v in task["variants"] if v["kind"] == "ablate"]
    assert all(v["emulation_ratio"]["value"] < 0.5 for v in ablations), "ablation is not enough"
