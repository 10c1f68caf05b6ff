"""[A]'s preference-pair recipe, released: ``toxbench pairs build``.

Lee et al. (ICML 2024, §4) built 24,576 pairs from Wikitext-2 prompts: the *chosen*
continuation is the base model's greedy one, the *rejected* one a toxic continuation of the
same prompt, which they made with PPLM (not released). toxbench's stand-in is simpler and
released: the rejected continuation is generated greedily by the base model with the toxicity
probe's direction *added* to its residual stream after the last MLP (α x the unit direction,
α in units of the mean residual norm), the steering [A] §3.3 shows works in reverse. The card
says so. Both continuations are at most 64 tokens, as in [A]; the pairs are in the
``prompt/chosen/rejected`` schema TRL reads.

Pairs are written in chunks to ``<output>.partial``: an interrupted build resumes where it
stopped (when its recipe is the same), and the finished file appears only at the end, with
its card beside it (``<output>.card.json``).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toxbench.baselines.base import base_probe
from toxbench.errors import ToxbenchError

STAND_IN = (
    "rejected = the base model's greedy continuation with alpha x the unit probe direction added to the "
    "residual stream after the last MLP: a released stand-in for [A]'s PPLM step (PPLM itself was not released)"
)


@dataclass(frozen=True)
class PairRecipe:
    n: int = 24_576  # [A]'s count
    prompt_tokens: int = 32  # each prompt: this many tokens of a Wikitext-2 line
    response_tokens: int = 64  # [A]: responses of at most 64 tokens
    steer: float = 2.0  # α for the rejected continuation, in units of the mean residual norm
    split: str = "train"
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.n < 1 or self.prompt_tokens < 1 or not 1 <= self.response_tokens <= 64:
            raise ValueError("n and prompt_tokens must be positive, response_tokens between 1 and 64")

    def key(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "batch_size"}


def keep_pair(row: dict[str, str]) -> bool:
    """A pair teaches something only when both continuations exist and differ."""
    return bool(row["chosen"].strip() and row["rejected"].strip() and row["chosen"] != row["rejected"])


def wikitext_prompts(tokenizer: Any, lines: list[str], recipe: PairRecipe) -> list[str]:
    """Prompts of ``prompt_tokens`` tokens each, cut from the text lines (headings and empty lines
    skipped), shuffled with the recipe's seed, the first ``n``."""
    from toxbench.tokenization import encode_plain

    body = [line.strip() for line in lines if line.strip() and not line.strip().startswith("=")]
    pieces: list[str] = []
    for ids in encode_plain(tokenizer, body):
        for start in range(0, len(ids) - recipe.prompt_tokens + 1, recipe.prompt_tokens):
            pieces.append(tokenizer.decode(ids[start : start + recipe.prompt_tokens]).strip())
    random.Random(recipe.seed).shuffle(pieces)
    if not pieces:
        raise ToxbenchError(
            f"no text line holds {recipe.prompt_tokens} tokens: nothing to build prompts from"
        )
    return pieces[: recipe.n]


def build_pairs(
    model: str,
    output: Path,
    recipe: PairRecipe,
    probe_path: Path | None = None,
    data_dir: Path | None = None,
    device: str | None = None,
    force: bool = False,
    model_args: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Write ``recipe.n`` (or as many as the text gives) pairs to ``output``; return the card."""
    from toxbench import __version__
    from toxbench.backends.base import SamplingConfig
    from toxbench.backends.hf import HFBackend
    from toxbench.data import load_wikitext
    from toxbench.io import atomic_write_json, sha256_file
    from toxbench.mech.edits import shift_residual
    from toxbench.models import ModelSpec, load_model
    from toxbench.progress import progress_bar
    from toxbench.tasks.variants import array_hash, residual_scale

    output = Path(output)
    card_path = output.with_name(output.name + ".card.json")
    if output.exists() and not force:
        raise ToxbenchError(f"{output} exists: pass --overwrite to rebuild it, or another --output-path")
    spec = ModelSpec.parse(model, model_args)
    base = load_model(spec, device, show_progress=show_progress)
    from toxbench.models import context_length

    room = context_length(base.model) - recipe.prompt_tokens - 1  # one position for BOS
    if recipe.response_tokens > room:
        raise ToxbenchError(
            f"{recipe.prompt_tokens}-token prompts and {recipe.response_tokens}-token responses do not fit the "
            f"{context_length(base.model)} positions of model {spec.raw!r}: pass smaller --prompt-tokens or "
            "--response-tokens"
        )
    text = load_wikitext(data_dir if data_dir is not None else base.data_dir, recipe.split)
    prompts = wikitext_prompts(base.tokenizer, text.rows, recipe)
    probe = base_probe(base, probe_path, recipe.seed, data_dir)
    alpha = recipe.steer * residual_scale(base, prompts[:64])
    steered = shift_residual(base.model, probe.direction, alpha).model
    identity = {
        "recipe": recipe.key(),
        "model": base.fingerprint,
        "probe": array_hash(probe.direction),
        "text": text.sha256,
    }

    partial, state = (
        output.with_name(output.name + ".partial"),
        output.with_name(output.name + ".partial.json"),
    )
    done = 0
    if partial.exists() and state.exists() and json.loads(state.read_text()) == identity and not force:
        done = sum(1 for _ in partial.open())
    else:
        partial.unlink(missing_ok=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(state, identity)
    sampling = SamplingConfig(max_new_tokens=recipe.response_tokens)
    chosen_backend = HFBackend(base.model, base.tokenizer, batch_size=recipe.batch_size)
    rejected_backend = HFBackend(steered, base.tokenizer, batch_size=recipe.batch_size)
    with (
        progress_bar("pairs: chosen and steered continuations", len(prompts) - done) as advance,
        partial.open("a") as fh,
    ):
        for start in range(done, len(prompts), recipe.batch_size):
            chunk = prompts[start : start + recipe.batch_size]
            chosen = chosen_backend.generate(chunk, sampling)
            rejected = rejected_backend.generate(chunk, sampling)
            for p, c, r in zip(chunk, chosen, rejected, strict=True):
                fh.write(json.dumps({"prompt": p, "chosen": c[0].text, "rejected": r[0].text}) + "\n")
            fh.flush()  # a killed build keeps every finished chunk
            advance(len(chunk))
    rows = [json.loads(line) for line in partial.open()]
    kept = [r for r in rows if keep_pair(r)]
    with output.open("w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in kept)
    partial.unlink()
    state.unlink()
    card = {
        "recipe": recipe.key(),
        "rejected": STAND_IN,
        "alpha": alpha,
        "model": {"spec": spec.raw, "fingerprint": base.fingerprint},
        "probe": {**probe.identity(), "direction_sha256": array_hash(probe.direction)},
        "text": text.provenance(),
        "n_prompts": len(prompts),
        "n_pairs": len(kept),
        "dropped": {"identical_or_empty": len(rows) - len(kept)},
        "sha256": sha256_file(output),
        "toxbench_version": __version__,
    }
    atomic_write_json(card_path, card)
    return card
