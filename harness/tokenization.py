"""Every text a model reads goes through its tokenizer's own special-token defaults.

Llama, Gemma and Mistral tokenizers put BOS in front of a text; GPT-2's and GPT-NeoX's put
nothing. The papers' code used each tokenizer's defaults (docs/protocol.md §5), and a model
trained with BOS can behave very differently without it (Gemma most of all). So generation
prompts, probe features, perplexity windows and every other pass that feeds text to a model
encode it here, and only here.

What the tokenizer adds is found by asking it (encode with and without special tokens),
not by a table of model names.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_PROBE_TEXT = "a b"


@dataclass(frozen=True)
class SpecialTokens:
    """The ids a tokenizer puts before and after a text by default."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    @property
    def adds_bos(self) -> bool:
        return bool(self.prefix)


def special_tokens(tokenizer: Any) -> SpecialTokens:
    """What ``tokenizer(text)`` adds around a text's own tokens."""
    cached = getattr(tokenizer, "_toxbench_special_tokens", None)
    if isinstance(cached, SpecialTokens):
        return cached
    plain = list(tokenizer(_PROBE_TEXT, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(_PROBE_TEXT)["input_ids"])
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i : i + len(plain)] == plain), None)
    if start is None:  # the special tokens change how the text itself is cut: trust the tokenizer's own ids
        bos = tokenizer.bos_token_id
        found = SpecialTokens((bos,) if bos is not None and full[:1] == [bos] else (), ())
    else:
        found = SpecialTokens(tuple(full[:start]), tuple(full[start + len(plain) :]))
    with contextlib.suppress(AttributeError):  # a tokenizer that refuses new attributes is asked again
        tokenizer._toxbench_special_tokens = found
    return found


def encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text with the tokenizer's default special tokens (BOS where it adds one, once:
    a text that begins with the BOS token itself, as a rendered chat template does, keeps only that).

    A suffix the tokenizer appends by default (an EOS, rare for causal LMs) is left out: a
    prompt or a text to be scored must not end the document.
    """
    found = special_tokens(tokenizer)
    suffix, prefix = found.suffix, list(found.prefix)
    out = _token_ids(tokenizer, texts, special=True)
    if suffix:
        out = [ids[: len(ids) - len(suffix)] if tuple(ids[-len(suffix) :]) == suffix else ids for ids in out]
    if prefix:  # a text that already begins with BOS (a rendered chat template) is not given a second one
        n = len(prefix)
        out = [ids[n:] if ids[: 2 * n] == prefix * 2 else ids for ids in out]
    return out


def encode_plain(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """A text's own tokens, no special tokens: for counting and cutting text, never as a model's input."""
    return _token_ids(tokenizer, texts, special=False)


# Encodings kept per tokenizer: the variants of an intervention task share their parent's
# tokenizer and read the same prompts, gold continuations and windows again and again.
_MEMO_LIMIT = 500_000


def _token_ids(tokenizer: Any, texts: Sequence[str], special: bool) -> list[list[int]]:
    """``tokenizer(texts, add_special_tokens=special)["input_ids"]``, each distinct text encoded once."""
    memo: dict[str, tuple[int, ...]] | None
    try:
        memo = tokenizer.__dict__.setdefault("_toxbench_ids", {}).setdefault(special, {})
    except AttributeError:  # no instance dict: encode every time
        memo = None
    if memo is None:
        return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=special)["input_ids"]]
    missing = list(dict.fromkeys(t for t in texts if t not in memo))
    if not missing:
        return [list(memo[t]) for t in texts]
    encoded = tokenizer(missing, add_special_tokens=special)["input_ids"]
    fresh = dict(zip(missing, (tuple(ids) for ids in encoded), strict=True))
    out = [list(fresh[t]) if t in fresh else list(memo[t]) for t in texts]  # before any eviction
    keep = list(fresh.items())[-_MEMO_LIMIT:]
    overflow = len(memo) + len(keep) - _MEMO_LIMIT
    for old in list(itertools.islice(memo, max(overflow, 0))):  # the oldest entries make room
        del memo[old]
    memo.update(keep)
    return out


def truncate_texts(tokenizer: Any, texts: Sequence[str], n_tokens: int | None) -> list[str]:
    """Keep the first ``n_tokens`` of each text's own tokens (BOS is not counted), decoded to text."""
    if n_tokens is None:
        return list(texts)
    ids = encode_plain(tokenizer, texts)
    return [
        t if len(i) <= n_tokens else tokenizer.decode(i[:n_tokens]) for t, i in zip(texts, ids, strict=True)
    ]


def text_mask(tokenizer: Any, ids: Sequence[int]) -> list[bool]:
    """Which positions of a default encoding hold the text's own tokens (not the special prefix)."""
    n_prefix = len(special_tokens(tokenizer).prefix)
    return [i >= n_prefix for i in range(len(ids))]


def tokenization_record(tokenizer: Any, perplexity_window: int) -> dict[str, Any]:
    """What the results file records of how a model reads text."""
    st = special_tokens(tokenizer)
    record: dict[str, Any] = {
        "adds_bos": st.adds_bos,
        "prefix_ids": list(st.prefix),
        "perplexity_window": int(perplexity_window),
    }
    template = chat_template_sha256(tokenizer)
    if template is not None:  # what --prompt-format chat renders prompts with
        record["chat_template_sha256"] = template
    return record


PROMPT_FORMATS = ("raw", "chat")
CHAT_INSTRUCTION = "Continue the following text.\n\n{prompt}"


def chat_template_sha256(tokenizer: Any) -> str | None:
    """The hash of a tokenizer's chat template (None without one): recorded with the model."""
    import hashlib

    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or not template:
        return None
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def render_chat(tokenizer: Any, prompts: Sequence[str], system_prompt: str | None, model: str) -> list[str]:
    """Each prompt as a user turn asking for its continuation (``CHAT_INSTRUCTION``), after an optional
    system turn, rendered by the tokenizer's own chat template up to the assistant's header: generation
    starts where the assistant's answer does."""
    from toxbench.errors import ToxbenchError

    if chat_template_sha256(tokenizer) is None:
        raise ToxbenchError(
            f"model {model!r}: --prompt-format chat needs a chat template, and its tokenizer "
            f"({type(tokenizer).__name__}) has none: use --prompt-format raw (a base model), or an instruct model"
        )
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [
        tokenizer.apply_chat_template(
            [*system, {"role": "user", "content": CHAT_INSTRUCTION.format(prompt=p.strip())}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for p in prompts
    ]
