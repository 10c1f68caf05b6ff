"""The vLLM backend: the hf backend's prompts, decoding and outputs, run by the vLLM engine.

Prompts are tokenised by the given HF tokenizer, with its special-token defaults (BOS
where it adds one, as the hf backend does), and handed to the engine as token ids, and
outputs are decoded by that tokenizer, so both backends see the same tokens. Greedy outputs
equal the hf backend's up to numerics (tested against the real engine). Sampled outputs are
seeded per prompt (``SamplingConfig.request_seed``, vLLM's per-request generator), so they do
not depend on which other prompts are in the run; they differ from the hf backend's samples.

vLLM takes the model from disk: edited models are saved first (``harness.models.materialise``).
The engine also stops at extra EOS ids listed in the model's ``generation_config.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.backends.base import Advance, Backend, Completion, SamplingConfig
from harness.errors import ToxbenchError
from harness.tokenization import encode


class VLLMBackend(Backend):
    name = "vllm"
    runs_hooks = False  # the engine runs its own copy of the weights
    loads_from_memory = False
    single_engine = True
    # How many prompts the runner hands over at once: the engine schedules its own batches.
    batch_size = 1024

    def __init__(
        self,
        model_path: str | Path,
        tokenizer,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float | None = None,
        seed: int = 0,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        data_parallel_size: int = 1,
        **engine_kwargs: Any,
    ) -> None:
        """Start an engine on ``model_path``; ``engine_kwargs`` go to ``vllm.LLM`` unchanged.

        Parallelism is vLLM's own: ``tensor_parallel_size`` (GPUs sharing each layer),
        ``pipeline_parallel_size`` (GPUs holding consecutive layers) and ``data_parallel_size``
        (engine replicas inside vLLM), all passed through. toxbench's own data parallelism is the
        Ray executor's ``replicas``, each an engine on ``gpus_per_replica`` GPUs.

        ``dtype="auto"`` is vLLM's choice, which runs float32 checkpoints in 16 bits; pass
        ``"float32"`` for outputs that match the hf backend on such models. The default
        ``gpu_memory_utilization`` is 0.9 on accelerators and 0.3 on CPU builds, where it is the
        fraction of the NUMA node's RAM reserved for weights and KV cache.
        """
        # The in-process engine loads in seconds and exits cleanly; set to 1 to overlap scheduling.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if "VLLM_CACHE_ROOT" not in os.environ:
            from harness.io import toxbench_home

            os.environ["VLLM_CACHE_ROOT"] = str(toxbench_home() / "vllm")
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError as exc:
            raise ToxbenchError(
                f"the vllm backend needs the vllm package ({exc}): pip install 'toxbench[vllm]', "
                "or use --backend hf"
            ) from exc

        self._vllm = vllm
        self._tokenizer = tokenizer
        if gpu_memory_utilization is None:
            gpu_memory_utilization = 0.3 if current_platform.is_cpu() else 0.9
        # vLLM loads its own copy of the folder's tokenizer (the harness saves one with every model),
        # but it only sees and returns token ids: that copy just supplies the EOS id.
        self.llm = vllm.LLM(
            model=str(model_path),
            tokenizer=str(model_path),
            trust_remote_code=False,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            pipeline_parallel_size=pipeline_parallel_size,
            **({"data_parallel_size": data_parallel_size} if data_parallel_size != 1 else {}),
            **engine_kwargs,
        )
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len

    @classmethod
    def for_model(cls, model: Any, config: Any) -> VLLMBackend:
        """An engine on the model's folder (an edited model is saved first)."""
        from harness.models import materialise

        return cls(
            materialise(model),
            model.tokenizer,
            dtype=config.dtype or "auto",
            seed=config.seed,
            **config.backend_options,
        )

    @classmethod
    def chunk_size(cls, model: Any, config: Any) -> int:
        return cls.batch_size

    @property
    def tokenizer(self):
        return self._tokenizer

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "vllm": self._vllm.__version__}

    def close(self) -> None:
        """Shut the engine down and free its memory, so that the next model's engine fits."""
        import gc

        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        del self.llm
        gc.collect()
        cleanup_dist_env_and_memory()

    def _completion(self, new_ids: Sequence[int]) -> Completion:
        new_ids = list(new_ids)
        eos = self._tokenizer.eos_token_id
        if eos in new_ids:
            new_ids = new_ids[: new_ids.index(eos)]
        return Completion(self._tokenizer.decode(new_ids, skip_special_tokens=True), new_ids)

    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, advance: Advance | None = None
    ) -> list[list[Completion]]:
        from vllm import SamplingParams

        encoded = encode(self._tokenizer, prompts)
        for prompt, ids in zip(prompts, encoded, strict=True):
            if len(ids) + sampling.max_new_tokens > self.max_model_len:
                raise ValueError(
                    f"prompt of {len(ids)} tokens plus {sampling.max_new_tokens} new tokens exceeds the "
                    f"model's context of {self.max_model_len}: {prompt[:60]!r}... Truncate prompts (the "
                    "task's prompt_tokens setting)."
                )
        common = dict(
            max_tokens=sampling.max_new_tokens,
            stop_token_ids=[self._tokenizer.eos_token_id],
            detokenize=False,
        )
        if sampling.greedy:
            params: SamplingParams | list[SamplingParams] = SamplingParams(temperature=0.0, **common)
        else:
            params = [
                SamplingParams(
                    n=sampling.n,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    seed=sampling.request_seed(prompt),
                    **common,
                )
                for prompt in prompts
            ]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in encoded], params, use_tqdm=False)
        if advance:
            advance(len(prompts))
        return [[self._completion(o.token_ids) for o in out.outputs] for out in outputs]

    def window_nll(self, windows: Sequence[Sequence[int]]) -> list[tuple[float, int]]:
        from vllm import SamplingParams

        if any(len(w) < 2 for w in windows):
            raise ValueError("perplexity windows need at least 2 tokens")
        requests, params = [], []
        for w in windows:
            # vLLM refuses prompts as long as its context, and windows often are: the last token is
            # scored as the first generated position instead of as a prompt token.
            requests.append({"prompt_token_ids": list(w[:-1])})
            params.append(
                SamplingParams(
                    max_tokens=1,
                    temperature=0.0,
                    prompt_logprobs=0,
                    logprob_token_ids=[w[-1]],
                    detokenize=False,
                )
            )
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        out: list[tuple[float, int]] = []
        for w, res in zip(windows, outputs, strict=True):
            # prompt_logprobs[0] is None: the first token has no context.
            nll = -sum(lp[tok].logprob for tok, lp in zip(w[1:-1], res.prompt_logprobs[1:], strict=True))
            nll -= res.outputs[0].logprobs[0][w[-1]].logprob
            out.append((float(nll), len(w) - 1))
        return out
