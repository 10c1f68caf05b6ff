"""The transformers backend: batched, length-sorted, left-padded generation with a KV cache.

Greedy outputs equal one-prompt-at-a-time ``generate`` (tested). Sampled outputs are
seeded per prompt (``SamplingConfig.request_seed``): a prompt's samples are generated
together and do not depend on which other prompts are in the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.backends.base import Advance, Backend, Completion, SamplingConfig


class HFBackend(Backend):
    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int | str = "auto", device: str | None = None) -> None:
        import torch

        self.model = model.eval()
        self._tokenizer = tokenizer
        self.device = torch.device(device) if device else next(model.parameters()).device
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.batch_size = self._auto_batch_size() if batch_size == "auto" else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size!r}")

    @property
    def tokenizer(self):
        return self._tokenizer

    def _auto_batch_size(self) -> int:
        # Few parameters: large batches pay off; billions on a CPU: small ones.
        n_params = sum(p.numel() for p in self.model.parameters())
        if self.device.type == "cuda":
            return 128 if n_params < 2e9 else 32
        return 64 if n_params < 5e7 else 8

    def _encode(self, prompts: Sequence[str]) -> list[list[int]]:
        return self._tokenizer(list(prompts), add_special_tokens=False)["input_ids"]

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
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        return out[:, ids.shape[1] :].tolist()

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
        limit = getattr(self.model.config, "n_positions", None) or getattr(
            self.model.config, "max_position_embeddings", None
        )
        if limit is not None:
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
                outs = self._run([encoded[i] for i in chunk], sampling, 1)
                for i, new in zip(chunk, outs, strict=True):
                    results[i] = [self._completion(new)]
                if advance:
                    advance(len(chunk))
        else:
            for i, prompt in enumerate(prompts):
                torch.manual_seed(sampling.request_seed(prompt))
                outs = []
                for start in range(0, sampling.n, self.batch_size):
                    k = min(self.batch_size, sampling.n - start)
                    outs += self._run([encoded[i]], sampling, k)
                results[i] = [self._completion(new) for new in outs]
                if advance:
                    advance(1)
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
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            tgt = ids[:, 1:]
            nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) * mask[:, 1:]
            for row, w in enumerate(chunk):
                out.append((float(nll[row].sum()), len(w) - 1))
        return out
