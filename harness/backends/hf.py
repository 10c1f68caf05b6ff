"""The transformers backend: batched, length-sorted, left-padded generation with a KV cache.

Prompts are encoded with the tokenizer's own special-token defaults (BOS for Llama, Gemma,
Mistral; ``toxbench.tokenization``). Greedy outputs equal one-prompt-at-a-time ``generate``
on that encoding (tested). Greedy decoding runs its own loop over the model's forward (the
argmax at every step, as ``generate`` takes it) in which a row that has emitted EOS leaves
the batch: on short continuations most of a batch's steps would otherwise be spent on
finished rows. A model whose ``generation_config`` processes logits (a repetition penalty,
say) is decoded by ``generate``.

Sampled decoding runs the same loop on rows of (prompt, sample) pairs from several prompts, up
to the batch size. Each row has its own generator, seeded by its prompt and sample index
(``SamplingConfig.sample_seed``), which gives it one uniform number per step; the row's token
is where that number falls in the cumulative distribution of its (temperature-scaled, top-p
filtered: transformers' warpers) probabilities. A continuation therefore does not depend on
the batch it shares, the batch size or the order of the prompts (tested).

Perplexity never holds float32 logits for a whole window over the whole vocabulary (for
Llama-3.1, 1,024 positions x 128,256 tokens x 4 bytes = 0.5 GB a row): the final hidden
states are computed once, and the unembedding and log-softmax run on slices of positions.
"""

from __future__ import annotations

from collections.abc import Sequence

from toxbench.backends.base import Advance, Backend, Completion, SamplingConfig
from toxbench.backends.lean import lean_activations
from toxbench.models import context_length
from toxbench.numerics import widened
from toxbench.passes import teacher_forced
from toxbench.tokenization import encode


class HFBackend(Backend):
    name = "hf"
    runs_hooks = True  # it runs the loaded model itself: hooks on it see every pass
    # Most logit entries (positions x vocabulary) materialised at once when scoring windows.
    logits_budget = 2**25

    def __init__(self, model, tokenizer, batch_size: int | str = "auto", device: str | None = None) -> None:
        import torch

        self.model = model.eval()
        self._tokenizer = tokenizer
        self.device = torch.device(device) if device else next(model.parameters()).device
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.batch_size = auto_batch_size(self.model) if batch_size == "auto" else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size!r}")

    @classmethod
    def chunk_size(cls, model, config) -> int:
        return auto_batch_size(model.model) if config.batch_size == "auto" else int(config.batch_size)

    @property
    def tokenizer(self):
        return self._tokenizer

    def _encode(self, prompts: Sequence[str]) -> list[list[int]]:
        return encode(self._tokenizer, prompts)

    def _left_pad(self, seqs: Sequence[Sequence[int]]):
        import torch

        width = max(len(s) for s in seqs)
        pad = self._tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            if seq:
                ids[row, width - len(seq) :] = torch.tensor(seq)
                mask[row, width - len(seq) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _run(self, seqs: Sequence[Sequence[int]], sampling: SamplingConfig, n: int):
        import torch

        ids, mask = self._left_pad(seqs)
        kwargs = dict(
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=self._tokenizer.pad_token_id,
            eos_token_id=self._tokenizer.eos_token_id,
            use_cache=True,
        )
        if sampling.greedy:
            kwargs.update(do_sample=False, num_beams=1, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                num_return_sequences=n,
            )
        with torch.inference_mode(), lean_activations(self.model):
            out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        return out[:, ids.shape[1] :].tolist()

    def _plain_logits(self) -> bool:
        """Whether decoding here reads the model's logits as they are (greedy: their argmax): no logits
        processor from the model's ``generation_config`` (a repetition penalty, banned words, a minimum
        length) changes them. Otherwise ``generate`` decodes, so that its settings apply."""
        if getattr(self, "_plain", None) is None:
            from transformers import GenerationConfig

            ours = getattr(self.model, "generation_config", None)
            defaults = GenerationConfig()
            self._plain = type(self.model).generate is _generate_of_transformers() and all(
                getattr(ours, name, None) in (None, getattr(defaults, name, None)) for name in _PROCESSING
            )
        return self._plain

    def _greedy(self, seqs: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        """Greedy decoding with a KV cache, equal to ``generate``'s (the argmax at every step)."""
        return self._decode(seqs, max_new_tokens, lambda logits, rows, step: logits.argmax(-1))

    def _sampled(
        self, seqs: Sequence[Sequence[int]], seeds: Sequence[int], sampling: SamplingConfig
    ) -> list[list[int]]:
        """Sampled decoding, one generator per row: at step t, row r's token is the first whose
        cumulative probability exceeds u[r, t] (inverse-CDF sampling), u drawn from the row's generator."""
        import torch
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        steps = sampling.max_new_tokens
        uniforms = torch.stack(
            [
                torch.rand(steps, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
                for s in seeds
            ]
        ).to(self.device)
        warpers = LogitsProcessorList()
        if sampling.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(sampling.temperature))
        if sampling.top_p < 1.0:
            warpers.append(TopPLogitsWarper(sampling.top_p))

        def pick(logits, rows, step):
            scores = warpers(None, logits.float()) if warpers else logits.float()
            cdf = torch.softmax(scores, dim=-1).double().cumsum(-1)
            u = uniforms[rows, step] * cdf[:, -1]
            token = torch.searchsorted(cdf, u[:, None], right=True)[:, 0]
            return token.clamp_(max=cdf.shape[-1] - 1)

        # A prompt's samples share its prompt: read it once, then give each sample a copy of its cache.
        unique = list(dict.fromkeys(tuple(seq) for seq in seqs))
        where = {seq: k for k, seq in enumerate(unique)}
        return self._decode(unique, steps, pick, expand=[where[tuple(seq)] for seq in seqs])

    def _decode(
        self,
        seqs: Sequence[Sequence[int]],
        max_new_tokens: int,
        pick,
        expand: Sequence[int] | None = None,
    ) -> list[list[int]]:
        """The decoding loop with a KV cache: each step feeds every row's last token at its next
        position, and ``pick(logits, rows, step)`` chooses the next tokens (``rows``: the original
        index of each row still running). A row that has emitted EOS is fed padding from then on (as
        ``generate`` does: a hook tells such steps apart by their input) and leaves the batch and
        its cache once finished rows are a quarter of it, so the rows still running pay little for
        finished ones. Token lists stop at EOS, included. With ``expand``, the prompts in ``seqs``
        are read once and row r continues ``seqs[expand[r]]``."""
        import torch
        from transformers import DynamicCache

        ids, mask = self._left_pad(seqs)
        position = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache(config=self.model.config)
        eos = self._tokenizer.eos_token_id
        n_rows = len(seqs) if expand is None else len(expand)
        out: list[list[int]] = [[] for _ in range(n_rows)]
        rows = list(range(n_rows))
        running = torch.arange(n_rows, device=ids.device)
        with torch.inference_mode(), lean_activations(self.model):
            last_only = {"logits_to_keep": 1} if self._keeps_logits() else {}
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
                **last_only,
            ).logits[:, -1]
            last = position[:, -1]
            if expand is not None:
                index = torch.tensor(list(expand), device=ids.device)
                cache.batch_select_indices(index)
                logits, mask, last = logits[index], mask[index], last[index]
            finished = [False] * n_rows
            pad = self._tokenizer.pad_token_id
            for step in range(max_new_tokens):
                chosen = pick(logits, running, step)
                past_end = []
                for j, token in enumerate(chosen.tolist()):
                    if finished[j]:
                        past_end.append(j)
                    else:
                        out[rows[j]].append(token)
                        finished[j] = token == eos
                keep = [j for j, done in enumerate(finished) if not done]
                if not keep or step == max_new_tokens - 1:
                    break
                # A row past its EOS is fed padding, as ``generate`` feeds it, so that hooks that
                # count steps (capture) tell it apart. Finished rows leave the batch (and its cache)
                # once they are a quarter of it: until then they run on unread, which costs less
                # than copying the cache at every step.
                if past_end:
                    chosen[past_end] = pad
                if len(rows) - len(keep) >= max(1, len(rows) // 4):
                    index = torch.tensor(keep, device=ids.device)
                    cache.batch_select_indices(index)
                    chosen, mask, last, running = chosen[index], mask[index], last[index], running[index]
                    rows = [rows[j] for j in keep]
                    finished = [False] * len(rows)
                mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
                last = last + 1
                logits = self.model(
                    input_ids=chosen[:, None],
                    attention_mask=mask,
                    position_ids=last[:, None],
                    past_key_values=cache,
                    use_cache=True,
                ).logits[:, -1]
        return out

    def _keeps_logits(self) -> bool:
        """Whether the model's forward can compute the last position's logits only (``logits_to_keep``)."""
        import inspect

        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _completion(self, new_ids: list[int]) -> Completion:
        eos = self._tokenizer.eos_token_id
        if eos in new_ids:  # generation stopped: drop EOS and the padding after it
            new_ids = new_ids[: new_ids.index(eos)]
        return Completion(self._tokenizer.decode(new_ids, skip_special_tokens=True), new_ids)

    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, advance: Advance | None = None
    ) -> list[list[Completion]]:
        import torch

        encoded = self._encode(prompts)
        limit = context_length(self.model)
        if limit:
            for prompt, ids in zip(prompts, encoded, strict=True):
                if len(ids) + sampling.max_new_tokens > limit:
                    raise ValueError(
                        f"prompt of {len(ids)} tokens plus {sampling.max_new_tokens} new tokens exceeds the "
                        f"model's context of {limit}: {prompt[:60]!r}... Truncate prompts (the task's "
                        "prompt_tokens setting)."
                    )
        results: list[list[Completion] | None] = [None] * len(prompts)
        if sampling.greedy:
            # Longest first: similar lengths share a batch, and memory peaks on the first batch.
            order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                seqs = [encoded[i] for i in chunk]
                outs = (
                    self._greedy(seqs, sampling.max_new_tokens)
                    if self._plain_logits()
                    else self._run(seqs, sampling, 1)
                )
                for i, new in zip(chunk, outs, strict=True):
                    results[i] = [self._completion(new)]
                if advance:
                    advance(len(chunk))
        else:
            n = sampling.n
            # Rows of (prompt, sample), longest prompts first, several prompts to a batch.
            pairs = sorted(
                ((i, j) for i in range(len(prompts)) for j in range(n)), key=lambda r: -len(encoded[r[0]])
            )
            new_ids: dict[tuple[int, int], list[int]] = {}
            left = {i: n for i in range(len(prompts))}
            for start in range(0, len(pairs), self.batch_size):
                rows = pairs[start : start + self.batch_size]
                seqs = [encoded[i] for i, _ in rows]
                seeds = [sampling.sample_seed(prompts[i], j) for i, j in rows]
                if self._plain_logits():
                    outs = self._sampled(seqs, seeds, sampling)
                else:  # the model's own logits processors apply: generate, one seeded row at a time
                    outs = []
                    for seq, seed in zip(seqs, seeds, strict=True):
                        torch.manual_seed(seed)
                        outs += self._run([seq], sampling, 1)
                done = 0
                for (i, j), new in zip(rows, outs, strict=True):
                    new_ids[i, j] = new
                    left[i] -= 1
                    done += left[i] == 0
                if advance and done:
                    advance(done)
            for i in range(len(prompts)):
                results[i] = [self._completion(new_ids[i, j]) for j in range(n)]
        return results  # type: ignore[return-value]

    def window_nll(self, windows: Sequence[Sequence[int]]) -> list[tuple[float, int]]:
        import torch

        out: list[tuple[float, int]] = []
        for start in range(0, len(windows), self.batch_size):
            chunk = windows[start : start + self.batch_size]
            width = max(len(w) for w in chunk)
            ids = torch.full((len(chunk), width), self._tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, w in enumerate(chunk):  # right padding: positions stay 0..n-1
                ids[row, : len(w)] = torch.tensor(list(w))
                mask[row, : len(w)] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            nll = self._token_nll(ids, mask)
            for row, w in enumerate(chunk):
                out.append((float(nll[row].sum()), len(w) - 1))
        return out

    def _token_nll(self, ids, mask):
        """[batch, width - 1]: the NLL of each token given the ones before it (0 at padding)."""
        import torch

        with torch.inference_mode(), teacher_forced(), lean_activations(self.model):
            if self._sliced_head_matches():
                hidden = self.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
                head = self._head
            else:  # an architecture whose logits are more than the head of its base model: full logits
                hidden = self.model(input_ids=ids, attention_mask=mask).logits
                head = None
            rows, width = ids.shape
            vocab = (
                len(self._tokenizer) if head is None else self.model.get_output_embeddings().weight.shape[0]
            )
            step = max(1, self.logits_budget // max(1, rows * vocab))
            # float32 at least (half-precision logits are widened), float64 for a float64 model.
            nll = torch.zeros(rows, width - 1, dtype=widened(hidden[:, :0]).dtype, device=ids.device)
            for s in range(0, width - 1, step):
                e = min(s + step, width - 1)
                logits = widened(hidden[:, s:e] if head is None else head(hidden[:, s:e]))
                nll[:, s:e] = torch.nn.functional.cross_entropy(
                    logits.transpose(1, 2), ids[:, s + 1 : e + 1], reduction="none"
                )
            return nll * mask[:, 1:]

    def _head(self, hidden):
        """The logits of final hidden states: the output embedding, soft-capped where the config says so (Gemma 2)."""
        import torch

        logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def _sliced_head_matches(self) -> bool:
        """Whether base model + head reproduces the model's own logits (checked once on a few tokens)."""
        import torch

        if getattr(self, "_sliced_ok", None) is None:
            probe = torch.arange(min(8, context_length(self.model)), device=self.device)[None] % max(
                1, self.model.get_output_embeddings().weight.shape[0]
            )
            try:
                with torch.inference_mode():
                    mask = torch.ones_like(probe)
                    full = self.model(input_ids=probe, attention_mask=mask).logits.float()
                    mine = self._head(
                        self.model.base_model(input_ids=probe, attention_mask=mask).last_hidden_state
                    ).float()
                self._sliced_ok = bool(
                    torch.allclose(full, mine, rtol=1e-3, atol=1e-3 * float(full.abs().max()))
                )
            except (AttributeError, TypeError, RuntimeError):
                self._sliced_ok = False
        return self._sliced_ok


def auto_batch_size(model) -> int:
    """Few parameters: large batches pay off; billions on a CPU: small ones."""
    n_params = sum(p.numel() for p in model.parameters())
    if next(model.parameters()).device.type == "cuda":
        return 128 if n_params < 2e9 else 32
    return 256 if n_params < 5e7 else 8


# The generation_config fields that change greedy decoding's logits or stopping beyond
# max_new_tokens and EOS: where a model sets any of them, ``generate`` decodes.
_PROCESSING = (
    "repetition_penalty",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "sequence_bias",
    "min_length",
    "min_new_tokens",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "exponential_decay_length_penalty",
    "guidance_scale",
    "watermarking_config",
    "stop_strings",
    "max_time",
)


def _generate_of_transformers():
    from transformers import GenerationMixin

    return GenerationMixin.generate
