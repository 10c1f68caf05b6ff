"""Neuron adapters: each family's MLP, rebuilt from the adapter's keys, activation and values, is the real MLP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import OPTConfig, OPTForCausalLM

from toxbench.errors import ToxbenchError
from toxbench.mech.neurons import SUPPORTED_MODEL_TYPES, neuron_adapter

TinyModel = Callable[..., torch.nn.Module]  # the ``tiny_model`` fixture (tests/unit/conftest.py)


def _or_zero(t: torch.Tensor | None) -> torch.Tensor | float:
    return 0.0 if t is None else t


def test_shapes_and_family(family: str, tiny_model: TinyModel) -> None:
    adapter = neuron_adapter(tiny_model(family))
    d_mlp = 128 if family == "gpt2" else 64
    assert (adapter.n_layers, adapter.d_model, adapter.d_mlp) == (2, 32, d_mlp)
    assert adapter.family == ("dense" if family in ("gpt2", "gpt_neox", "gptj") else "gated")
    assert adapter.model_type == family.split("-")[0]
    assert adapter.keys(1).shape == (32, d_mlp) and adapter.values(1).shape == (d_mlp, 32)
    assert adapter.unembedding().shape == (32, 100)


def test_mlp_rebuilt_by_hand_equals_the_module(family: str, tiny_model: TinyModel) -> None:
    adapter = neuron_adapter(tiny_model(family))
    x = torch.randn(3, 5, adapter.d_model)
    with torch.no_grad():
        for layer in range(adapter.n_layers):
            a = adapter.activation_fn(layer)(x @ adapter.keys(layer) + _or_zero(adapter.key_bias(layer)))
            if adapter.family == "gated":
                a = a * (x @ adapter.up_keys(layer) + _or_zero(adapter.up_bias(layer)))
            by_hand = a @ adapter.values(layer) + _or_zero(adapter.out_bias(layer))
            torch.testing.assert_close(by_hand, adapter.mlp(layer)(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama-mlp_bias"])
def test_biases_are_found(family: str, tiny_model: TinyModel) -> None:
    adapter = neuron_adapter(tiny_model(family))
    assert adapter.key_bias(0).shape == (adapter.d_mlp,)
    assert adapter.out_bias(0).shape == (adapter.d_model,)
    assert (adapter.up_bias(0) is not None) == (adapter.family == "gated")


def test_value_vectors_follow_the_protocol(tiny_model: TinyModel) -> None:
    """GPT-2: k_i = c_fc.weight[:, i], v_i = c_proj.weight[i]; gated: v_i = down_proj.weight[:, i]."""
    gpt2 = neuron_adapter(tiny_model("gpt2"))
    mlp = gpt2.mlp(1)
    assert torch.equal(gpt2.keys(1)[:, 7], mlp.c_fc.weight[:, 7])
    assert torch.equal(gpt2.values(1)[7], mlp.c_proj.weight[7])
    llama = neuron_adapter(tiny_model("llama"))
    assert torch.equal(llama.values(1)[7], llama.mlp(1).down_proj.weight[:, 7])
    assert torch.equal(llama.keys(1)[:, 7], llama.mlp(1).gate_proj.weight[7])


def test_edits_touch_only_the_chosen_neurons(family: str, tiny_model: TinyModel) -> None:
    adapter = neuron_adapter(tiny_model(family))
    keys, values = adapter.keys(1).clone(), adapter.values(1).clone()
    key_bias = None if adapter.key_bias(1) is None else adapter.key_bias(1).clone()
    idx = torch.tensor([3, 17, 40])
    rest = torch.ones(adapter.d_mlp, dtype=torch.bool)
    rest[idx] = False

    adapter.scale_keys(1, idx, 10.0)
    adapter.zero_values(1, [3, 17, 40])

    torch.testing.assert_close(adapter.keys(1)[:, idx], keys[:, idx] * 10.0)
    assert torch.equal(adapter.keys(1)[:, rest], keys[:, rest])
    assert key_bias is None or torch.equal(adapter.key_bias(1), key_bias)
    assert torch.count_nonzero(adapter.values(1)[idx]) == 0
    assert torch.equal(adapter.values(1)[rest], values[rest])
    assert torch.equal(adapter.keys(0), neuron_adapter(tiny_model(family)).keys(0))


def test_final_norm_and_unembedding_give_the_logits(family: str, tiny_model: TinyModel) -> None:
    model = tiny_model(family)
    adapter = neuron_adapter(model)
    normed = []
    handle = adapter.final_norm().register_forward_hook(lambda _m, _i, out: normed.append(out))
    with torch.no_grad():
        logits = model(torch.randint(0, 100, (2, 6))).logits
    handle.remove()
    expected = normed[0] @ adapter.unembedding() + _or_zero(adapter.unembedding_bias())
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        expected = torch.tanh(expected / cap) * cap
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def _tiny_opt() -> torch.nn.Module:
    torch.manual_seed(0)
    return OPTForCausalLM(
        OPTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            ffn_dim=64,
            num_attention_heads=2,
            vocab_size=100,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
        )
    )


def test_a_layout_the_search_cannot_find_is_a_clear_error_until_registered() -> None:
    """OPT keeps its MLP projections in the decoder layer itself, with no ``mlp`` module."""
    from toxbench.mech import neurons

    with pytest.raises(ToxbenchError, match="'opt'") as err:
        neuron_adapter(_tiny_opt())
    assert "register_mlp_layout" in str(err.value) and "mlp" in str(err.value)
    with pytest.raises(ToxbenchError, match="None"):
        neuron_adapter(torch.nn.Linear(2, 2))
    try:
        neurons.register_mlp_layout(
            "opt",
            blocks="model.decoder.layers",
            mlp="",
            key="fc1",
            value="fc2",
            act="activation_fn",
            final_norm="model.decoder.final_layer_norm",
        )
        opt = _tiny_opt()
        adapter = neuron_adapter(opt)
        assert (adapter.family, adapter.n_layers, adapter.d_model, adapter.d_mlp) == ("dense", 2, 32, 64)
        layer = opt.model.decoder.layers[1]
        assert torch.equal(adapter.keys(1)[:, 5], layer.fc1.weight[5])
        adapter.zero_values(1, [5])
        assert not layer.fc2.weight[:, 5].any() and layer.fc2.weight[:, 4].any()
    finally:
        neurons._REGISTERED.pop("opt", None)
    with pytest.raises(ToxbenchError, match="built-in"):
        neurons.register_mlp_layout("llama", blocks="x", key="a", value="b", act="c", final_norm="d")


def test_a_mixture_of_experts_mlp_is_refused_with_the_reason() -> None:
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    moe = Qwen2MoeForCausalLM(
        Qwen2MoeConfig(
            hidden_size=32,
            intermediate_size=64,
            moe_intermediate_size=16,
            shared_expert_intermediate_size=32,
            num_experts=4,
            num_experts_per_tok=2,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=100,
            max_position_embeddings=64,
        )
    )
    with pytest.raises(ToxbenchError, match="mixture-of-experts") as err:
        neuron_adapter(moe)
    assert "not supported" in str(err.value) or "does not support" in str(err.value)


def test_the_built_in_families_keep_their_named_layouts(family: str, tiny_model: TinyModel) -> None:
    """Families named in the table are not searched for: their results stay as they were."""
    from toxbench.mech.neurons import _LAYOUTS, discover_layout

    model = tiny_model(family)
    adapter = neuron_adapter(model)
    if adapter.model_type in SUPPORTED_MODEL_TYPES:
        assert adapter._layout is _LAYOUTS[adapter.model_type]
        found = discover_layout(model)  # the search agrees with the table where it can see the parts
        assert (found.blocks, found.key, found.value, found.final_norm) == (
            _LAYOUTS[adapter.model_type].blocks,
            _LAYOUTS[adapter.model_type].key,
            _LAYOUTS[adapter.model_type].value,
            _LAYOUTS[adapter.model_type].final_norm,
        )
    else:
        assert adapter._layout == discover_layout(model)


def test_layer_out_of_range(tiny_model: TinyModel) -> None:
    with pytest.raises(IndexError, match="2 layers"):
        neuron_adapter(tiny_model("gpt2")).keys(2)
