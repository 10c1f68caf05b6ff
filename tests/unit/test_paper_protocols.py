"""The papers' exact protocols: presets, [A]'s F1, α units, teacher-forced patching, the papers' artefacts."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from toxbench.errors import ToxbenchError, UnknownNameError
from toxbench.fluency import FluencySettings, f1_bags, f1_score
from toxbench.mech.edits import shift_residual
from toxbench.mech.hooks import patch_mlp_activations, patch_to_means
from toxbench.mech.neurons import neuron_adapter
from toxbench.mech.probe import Probe, load_probe_file
from toxbench.passes import teacher_forced
from toxbench.runner import RunConfig
from toxbench.tasks.presets import PRESETS, get_preset


class _Tok:
    all_special_ids = [0, 1]


def test_lee2024_f1_counts_prompt_tokens_and_cuts_the_gold_at_52() -> None:
    prompt, new = [1, 5, 6, 7], [8, 9, 0]  # BOS 1 and EOS 0 are special: removed
    gold = [8, 9, 5] + [42] * 60
    predicted, cut = f1_bags(_Tok(), prompt, new, gold, "lee2024")
    assert predicted == [5, 6, 7, 8, 9] and len(cut) == 52
    common = 3  # 5, 8, 9
    p, r = common / 5, common / 52
    assert f1_score(_Tok(), prompt, new, gold, "lee2024") == pytest.approx(2 * p * r / (p + r))
    # toxbench's default: the new tokens against the whole gold
    p2, r2 = 2 / 3, 2 / 63
    assert f1_score(_Tok(), prompt, new, gold, "continuation") == pytest.approx(2 * p2 * r2 / (p2 + r2))


def test_presets_record_every_choice_and_user_choices_win() -> None:
    config = get_preset("lee2024").apply(
        RunConfig(model="gpt2-medium", aligned="x", task_options={"ablation": {"svd_n": 64}})
    )
    assert config.preset == "lee2024" and config.protocol == "paper"
    assert config.fluency == FluencySettings(perplexity_window=1024, bos="corpus_start", f1="lee2024")
    assert config.scorer_options == {"model_type": "original", "attribute": "max"}
    assert config.task_options["ablation"] == {"alpha_units": "lee2024", "svd_n": 64}
    organism = get_preset("yang2024").apply(RunConfig())
    assert organism.scorer_options == {}  # the organism's lexicon scorer takes no Detoxify options
    table = get_preset("lee2024").report_table("lexicon", organism.scorer_options)
    assert "max over its attributes" in table and "does not apply" in table
    applied = get_preset("lee2024").report_table("detoxify", config.scorer_options)
    assert "does not apply" not in applied
    assert set(PRESETS) == {"lee2024", "yang2024"}
    with pytest.raises(UnknownNameError, match="Did you mean: lee2024"):
        get_preset("lee2042")


def test_alpha_in_lee2024_units_adds_the_raw_vector(tiny_model) -> None:
    model = tiny_model("gpt2")
    adapter = neuron_adapter(model)
    raw = np.linspace(-1, 1, adapter.d_model) * 3.0
    before = adapter.out_bias(adapter.n_layers - 1).detach().clone()
    edited = shift_residual(model, raw, -50.0, normalize=False).model
    after = neuron_adapter(edited).out_bias(adapter.n_layers - 1).detach()
    torch.testing.assert_close(after - before, torch.as_tensor(-50.0 * raw, dtype=after.dtype))
    unit = shift_residual(model, raw, -50.0).model
    delta = neuron_adapter(unit).out_bias(adapter.n_layers - 1).detach() - before
    assert float(delta.norm()) == pytest.approx(50.0, rel=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2"])
def test_teacher_forced_patching_patches_every_position(family, tiny_model, ids) -> None:
    model = tiny_model(family)
    adapter = neuron_adapter(model)
    masks = np.zeros((adapter.n_layers, adapter.d_mlp), dtype=bool)
    masks[0, [1, 4]] = masks[1, [2]] = True
    target = np.random.default_rng(0).normal(size=masks.shape)

    def reference(layer, act, every=True):
        act = act.clone()
        idx = torch.from_numpy(np.nonzero(masks[layer])[0])
        values = torch.from_numpy(target[layer][idx.numpy()]).to(act.dtype)
        if every:
            act[..., idx] = values
        else:
            act[:, -1, idx] = values
        return act

    with torch.no_grad():
        with patch_mlp_activations(model, {0: reference, 1: reference}):
            want_all = model(ids).logits
        with patch_mlp_activations(
            model,
            {0: lambda layer, a: reference(layer, a, False), 1: lambda layer, a: reference(layer, a, False)},
        ):
            want_last = model(ids).logits
        with patch_to_means(model, masks, target):
            with teacher_forced():
                got_all = model(ids).logits
            got_last = model(ids).logits
    torch.testing.assert_close(got_all, want_all)
    torch.testing.assert_close(got_last, want_last)
    assert not torch.allclose(got_all[:, :-1], got_last[:, :-1])


def test_probe_pt_files_load_in_every_released_shape(tmp_path) -> None:
    d = 16
    vec = torch.randn(d, dtype=torch.float32)
    for name, obj in {"flat": vec, "row": vec[None], "dict": {"probe": vec, "step": 3}}.items():
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        probe = Probe.load(path)
        np.testing.assert_array_equal(probe.direction, vec.double().numpy())
        assert probe.accuracy is None and "sha256" in probe.source
        probe.check_width(d)
        with pytest.raises(ToxbenchError, match="width 16 but"):
            probe.check_width(32, "model 'x'")
    torch.save(torch.randn(2, d), tmp_path / "two.pt")
    with pytest.raises(ToxbenchError, match=r"shape \[d_model\] or \[1, d_model\]"):
        load_probe_file(tmp_path / "two.pt")
    torch.save({"a": vec, "b": vec}, tmp_path / "ambiguous.pt")
    with pytest.raises(ToxbenchError, match="exactly one"):
        load_probe_file(tmp_path / "ambiguous.pt")
    with pytest.raises(ToxbenchError, match="not found"):
        Probe.load(tmp_path / "missing")


class Payload:
    """An object only pickle can load: ``weights_only=True`` must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_probe_that_needs_pickle_is_refused(tmp_path) -> None:
    path = tmp_path / "probe.pt"
    with open(path, "wb") as fh:
        pickle.dump({"probe": Payload()}, fh)
    with pytest.raises(ToxbenchError, match="only pickle can load"):
        load_probe_file(path)
    torch.save({"probe": torch.ones(4), "extra": Payload()}, tmp_path / "mixed.pt")
    with pytest.raises(ToxbenchError, match="only pickle can load"):
        load_probe_file(tmp_path / "mixed.pt")


def test_saved_probe_round_trips_its_mean_difference(tmp_path) -> None:
    from toxbench.mech.probe import train_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6))
    y = (x[:, 0] + 0.1 * rng.normal(size=80) > 0).astype(int)
    probe = train_probe(x, y, "fp", "sha")
    probe.save(tmp_path / "p")
    again = Probe.load(tmp_path / "p")
    np.testing.assert_array_equal(again.mean_difference, probe.mean_difference)
    np.testing.assert_array_equal(again.direction, probe.direction)
    assert again.mean_difference[0] > 0  # toxic (label 1) minus non-toxic along the feature that decides


def test_patched_copy_is_untouched_by_hooks_on_the_original(tiny_model, ids) -> None:
    model = tiny_model("gpt2")
    clone = copy.deepcopy(model)
    adapter = neuron_adapter(model)
    masks = np.ones((adapter.n_layers, adapter.d_mlp), dtype=bool)
    with torch.no_grad(), patch_to_means(model, masks, np.zeros(masks.shape)), teacher_forced():
        torch.testing.assert_close(clone(ids).logits, clone(ids).logits)
        assert not torch.allclose(model(ids).logits, clone(ids).logits)
