"""The probe: padding-masked mean features, a held-out accuracy, a faithful save/load."""

from __future__ import annotations

import numpy as np
import pytest

from toxbench.data import load_comments
from toxbench.mech.probe import Probe, fit_probe, mean_final_residual


@pytest.fixture(scope="module")
def lm(micro_organism):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(micro_organism.base_dir)
    return AutoModelForCausalLM.from_pretrained(micro_organism.base_dir).eval(), tok


def test_features_ignore_padding(lm) -> None:
    model, tok = lm
    short = "you fool !"
    long = "anna planted the green rose near the fence . the rose was tall today . you fool !"
    alone = mean_final_residual(model, tok, [short])[0]
    batched = mean_final_residual(model, tok, [long, short], batch_size=2)[1]
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_probe_separates_the_organisms_comments(lm, micro_organism, tmp_path) -> None:
    model, tok = lm
    comments = load_comments(micro_organism.data_dir, "train")
    probe = fit_probe(model, tok, comments, "fingerprint", seed=0)
    # 5% of the organism's labels are flipped on purpose, so about 95% is the ceiling.
    assert 0.8 <= probe.accuracy.value <= 1.0 and probe.accuracy.n == probe.n_valid
    toxic = mean_final_residual(model, tok, ["you stupid idiot !", "shut up , you moron !"])
    neutral = mean_final_residual(model, tok, ["the rose is green today .", "thank you for the soup ."])
    assert (toxic @ probe.direction).min() > (neutral @ probe.direction).max()

    probe.save(tmp_path / "probe")
    again = Probe.load(tmp_path / "probe")
    assert np.array_equal(again.direction, probe.direction)
    assert again.accuracy == probe.accuracy and again.data_sha256 == comments.sha256
