"""The vLLM backend: the hf backend's prompts, decoding and outputs, run by the vLLM engine.

Prompts are tokenised by the given HF tokenizer, with its special-token defaults (BOS
where it adds one, as the hf backend does), and handed to the engine as token ids, and
outputs are decoded by that tokenizer, so both backends see the same tokens. Greedy outputs
equal the hf backend's up to numerics (tested against the real engine). Sampled outputs are
seeded per prompt (``SamplingConfig.request_seed``, vLLM's per-request generator), so they do
not depend on which other prompts are in the run; they differ from the hf backend's samples.

vLLM takes its first model from disk (an edited model is saved first,
``toxbench.models.materialise``). Every later model of the same shape (an intervention variant,
an aligned model fine-tuned from the base) is served by the same engine: the tensors that
differ are loaded into it in place (``toxbench.backends.vllm_weights``) when that model's
backend is next used, and loaded back when the first one's is. ``in_place_weights=False`` (a
backend option) starts an engine per model instead. The engine also stops at extra EOS ids
listed in the model's ``generation_config.json``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toxbench.backends.base import Advance, Backend, Completion, SamplingConfig
from toxbench.errors import ToxbenchError
from toxbench.tokenization import encode

log = logging.getLogger("toxbench")


class _Engine:
    """A ``vllm.LLM``, the tensors it now holds (the driver's copy: ``None`` when it cannot swap
    them), the ``signature`` of the models it can run, and how many backends use it."""

    def __init__(self, llm: Any, weights: Mapping[str, Any] | None, signature: dict[str, Any] | None) -> None:
        self.llm = llm
        self.weights = weights
        self.signature = signature
        self.users = 1
        self.swaps = 0  # in-place loads so far, and the tensors they sent
        self.tensors_sent = 0
        self.failed: str | None = None  # why a load failed: the engine's weights are then unknown

    def hold(self, weights: Mapping[str, Any] | None) -> None:
        """Make the engine run ``weights``: load the blocks that differ from what it holds."""
        from toxbench.backends.vllm_weights import tensors_to_send, write_weights

        if self.failed is not None:
            raise ToxbenchError(self.failed)
        if weights is None or self.weights is None or weights is self.weights:
            return
        start = time.perf_counter()
        send = tensors_to_send(self.weights, weights)
        if send:
            path = write_weights(send)
            try:
                self.llm.collective_rpc("toxbench_load_weights", args=(path,))
            except Exception as exc:
                # Some layers may hold the new tensors and some the old: nothing may run on it now.
                self.failed = (
                    f"loading {len(send)} tensors into the running vLLM engine failed ({type(exc).__name__}: "
                    f"{exc}); finished work is cached: run again with --backend-args in_place_weights=false "
                    "to start an engine per model instead"
                )
                raise ToxbenchError(self.failed) from exc
            finally:
                os.unlink(path)
            self.llm.reset_prefix_cache()  # its blocks were computed with the old weights
            self.swaps += 1
            self.tensors_sent += len(send)
        self.weights = weights
        log.debug("vllm: %d tensors loaded in place in %.2f s", len(send), time.perf_counter() - start)

    def shutdown(self) -> None:
        import gc

        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        del self.llm
        gc.collect()
        cleanup_dist_env_and_memory()


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
        loaded: Any = None,
        in_place_weights: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        """Start an engine on ``model_path``; ``engine_kwargs`` go to ``vllm.LLM`` unchanged.

        ``loaded`` is the folder's model as loaded in memory: given it, and unless
        ``in_place_weights`` is false, the engine can later run other models of the same shape
        by loading the tensors that differ from it in place (``serve``).

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
            from toxbench.io import toxbench_home

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
        swappable = in_place_weights and loaded is not None
        if swappable:
            from toxbench.backends.vllm_weights import WORKER_EXTENSION

            engine_kwargs.setdefault("worker_extension_cls", WORKER_EXTENSION)
        # vLLM loads its own copy of the folder's tokenizer (the harness saves one with every model),
        # but it only sees and returns token ids: that copy just supplies the EOS id.
        llm = vllm.LLM(
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
        if swappable:
            from toxbench.backends.vllm_weights import signature

            self._engine = _Engine(llm, loaded.state_dict(), signature(loaded))
        else:
            self._engine = _Engine(llm, None, None)
        self._weights = self._engine.weights
        self._closed = False
        self.max_model_len: int = llm.llm_engine.model_config.max_model_len

    @property
    def llm(self) -> Any:
        """The engine, holding this backend's model's weights."""
        self._engine.hold(self._weights)
        return self._engine.llm

    @classmethod
    def for_model(cls, model: Any, config: Any) -> VLLMBackend:
        """An engine on the model's folder (an edited model is saved first)."""
        from toxbench.models import materialise

        return cls(
            materialise(model),
            model.tokenizer,
            loaded=model.model,
            dtype=config.dtype or "auto",
            seed=config.seed,
            **config.backend_options,
        )

    def serve(self, model: Any, config: Any) -> VLLMBackend | None:
        """A backend for ``model`` on this engine, its differing tensors loaded in place on first
        use; ``None`` (with the reason in the log) where the engine cannot run it."""
        from toxbench.backends.vllm_weights import signature

        engine = self._engine
        reason = None
        if engine.weights is None:
            reason = "the engine was started without in-place weights (in_place_weights=false)"
        elif not model.notes.get("saveable", True):
            reason = "the model exists only as hooks"
        elif model.tokenizer.eos_token_id != self._tokenizer.eos_token_id:
            reason = "its tokenizer has another EOS token"
        elif signature(model.model) != engine.signature:
            reason = "its configuration or tensor shapes differ from the running model's"
        if reason is not None:
            log.info("vllm: a new engine for %s: %s", model.name, reason)
            return None
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._tokenizer = model.tokenizer
        view._weights = model.model.state_dict()
        view._closed = False
        engine.users += 1
        log.info("vllm: %s runs on the live engine (its changed tensors are loaded in place)", model.name)
        return view

    @classmethod
    def chunk_size(cls, model: Any, config: Any) -> int:
        return cls.batch_size

    @property
    def tokenizer(self):
        return self._tokenizer

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "vllm": self._vllm.__version__}

    def close(self) -> None:
        """Let go of the engine; the last backend using it shuts it down and frees its memory,
        so that the next model's engine fits."""
        if self._closed:
            return
        self._closed = True
        self._engine.users -= 1
        if self._engine.users == 0:
            self._engine.shutdown()

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
