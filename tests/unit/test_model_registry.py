"""The model registry: aliases, loaders, --model-args, and every argument checked before a model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from toxbench.errors import ToxbenchError, UnknownNameError
from toxbench.models import ModelEntry, ModelSource, ModelSpec
from toxbench.registry import MODELS, PluginError, register_model


def test_an_alias_maps_to_a_hub_id_and_its_load_arguments() -> None:
    register_model("my-llama", hub_id="org/llama-ft", revision="abc123", trust_remote_code=True)
    spec = ModelSpec.parse("my-llama")
    assert spec.load_args() == {"trust_remote_code": True}
    assert spec.source() == ModelSource("hub", "org/llama-ft", "abc123")
    assert MODELS.origins["my-llama"] == f"module {__name__}"
    # --model-args wins over the alias's defaults; the user's own arguments are kept apart
    spec = ModelSpec.parse("my-llama", {"revision": "def456", "trust_remote_code": False})
    assert spec.source().revision == "def456" and spec.load_args() == {"trust_remote_code": False}
    assert spec.given == {"revision": "def456", "trust_remote_code": False}


def test_a_loader_function_registered_as_a_decorator(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")

    @register_model("lab-model", size="small")
    def lab_model(size: str) -> ModelSource:
        """Our lab's checkpoints."""
        return ModelSource("lab", size, folder=tmp_path)

    spec = ModelSpec.parse("lab-model")
    assert spec.source().folder == tmp_path and spec.source().target == "small"
    assert MODELS.descriptions["lab-model"] == "Our lab's checkpoints."
    assert ModelSpec.parse("lab-model", {"size": "large"}).source().target == "large"
    with pytest.raises(
        ToxbenchError, match=r"unknown option\(s\) 'sise' \(did you mean 'size'\?\) for model"
    ):
        ModelSpec.parse("lab-model", {"sise": "large"})


def test_bad_arguments_and_loaders_are_named() -> None:
    with pytest.raises(ToxbenchError, match="trust_remote_code must be true or false"):
        ModelSpec.parse("gpt2", {"trust_remote_code": "yes"})
    with pytest.raises(UnknownNameError, match="Did you mean: gpt2-medium"):
        ModelSpec.parse("gpt2-mediun")
    register_model("returns-junk", lambda: "a string")
    with pytest.raises(ToxbenchError, match="returned str, not a toxbench.models.ModelSource"):
        ModelSpec.parse("returns-junk").source()
    MODELS.register("not-a-loader", 42, origin="a test")
    with pytest.raises(PluginError, match="model 'not-a-loader' from a test is a int"):
        ModelSpec.parse("not-a-loader")
    with pytest.raises(PluginError, match="registered twice"):
        register_model("gpt2", hub_id="someone/else")


def test_a_bare_loader_from_an_entry_point_is_wrapped() -> None:
    MODELS.register("ep-model", "toxbench.models:hub", "from a package", origin="entry point of pkg")
    entry = MODELS.get("ep-model")
    assert isinstance(entry, ModelEntry)
    assert ModelSpec.parse("ep-model", {"hub_id": "a/b"}).source().target == "a/b"


def test_model_args_on_the_command_line() -> None:
    from toxbench.options import OptionError, model_args

    assert model_args(("dtype=bfloat16", "aligned.revision=abc", "base.adds_bos=false")) == {
        "base": {"dtype": "bfloat16", "adds_bos": False},
        "aligned": {"dtype": "bfloat16", "revision": "abc"},
    }
    # comma-separated as lm-eval writes them, and the mapping a config file gives, mean the same
    assert model_args("dtype=bfloat16,aligned.revision=abc,base.adds_bos=false") == model_args(
        {"dtype": "bfloat16", "aligned": {"revision": "abc"}, "base": {"adds_bos": False}}
    )
    assert model_args(("trust_remote_code=true",))["aligned"] == {"trust_remote_code": True}
    assert model_args(()) == {}
    with pytest.raises(OptionError, match="base.KEY=VALUE"):
        model_args(("chosen.dtype=float16",))
    with pytest.raises(OptionError, match="loads one model"):
        model_args(("aligned.revision=abc",), single=True)


def test_protocols_are_a_registry() -> None:
    from click.testing import CliRunner

    from toxbench.cli import main
    from toxbench.registry import register_protocol
    from toxbench.tasks.protocols import PAPER, Protocol, get_protocol

    short = Protocol(
        **{
            **PAPER.to_dict(),
            "name": "short",
            "sampling": PAPER.sampling,
            "prompt_tokens": 8,
            "description": "8-token prompts",
        }
    )
    register_protocol("short", short)
    assert get_protocol("short").prompt_tokens == 8
    listed = CliRunner().invoke(main, ["ls", "protocols"])
    assert "short" in listed.output and "8-token prompts" in listed.output and "rtp" in listed.output
    bad = CliRunner().invoke(main, ["run", "--protocol", "rpt", "--model", "organism-micro"])
    assert bad.exit_code == 2 and "unknown protocol 'rpt'. Did you mean: rtp" in bad.output
    listed = CliRunner().invoke(main, ["ls", "models"])
    assert (
        listed.output.splitlines()[0].startswith("organism ")
        and "openai-community/gpt2-medium" in listed.output
    )
