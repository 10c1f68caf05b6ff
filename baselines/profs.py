"""ProFS: the toxic subspace of the preference pairs' embeddings, projected out of the MLP value vectors.

Uppaal, Dey, He, Zhong, Hu. *Model Editing as a Robust and Denoised variant of DPO: A Case
Study on Toxicity.* ICLR 2025 (arXiv 2405.13967; code: github.com/Uppaal/detox-edit). A
training-free weight edit, in four steps per layer l of the edited range:

1. Embed every pair's two texts (prompt + chosen, prompt + rejected, as the released pairs'
   texts hold their prompt): the residual stream after block l, averaged over the text's
   tokens. Stack them as X⁺ (non-toxic, N x d) and X⁻ (toxic).
2. T = X⁻ - X⁺, one row per pair. Centre it: the first right singular vector μ of X⁺ is the
   direction every sentence shares (frequent tokens, "stopwords" in the paper's words), and
   T ← T (I - μμᵀ).
3. The top-k right singular vectors V_k of the centred T span the toxic subspace;
   P = V_k V_kᵀ.
4. Every value vector of the layer's MLP loses its component there: v_i ← (I - P) v_i.

The value vectors are reached only through the MLP adapter (``toxbench.mech.neurons``), so
any family it knows is edited the same way; a model whose MLP layout it cannot find is
refused with its ``ToxbenchError``, before any text is embedded.

Defaults (the released configs, ``configs/*.ini``): N = 500 pairs drawn at random (all of
them where the data hold fewer), k = 2 (GPT2-medium's; the 6-7B models use 10), centring
on, the value matrices of layers 10 to 23 of GPT2-medium's 24 edited, the keys not. Here
the range is written as fractions of the depth, ``layers="0.42:1.0"`` (10/24 ≈ 0.42, to
the last layer), so that it scales to any model; whole numbers name layers
(``layers="10:24"``, Python's half-open slice, negatives counted from the end).

Where toxbench's definition differs from the released code, and why:

- **Pairs stay pairs.** The released loader (``utils/dataset_utils.py``, latest commit) draws
  the N preferred and the N non-preferred texts with two separate random draws, so row j of
  its T subtracts the embeddings of two unrelated texts (an earlier ``detox.py`` drew once).
  The paper defines T row by row from a pair; here one draw (``seed``) picks the pairs, and
  both texts of each come along.
- **Padding is masked.** The released code averages the hidden states over every position,
  padding included, so a short text's embedding is pulled toward the pad token's states;
  here the mean runs over the text's own tokens (BOS included where the tokenizer adds one,
  as every toxbench pass reads a text).
- **The last layer**: ``output_hidden_states`` gives the last block's output after the final
  norm; the released code re-runs the last block on the penultimate hidden state to get it
  before the norm, with a code path per family. Here the final norm's input is read with a
  hook: the same residual stream, for every family the adapter knows, in the one forward pass.
- **The MLP output bias** is left as it is, as the released code does (it projects only the
  ``weight`` tensors): the bias is no neuron's value vector, and the paper's edit is of the
  value matrix. ``project_bias=True`` projects it too, for a model whose bias writes along
  the toxic subspace.
- **Precision**: embeddings, SVDs and the projection are computed in float64 and the
  edited values written back in the model's dtype (the released code: float32 SVDs, the
  projection in the model's dtype).
- Scale and sign do not change the subspace: the released code uses (X⁺ - X⁻) / 2, toxbench
  X⁻ - X⁺ ("toxic minus non-toxic").

For Gemma 2, whose MLP output is normalised again before it joins the residual stream, the
values live in the MLP's output space (the adapter's convention), and the projection is
applied there.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from toxbench.baselines.base import AlignContext, Method
from toxbench.errors import ToxbenchError

# GPT2-medium's edited range in the released config, layers 10..23 of 24, as fractions of the depth.
PAPER_LAYERS = "0.42:1.0"


def _bound(text: str, spec: str) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    try:
        if "." in text or "e" in text.lower():
            value = float(text)
            if not 0.0 <= value <= 1.0:
                raise ValueError
            return value
        return int(text)
    except ValueError:
        raise ValueError(
            f"layers={spec!r}: {text!r} is neither a layer index (a whole number, negative from the end) "
            "nor a fraction of the depth (a decimal between 0.0 and 1.0)"
        ) from None


def parse_layers(spec: str) -> tuple[int | float | None, int | float | None]:
    """``"START:END"``: each a layer index (whole number, negative from the end), a fraction of the depth
    (a decimal in [0, 1]), or empty (the first / past the last layer)."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(
            f"layers={spec!r} is not a range: write START:END, as layer indices (layers=10:24, a half-open "
            f"range) or as fractions of the depth (layers=0.42:1.0, the default {PAPER_LAYERS})"
        )
    start, end = spec.split(":")
    return _bound(start, spec), _bound(end, spec)


def resolve_layers(spec: str, n_layers: int) -> list[int]:
    """The layers ``spec`` names in a model of ``n_layers`` blocks (a fraction: the nearest layer)."""

    def index(bound: int | float | None, default: int) -> int:
        if bound is None:
            return default
        if isinstance(bound, float):
            return int(math.floor(bound * n_layers + 0.5))
        return bound + n_layers if bound < 0 else bound

    start, end = parse_layers(spec)
    first, stop = index(start, 0), index(end, n_layers)
    if not 0 <= first < stop <= n_layers:
        raise ToxbenchError(
            f"layers={spec!r} names no layers of this model (it has {n_layers}, 0 to {n_layers - 1}: "
            f"the range resolves to {first}:{stop}): choose a START:END inside it"
        )
    return list(range(first, stop))


@dataclass(frozen=True)
class ProFSSettings:
    layers: str = PAPER_LAYERS  # START:END, fractions of the depth or layer indices (see the module doc)
    k: int = 2  # rank of the toxic subspace (the released GPT-2 config; 10 for the 6-7B models)
    n_pairs: int | None = 500  # pairs drawn from the training data (None: all); fewer if the data hold fewer
    centre: bool = True  # project the non-toxic embeddings' first singular vector out of T first
    project_bias: bool = False  # also project the MLP output bias (the released code does not)
    max_tokens: int = 128  # each text cut to this many tokens (the released code's 128)
    embed_batch_size: int = 32
    seed: int = 0  # which pairs are drawn

    def __post_init__(self) -> None:
        for name in ("k", "max_tokens", "embed_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
        if self.n_pairs is not None and (
            isinstance(self.n_pairs, bool) or not isinstance(self.n_pairs, int) or self.n_pairs < 1
        ):
            raise ValueError(
                f"n_pairs must be a whole number ≥ 1 (or None for every pair), got {self.n_pairs!r}"
            )
        if self.n_pairs is not None and self.k > self.n_pairs:
            raise ValueError(
                f"k={self.k} exceeds n_pairs={self.n_pairs}: N pairs span at most N directions; lower k"
            )
        for name in ("centre", "project_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be a whole number, got {self.seed!r}")
        parse_layers(self.layers)


# -- the linear algebra ----------------------------------------------------------------------------


class Subspace(NamedTuple):
    """The toxic subspace of one layer: its orthonormal basis and the centred T's singular values."""

    basis: torch.Tensor  # [d, k], float64
    singular_values: torch.Tensor  # [min(N, d)], float64, descending


def toxic_subspace(toxic: torch.Tensor, non_toxic: torch.Tensor, k: int, centre: bool = True) -> Subspace:
    """The toxic subspace of paired sentence embeddings (``toxic`` and ``non_toxic``, [N, d] each, row j of
    both from pair j): the top-k right singular vectors of T = toxic - non_toxic, after (``centre``)
    projecting out of T the first right singular vector of ``non_toxic``, the direction all texts share."""
    if toxic.shape != non_toxic.shape or toxic.dim() != 2:
        raise ValueError(
            f"toxic and non-toxic embeddings must be matching [N, d] matrices, got {tuple(toxic.shape)} "
            f"and {tuple(non_toxic.shape)}"
        )
    n, d = toxic.shape
    if not 1 <= k <= min(n, d):
        raise ValueError(f"k={k} must lie between 1 and min(N={n} pairs, d={d}): lower k")
    diff = (toxic - non_toxic).to(torch.float64)
    if centre:
        common = torch.linalg.svd(non_toxic.to(torch.float64), full_matrices=False).Vh[0]
        diff = diff - torch.outer(diff @ common, common)
    svd = torch.linalg.svd(diff, full_matrices=False)
    return Subspace(svd.Vh[:k].T.contiguous(), svd.S)


def project_out(rows: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``rows`` ([..., d]) with their component in span(``basis``) ([d, k], orthonormal) removed:
    r ← (I - B Bᵀ) r, computed in float64 and returned in ``rows``' dtype."""
    r = rows.detach().to(torch.float64)
    b = basis.to(device=r.device, dtype=torch.float64)
    return (r - (r @ b) @ b.T).to(rows.dtype)


def draw_pairs(rows: list[dict[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    """``n`` of ``rows`` drawn without replacement by ``seed``, kept in the data's order (all rows when
    ``n`` is their number). Both texts of a pair come with it."""
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))
    return [rows[int(i)] for i in chosen]


# -- embeddings ------------------------------------------------------------------------------------


def layer_embeddings(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    layers: list[int],
    max_tokens: int = 128,
    batch_size: int = 32,
    advance: Any = None,
) -> torch.Tensor:
    """[len(layers), N, d] float64: per text, the residual stream after each block of ``layers``, averaged
    over the text's tokens (padding masked). The last block's is read before the final norm (a hook on
    its input), the others from ``output_hidden_states``."""
    from toxbench.mech.neurons import neuron_adapter
    from toxbench.models import context_length
    from toxbench.passes import teacher_forced
    from toxbench.tokenization import encode

    adapter = neuron_adapter(model)
    n_layers = adapter.n_layers
    limit = min(max_tokens, context_length(model))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []

    def keep_norm_input(_module: Any, args: tuple) -> None:
        captured.append(args[0])

    out = []
    handle = adapter.final_norm().register_forward_pre_hook(keep_norm_input)
    try:
        for start in range(0, len(texts), batch_size):
            enc = [e[:limit] for e in encode(tokenizer, texts[start : start + batch_size])]
            width = max(max(len(e) for e in enc), 1)
            ids = torch.full((len(enc), width), pad, dtype=torch.long)
            mask = torch.zeros((len(enc), width), dtype=torch.long)
            for row, e in enumerate(enc):  # right padding keeps positions 0..n-1
                ids[row, : len(e)] = torch.tensor(e, dtype=torch.long)
                mask[row, : len(e)] = 1
            ids, mask = ids.to(device), mask.to(device)
            captured.clear()
            with torch.inference_mode(), teacher_forced():
                hidden = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            states = hidden.hidden_states
            if states is None or len(states) != n_layers + 1 or len(captured) != 1:
                raise ToxbenchError(
                    f"{type(model).__name__} did not return one hidden state per block and the final norm's "
                    f"input ({0 if states is None else len(states)} states for {n_layers} blocks, "
                    f"{len(captured)} final-norm calls): ProFS cannot read its layers' embeddings"
                )
            m = mask.unsqueeze(-1).to(torch.float64)
            per_layer = []
            for layer in layers:
                h = captured[0] if layer == n_layers - 1 else states[layer + 1]
                per_layer.append(((h.to(torch.float64) * m).sum(1) / m.sum(1).clamp(min=1)).cpu())
            out.append(torch.stack(per_layer))
            if advance:
                advance(len(enc))
    finally:
        handle.remove()
    return torch.cat(out, dim=1)


# -- the method ------------------------------------------------------------------------------------


class ProFSMethod(Method):
    """The toxic subspace of the pairs' embeddings projected out of the MLP value vectors (ProFS)."""

    name = "profs"
    kind = "edit"
    needs_data = True
    description = (
        "ProFS (Uppaal et al., ICLR 2025): the pairs' toxic subspace projected out of the MLP value vectors"
    )
    settings_class = ProFSSettings

    def align(self, ctx: AlignContext, settings: ProFSSettings) -> tuple[Any, dict[str, Any]]:
        from toxbench.mech.neurons import neuron_adapter
        from toxbench.progress import progress_bar

        base = ctx.base
        adapter = neuron_adapter(base.model)  # a model without an MLP layout stops here, with its reason
        layers = resolve_layers(settings.layers, adapter.n_layers)
        if ctx.data is None or not ctx.data.train:
            raise ToxbenchError("profs reads preference pairs: pass --data PATH (or organism)")
        rows = ctx.data.train
        n = len(rows) if settings.n_pairs is None else min(settings.n_pairs, len(rows))
        if settings.k > min(n, adapter.d_model):
            raise ToxbenchError(
                f"profs: k={settings.k} exceeds what {n} pairs of width {adapter.d_model} can span "
                f"(at most {min(n, adapter.d_model)} directions): lower k or give more pairs"
            )
        pairs = draw_pairs(rows, n, settings.seed)
        texts = [p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs]
        with progress_bar("profs: embeddings", len(texts)) as advance:
            emb = layer_embeddings(
                base.model,
                base.tokenizer,
                texts,
                layers,
                settings.max_tokens,
                settings.embed_batch_size,
                advance,
            )
        non_toxic, toxic = emb[:, :n], emb[:, n:]

        model = copy.deepcopy(base.model)
        edited = neuron_adapter(model)
        per_layer = []
        bias_projected = False
        for j, layer in enumerate(layers):
            found = toxic_subspace(toxic[j], non_toxic[j], settings.k, settings.centre)
            values = edited.values(layer)
            before = values.detach().to(torch.float64, copy=True)
            with torch.no_grad():
                values.copy_(project_out(values, found.basis))
                bias = edited.out_bias(layer)
                if settings.project_bias and bias is not None:
                    bias.copy_(project_out(bias, found.basis))
                    bias_projected = True
            change = torch.linalg.norm(before - values.detach().to(torch.float64)) / torch.linalg.norm(before)
            per_layer.append(
                {
                    "layer": layer,
                    # the centred T's leading singular values: a gap after the k-th suggests k
                    "singular_values": [round(float(v), 6) for v in found.singular_values[: settings.k + 3]],
                    "value_change": float(change),  # ||V' - V|| / ||V|| (Frobenius)
                }
            )
        stats = {
            "layers": layers,
            "k": settings.k,
            "n_pairs": n,
            "bias_projected": bias_projected,
            "per_layer": per_layer,
        }
        return model, stats
