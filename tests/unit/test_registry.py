"""Registries: lazy entries and clear errors for unknown names."""

import pytest

from toxbench.errors import UnknownNameError
from toxbench.models import ModelSpec
from toxbench.registry import SCORERS, TASKS, Registry


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: lexicon") as err:
        SCORERS.check("lexicn")
    assert "toxbench ls scorers" in str(err.value)
    with pytest.raises(UnknownNameError, match="elicitation"):
        TASKS.check("elicitaton")


def test_entries_import_lazily() -> None:
    reg = Registry("thing")
    reg.register("broken", "no_such_module_anywhere:Thing")
    assert "broken" in reg  # registering imports nothing
    with pytest.raises(ModuleNotFoundError):
        reg.get("broken")
    assert SCORERS.get("lexicon").__name__ == "LexiconScorer"


def test_model_specs() -> None:
    assert ModelSpec.parse("organism:dpo").args == {"size": "default", "variant": "dpo"}
    assert ModelSpec.parse("organism-micro").default_scorer == "lexicon"
    source = ModelSpec.parse("hf:EleutherAI/pythia-70m@abc123").source()
    assert (source.kind, source.target, source.revision) == ("hub", "EleutherAI/pythia-70m", "abc123")
    assert ModelSpec.parse("llama2-7b").source().target == "meta-llama/Llama-2-7b-hf"
    assert ModelSpec.parse("gpt2").default_scorer is None
    with pytest.raises(UnknownNameError, match="Did you mean: gpt2-medium"):
        ModelSpec.parse("gpt2-mediun")
