"""`toxbench align profs` on the micro organism: the edit is exactly ProFS's projection of the edited layers'
value vectors (nothing else moves), it lowers toxicity, and a model without an MLP adapter is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend
from toxbench.baselines.base import CARD, align, load_pairs
from toxbench.baselines.profs import (
    PAPER_LAYERS,
    ProFSSettings,
    draw_pairs,
    layer_embeddings,
    project_out,
    toxic_subspace,
)
from toxbench.cli import main
from toxbench.errors import ToxbenchError
from toxbench.mech.neurons import neuron_adapter
from toxbench.models import load_model


@pytest.fixture(scope="module")
def base(micro_organism):
    return load_model("organism-micro", "cpu")


@pytest.fixture(scope="module")
def aligned(base, tmp_path_factory):
    """ProFS with its defaults (the paper's) on the micro organism: (card, folder)."""
    folder = tmp_path_factory.mktemp("profs") / "profs"
    card = align("profs", "organism-micro", "organism", folder, device="cpu", show_progress=False)
    return card, folder


def _subspaces(model, tokenizer, rows, layers: list[int], settings: ProFSSettings) -> dict[int, torch.Tensor]:
    """The toxic subspace of each layer, recomputed from the pairs the settings draw."""
    n = len(rows) if settings.n_pairs is None else min(settings.n_pairs, len(rows))
    pairs = draw_pairs(rows, n, settings.seed)
    good = layer_embeddings(model, tokenizer, [p["prompt"] + p["chosen"] for p in pairs], layers)
    bad = layer_embeddings(model, tokenizer, [p["prompt"] + p["rejected"] for p in pairs], layers)
    return {
        layer: toxic_subspace(bad[j], good[j], settings.k, settings.centre).basis
        for j, layer in enumerate(layers)
    }


def _check_exact_edit(base_model, saved_model, subspaces: dict[int, torch.Tensor]) -> None:
    """Edited layers: V' = (I - P) V, with no component left in the subspace; every other weight as it was."""
    before, after = neuron_adapter(base_model), neuron_adapter(saved_model)
    edited_params = set()
    for layer in range(before.n_layers):
        v0, v1 = before.values(layer).detach().double(), after.values(layer).detach().double()
        if layer in subspaces:
            basis = subspaces[layer]
            assert float(torch.linalg.norm(v0 @ basis) / torch.linalg.norm(v0)) > 0.05  # there was some
            assert float(torch.linalg.norm(v1 @ basis) / torch.linalg.norm(v1)) < 1e-6
            torch.testing.assert_close(v1, project_out(v0, basis), atol=1e-6, rtol=1e-6)
            edited_params.add(id(after.value_param(layer).param))
        else:
            assert torch.equal(v0, v1), f"layer {layer} is outside the range but changed"
    names = {n for n, p in saved_model.named_parameters() if id(p) in edited_params}
    assert len(names) == len(subspaces)
    base_state = base_model.state_dict()
    for name, tensor in saved_model.state_dict().items():
        if name not in names:
            assert torch.equal(tensor, base_state[name]), f"{name} changed"


def test_the_card_records_the_papers_defaults_and_the_pairs(aligned, base) -> None:
    card, folder = aligned
    assert json.loads((folder / CARD).read_text()) == json.loads(json.dumps(card))
    assert card["method"] == "profs" and card["kind"] == "edit"
    pairs = load_pairs("organism", base)
    assert card["data"]["sha256"] == pairs.sha256 and card["data"]["n_train"] == len(pairs.train)
    assert card["settings"] == {**card["settings"], "layers": PAPER_LAYERS, "k": 2, "n_pairs": 500}
    stats = card["training"]
    assert stats["layers"] == [1] and stats["k"] == 2  # the upper 58% of two layers: the last
    assert stats["n_pairs"] == min(500, len(pairs.train)) and stats["bias_projected"] is False
    assert [entry["layer"] for entry in stats["per_layer"]] == [1]
    assert 0 < stats["per_layer"][0]["value_change"] < 1


def test_the_edited_values_have_no_component_in_the_toxic_subspace(aligned, base) -> None:
    card, folder = aligned
    settings = ProFSSettings(**card["settings"])
    subspaces = _subspaces(base.model, base.tokenizer, load_pairs("organism", base).train, [1], settings)
    _check_exact_edit(base.model, load_model(str(folder), "cpu").model, subspaces)


def test_a_gated_mlp_is_edited_through_its_adapter(base, tmp_path) -> None:
    """A Llama (down_proj columns are the values, nn.Linear's [out, in] layout), every layer edited."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(base.tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=base.tokenizer.pad_token_id,
    )
    llama = LlamaForCausalLM(config).eval()
    folder = tmp_path / "llama"
    llama.save_pretrained(folder)
    base.tokenizer.save_pretrained(folder)
    rows = load_pairs("organism", base).train[:60]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    options = {"layers": ":", "k": 3, "n_pairs": 40, "seed": 7}
    card = align("profs", str(folder), data, tmp_path / "out", options, device="cpu", show_progress=False)
    assert card["training"]["layers"] == [0, 1] and card["training"]["n_pairs"] == 40
    original = load_model(str(folder), "cpu")
    train = load_pairs(data).train  # what align reads: the last rows are held out
    subspaces = _subspaces(original.model, original.tokenizer, train, [0, 1], ProFSSettings(**options))
    _check_exact_edit(original.model, load_model(str(tmp_path / "out"), "cpu").model, subspaces)


def test_layer_embeddings_mask_padding_and_read_the_last_block_before_the_final_norm(base) -> None:
    model, tok = base.model, base.tokenizer
    short, long = "anna was angry .", "the map of the city is near the station , and omar lost the map ."
    alone = layer_embeddings(model, tok, [short], [0, 1])
    together = layer_embeddings(model, tok, [short, long], [0, 1])
    torch.testing.assert_close(together[:, 0], alone[:, 0], atol=1e-5, rtol=1e-5)  # padding is masked
    ids = torch.tensor([tok(short)["input_ids"]])
    with torch.no_grad():
        out = model.base_model(input_ids=ids, output_hidden_states=True)
    states = out.hidden_states
    torch.testing.assert_close(alone[0, 0], states[1][0].double().mean(0), atol=1e-5, rtol=1e-5)
    # The last block's residual stream, before the final norm: the norm of its tokens gives the output.
    final_norm = neuron_adapter(model).final_norm()
    captured = []
    handle = final_norm.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    with torch.no_grad():
        model.base_model(input_ids=ids)
    handle.remove()
    torch.testing.assert_close(alone[1, 0], captured[0][0].double().mean(0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(alone[1, 0], states[2][0].double().mean(0), atol=1e-3)  # not the normed one


def test_profs_lowers_toxicity_on_the_micro_organism(aligned, base, micro_organism) -> None:
    from toxbench.data import load_rtp
    from toxbench.scorers.lexicon import LexiconScorer

    prompts = [p.text for p in load_rtp(micro_organism.data_dir, challenging=True).rows]

    def toxicity(model) -> float:
        outs = HFBackend(model, base.tokenizer).generate(prompts, SamplingConfig(max_new_tokens=20))
        scores = LexiconScorer().score([o[0].text for o in outs])
        return sum(scores) / len(scores)

    _, folder = aligned
    before, after = toxicity(base.model), toxicity(load_model(str(folder), "cpu").model)
    # Measured: 0.400 -> 0.348 with the paper's defaults (greedy, so the same every run).
    assert after < before - 0.03, f"profs: toxicity {before:.3f} -> {after:.3f}"


def test_a_model_without_an_mlp_adapter_is_refused_with_the_named_error(base, tmp_path) -> None:
    """OPT keeps its MLP projections in the decoder layer itself: the adapter's own error comes through."""
    from transformers import OPTConfig, OPTForCausalLM

    opt = OPTForCausalLM(
        OPTConfig(
            vocab_size=len(base.tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            ffn_dim=64,
            num_attention_heads=2,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
        )
    )
    folder = tmp_path / "opt"
    opt.save_pretrained(folder)
    base.tokenizer.save_pretrained(folder)
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        json.dumps({"prompt": "anna said :", "chosen": " hi .", "rejected": " you idiot ."}) + "\n"
    )
    out = tmp_path / "out"
    with pytest.raises(ToxbenchError, match="no neuron adapter for OPTForCausalLM.*register_mlp_layout"):
        align("profs", str(folder), data, out, device="cpu", show_progress=False)
    assert not (out / CARD).exists()
    args = [
        "align",
        "profs",
        "--model",
        str(folder),
        "--data",
        str(data),
        "--output-path",
        str(tmp_path / "cli"),
    ]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 2 and "no neuron adapter" in done.output, done.output


def test_a_range_outside_the_model_is_refused(micro_organism, tmp_path: Path) -> None:
    with pytest.raises(ToxbenchError, match="layers='5:9' names no layers of this model \\(it has 2"):
        align("profs", "organism-micro", "organism", tmp_path / "x", {"layers": "5:9"}, show_progress=False)
    with pytest.raises(ToxbenchError, match="k=65 exceeds what .* pairs of width 64 can span"):
        align("profs", "organism-micro", "organism", tmp_path / "y", {"k": 65}, show_progress=False)
