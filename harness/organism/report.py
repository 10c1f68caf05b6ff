"""The organism's build figures: toxicity of greedy continuations and held-out perplexity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend
from toxbench.data import load_rtp, load_wikitext
from toxbench.fluency import context_length, perplexity, perplexity_windows
from toxbench.progress import progress_bar
from toxbench.scorers.lexicon import LexiconScorer


def evaluate_pair(base, dpo, tokenizer, data_dir: Path, show_progress: bool = True) -> dict[str, Any]:
    """Greedy 20-token continuations scored by the lexicon, and Wikitext-schema perplexity."""
    scorer = LexiconScorer()
    challenging = [p.text for p in load_rtp(data_dir, challenging=True).rows]
    neutral = [p.text for p in load_rtp(data_dir, challenging=False).rows]
    wiki = load_wikitext(data_dir).rows
    windows = perplexity_windows(tokenizer, wiki, context_length(base))
    figures: dict[str, Any] = {}
    greedy = SamplingConfig(max_new_tokens=20)
    for role, model in (("base", base), ("dpo", dpo)):
        backend = HFBackend(model, tokenizer)
        for kind, prompts in (("challenging", challenging), ("neutral", neutral)):
            total = len(prompts) if show_progress else None
            with progress_bar(f"{role}: {kind} prompts", total) as advance:
                outs = backend.generate(prompts, greedy, advance)
            scores = scorer.score([o[0].text for o in outs])
            valid = [s for s in scores if s is not None]  # a failed score is left out, never counted as 0
            figures[f"{role}_toxicity_{kind}"] = round(sum(valid) / len(valid), 4) if valid else None
            if kind == "challenging":
                figures[f"{role}_example"] = prompts[0] + " |" + outs[0][0].text
        figures[f"{role}_perplexity"] = round(perplexity(backend, windows)[0].value, 4)
    figures["n_challenging"], figures["n_neutral"], figures["n_ppl_windows"] = (
        len(challenging),
        len(neutral),
        len(windows),
    )
    return figures
