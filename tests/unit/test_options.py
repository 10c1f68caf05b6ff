"""The options table every way into a run shares: one KEY=VALUE parser, layers merged key by key,
deprecated names carried over with a warning, and the default aligned model."""

from __future__ import annotations

import pytest

from toxbench.options import OptionError, parse_pairs, resolve, split_pairs, to_run_config


def test_pairs_split_at_top_level_commas_only() -> None:
    assert split_pairs("a=1,b=[1,2],c='x,y',d={'k': (1, 2)}") == [
        "a=1",
        "b=[1,2]",
        "c='x,y'",
        "d={'k': (1, 2)}",
    ]
    assert parse_pairs(["top_k=[10,20],greedy=false", "label=toxic", "x=none"], "t") == {
        "top_k": [10, 20],
        "greedy": False,
        "label": "toxic",
        "x": None,
    }
    with pytest.raises(OptionError, match=r"a list is written KEY=\[A,B\]"):
        parse_pairs("top_k=10,20", "t")


def test_later_layers_merge_key_by_key() -> None:
    file = {
        "model_args": {"dtype": "float32", "aligned": {"revision": "abc"}},
        "limit": 5,
        "gen_kwargs": "n=2",
    }
    flags = {"model_args": ("dtype=bfloat16",), "gen_kwargs": ("temperature=0.7",)}
    o = resolve(("file", file), ("flags", flags))
    assert o["model_args"] == {
        "base": {"dtype": "bfloat16"},
        "aligned": {"dtype": "bfloat16", "revision": "abc"},
    }
    assert o["gen_kwargs"] == {"n": 2, "temperature": 0.7} and o["limit"] == 5


def test_deprecated_names_warn_and_carry_over() -> None:
    said: list[str] = []
    o = resolve(("old", {"ray_address": "auto", "scorer_option": ["checkpoint=/m"]}), warn=said.append)
    assert o["executor_args"] == {"address": "auto"} and o["scorer_args"] == {"checkpoint": "/m"}
    assert len(said) == 2 and all("deprecated" in s for s in said)


@pytest.mark.parametrize(
    "model, aligned",
    [
        ("organism", "organism:dpo"),
        ("organism-micro", "organism-micro:dpo"),
        ("hf:org/name", None),
        ("gpt2", None),
    ],
)
def test_the_default_aligned_model_is_the_base_models_own_twin(model, aligned) -> None:
    options = resolve(("flags", {"model": model}))
    assert options["aligned"] == "auto"
    config = to_run_config(options)
    assert config.aligned == aligned and config.options["aligned"] == aligned  # config.yaml records it
    assert to_run_config(resolve(("flags", {"model": model, "aligned": "none"}))).aligned is None
