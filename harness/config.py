"""What a run depends on: ``RunConfig``, recorded whole in every results file.

It lives apart from the runner so that the results writer, the presets and the CI gate
can read a run's configuration without importing the runner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toxbench.errors import ToxbenchError
from toxbench.fluency import FluencySettings


@dataclass
class RunConfig:
    """Everything a run depends on (recorded in the results file)."""

    model: str = "organism"
    aligned: str | None = "organism:dpo"
    tasks: list[str] = field(default_factory=lambda: ["all"])
    protocol: str = "paper"
    prompt_format: str | None = None  # None: the protocol's own (raw); "chat": the chat template's user turn
    system_prompt: str | None = None  # chat only
    gen_kwargs: dict[str, Any] = field(
        default_factory=dict
    )  # sampling on top of the protocol's (--gen-kwargs)
    prompts_path: Path | None = None  # a prompts file in RTP's schema instead of the dataset's (--prompts)
    # None: lexicon for organism models, detoxify otherwise. Several (a list): the first is the headline
    # that every task reads, the others are reported beside it (toxbench.scorers.plan).
    scorer: str | list[str] | None = None
    scorer_options: dict[str, Any] = field(default_factory=dict)  # ARG or KEY.ARG (one scorer's) -> value
    backend: str = "hf"
    backend_options: dict[str, Any] = field(default_factory=dict)  # e.g. vLLM engine arguments
    executor: str = "local"  # where the work runs: local, or ray (toxbench.executors)
    executor_options: dict[str, Any] = field(default_factory=dict)  # e.g. replicas, address
    device: str | None = None
    dtype: str | None = None
    batch_size: int | str = "auto"
    limit: int | None = None
    seed: int = 0
    output_path: Path | None = None
    data_dir: Path | None = None
    use_cache: bool = True
    probe_path: Path | None = None  # an existing probe (``toxbench probe train``) instead of training one
    probe_data_limit: int | None = None  # comments the probe trains on (None: data.PROBE_DATA_LIMIT)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> loader arguments
    fluency: FluencySettings = field(default_factory=FluencySettings)
    preset: str | None = None  # a paper's protocol (tasks/presets.py), set by Preset.apply
    overwrite: bool = False  # replace another run's results in output_path
    # The resolved options this config was made from (``toxbench.options``), written beside the
    # results as config.yaml; None for a RunConfig built directly. Not part of the results' config.
    options: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("options")
        d["output_path"] = str(self.output_path) if self.output_path else None
        d["data_dir"] = str(self.data_dir) if self.data_dir else None
        d["probe_path"] = str(self.probe_path) if self.probe_path else None
        d["prompts_path"] = str(self.prompts_path) if self.prompts_path else None
        return d

    def model_spec(self, role: str = "base"):
        """The parsed spec of a role's model, with its ``--model-args`` arguments (checked here)."""
        from toxbench.models import ModelSpec

        spec = self.model if role == "base" else self.aligned
        if spec is None:
            raise ToxbenchError(f"this run has no {role} model")
        return ModelSpec.parse(spec, self.model_args.get(role))
