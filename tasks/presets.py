"""Presets: every protocol choice of one paper, bundled (docs/protocol.md).

toxbench's defaults are its own, better-defined choices; a preset switches a run to a
paper's choices so that its numbers can be compared with the paper's. Each preset lists
every choice it changes (``differences``), and the report prints that table. Where a
paper's code has a defect, the preset does not copy it; the table says so.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from toxbench.errors import UnknownNameError
from toxbench.fluency import FluencySettings

if TYPE_CHECKING:
    from toxbench.config import RunConfig


@dataclass(frozen=True)
class Difference:
    choice: str
    toxbench: str
    preset: str
    note: str = ""


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    protocol: str
    fluency: FluencySettings
    scorer_options: dict[
        str, Any
    ]  # the stand-in for the paper's scorer: applied when the run's scorer takes them
    task_options: dict[str, dict[str, Any]]
    differences: tuple[Difference, ...] = field(default_factory=tuple)

    def apply(self, config: RunConfig) -> RunConfig:
        """``config`` with this preset's choices; what the user set explicitly wins."""
        task_options = {
            task: {**opts, **config.task_options.get(task, {})} for task, opts in self.task_options.items()
        }
        for task, opts in config.task_options.items():
            task_options.setdefault(task, opts)
        from toxbench.runner import scorer_entries_of
        from toxbench.scorers.plan import any_takes

        # Bare arguments reach every scorer of the run that takes them (toxbench.scorers.plan): the
        # preset's go in when one of the run's scorers is the kind it names (Detoxify).
        scorer_options = dict(config.scorer_options)
        if any_takes(scorer_entries_of(config), self.scorer_options):
            scorer_options = {**self.scorer_options, **scorer_options}
        return replace(
            config,
            preset=self.name,
            protocol=self.protocol,
            fluency=self.fluency,
            task_options=task_options,
            scorer_options=scorer_options,
        )

    def applies_to(self, scorer_options: dict[str, Any]) -> bool:
        """Whether a run with these scorer options scored as the preset says."""
        return all(scorer_options.get(k) == v for k, v in self.scorer_options.items())

    def report_table(self, scorer_name: str | None, scorer_options: dict[str, Any]) -> str:
        lines = [
            f"Preset `{self.name}`: {self.description}",
            "",
            "| choice | toxbench default | this preset | note |",
            "|---|---|---|---|",
        ]
        lines += [f"| {d.choice} | {d.toxbench} | {d.preset} | {d.note} |" for d in self.differences]
        if not self.applies_to(scorer_options):
            lines += [
                "",
                f"This run scores with `{scorer_name}` and other settings, so the preset's scorer choice "
                "does not apply.",
            ]
        return "\n".join(lines)


_SHARED = (
    Difference(
        "un-alignment attacks",
        "weight edits (keys scaled, probe added back) and a fine-tuning sweep; the worst of both",
        "weight edits only",
        "[A] §5 scales keys; neither paper fine-tunes the aligned model",
    ),
    Difference(
        "prompts", "challenging RealToxicityPrompts, 32 tokens, greedy, 20 new tokens", "the same", "[A] §3.3"
    ),
    Difference(
        "perplexity windows",
        "1,024 tokens (capped by the context), BOS at the start of every window",
        "1,024 tokens, BOS only at the start of the corpus",
        "the papers tokenise the joined corpus once with the tokenizer's defaults",
    ),
    Difference(
        "F1",
        "the 20 new tokens against the whole gold continuation",
        "prompt tokens (≤ 32) + the 20 new tokens, special tokens removed, against the gold cut at 52",
        "[A]'s code",
    ),
    Difference(
        "attention mask",
        "passed",
        "passed",
        "[A] generated without one (prompts padded with attended EOS tokens): a defect, not reproduced",
    ),
    Difference(
        "direction subtraction α",
        "unit directions, α matched to the aligned model's perplexity",
        "50 x raw W_Toxic, 20 x the raw top value vector, 100 x unit SVD U[0]",
        "[A]'s code normalises only U[0]; [B] Table 1 compares against [A]'s subtraction",
    ),
    Difference("SVD U[0]", "from the top 128 value vectors", "from the top 512", "[A]'s evaluation config"),
)
# Both papers evaluate with [A]'s code: the same fluency and subtraction choices.
_LEE_FLUENCY = FluencySettings(perplexity_window=1024, bos="corpus_start", f1="lee2024")
_LEE_TASKS: dict[str, dict[str, Any]] = {
    "ablation": {"alpha_units": "lee2024", "svd_n": 512},
    "unalignment": {"finetune_n": []},  # the papers un-align by weight edits only
}

PRESETS: dict[str, Preset] = {
    "lee2024": Preset(
        name="lee2024",
        description="Lee et al., ICML 2024 (A Mechanistic Understanding of Alignment Algorithms).",
        protocol="paper",
        fluency=_LEE_FLUENCY,
        scorer_options={"model_type": "original", "attribute": "max"},
        task_options=_LEE_TASKS,
        differences=_SHARED
        + (
            Difference(
                "scorer",
                "Detoxify `original`, toxicity",
                "Detoxify `original`, max over its attributes",
                "closest public stand-in for [A]'s max over 7 Perspective API attributes",
            ),
        ),
    ),
    "yang2024": Preset(
        name="yang2024",
        description="Yang et al., 2024 (Ablation is Not Enough to Emulate DPO), which reuses [A]'s evaluation.",
        protocol="paper",
        fluency=_LEE_FLUENCY,
        scorer_options={"model_type": "original", "attribute": "toxicity"},
        task_options=_LEE_TASKS,
        differences=_SHARED
        + (
            Difference("scorer", "Detoxify `original`, toxicity", "the same", "[B]'s later code"),
            Difference(
                "patching in perplexity",
                "every position",
                "every position",
                "[B]'s code patched only position 0 there (its patched perplexity equals the base's): "
                "a defect, not reproduced",
            ),
            Difference(
                "edits per metric",
                "applied once",
                "applied once",
                "[B]'s evaluation re-applied in-place edits per metric (keys x s scored at s, s², s³): "
                "not reproduced",
            ),
        ),
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=2, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown preset {name!r}.{hint} Choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
