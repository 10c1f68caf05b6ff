"""The generation backend interface, shared by the ``hf`` and ``vllm`` backends."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# How sampled continuations draw their randomness. 1: one generator per prompt, its samples drawn
# together (outputs depended on the batch size). 2: one generator per (prompt, sample), each token
# drawn by inverting the row's distribution at the row's next uniform number.
SAMPLING_STREAMS = 2


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding parameters. ``greedy`` ignores temperature and top-p; ``n`` samples per prompt."""

    max_new_tokens: int = 20
    greedy: bool = True
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.greedy and self.n != 1:
            raise ValueError("greedy decoding gives one continuation per prompt: use n=1 or sampling")
        if self.max_new_tokens < 1 or self.n < 1:
            raise ValueError("max_new_tokens and n must be positive")
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ValueError("top_p must be in (0, 1] and temperature positive")

    def key(self) -> dict[str, Any]:
        """What determines the output (for cache keys); greedy ignores the sampling knobs. Sampled
        outputs also name the random streams they were drawn from (``SAMPLING_STREAMS``), so that
        samples drawn one way are never served for the other."""
        if self.greedy:
            return {"max_new_tokens": self.max_new_tokens, "greedy": True}
        return {**asdict(self), "streams": SAMPLING_STREAMS}

    def request_seed(self, prompt: str) -> int:
        """A seed per prompt, so a prompt's samples do not depend on what it is batched with."""
        digest = hashlib.sha256(f"{self.seed}\x00{prompt}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def sample_seed(self, prompt: str, index: int) -> int:
        """A seed per (prompt, sample): each continuation draws from its own generator, so it does not
        depend on the batch it shares, the batch size or the order of the prompts."""
        digest = hashlib.sha256(f"{self.seed}\x00{prompt}\x00{index}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass
class Completion:
    text: str
    token_ids: list[int]


Advance = Callable[[int], None]


class Backend(ABC):
    """Generates continuations and measures token log-likelihoods for one loaded model.

    A backend says what it can do, so that no code outside ``harness/backends/`` asks which
    backend it has:

    - ``runs_hooks``: forward hooks on the loaded model see its passes (activation capture,
      patching). A model that exists only as hooks (``notes["saveable"] is False``) or a pass
      that needs them runs on a hooks-capable backend instead (``toxbench.backends.with_hooks``).
    - ``loads_from_memory``: it runs the loaded model itself; without, it reads a folder (an
      edited model is saved first, ``toxbench.models.materialise``).
    - ``single_engine``: it holds an engine of its own; one is kept alive at a time, and
      ``serve`` may run another model on it (``toxbench.backends.build``).
    """

    name: str = "backend"
    runs_hooks: bool = False
    loads_from_memory: bool = True
    single_engine: bool = False

    @classmethod
    def for_model(cls, model: Any, config: Any) -> Backend:
        """The backend for a ``LoadedModel`` under a ``RunConfig`` (its batch size, dtype, seed, options)."""
        factory: Any = cls  # a concrete backend takes (model, tokenizer, batch_size, **options)
        return factory(model.model, model.tokenizer, batch_size=config.batch_size, **config.backend_options)

    @classmethod
    def chunk_size(cls, model: Any, config: Any) -> int:
        """How many items the runner hands this backend at once for a ``LoadedModel`` (and caches
        together): the run's ``batch_size``, or 64 where it is ``"auto"``."""
        return 64 if config.batch_size == "auto" else int(config.batch_size)

    @property
    @abstractmethod
    def tokenizer(self): ...

    @abstractmethod
    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, advance: Advance | None = None
    ) -> list[list[Completion]]:
        """One list of ``sampling.n`` completions per prompt, in the prompts' order."""

    @abstractmethod
    def window_nll(self, windows: Sequence[Sequence[int]]) -> list[tuple[float, int]]:
        """For each token window: (sum of negative log-likelihoods of tokens 2..n, n - 1)."""

    def identity(self) -> dict[str, Any]:
        return {"name": self.name}

    def serve(self, model: Any, config: Any) -> Backend | None:
        """A backend for another ``LoadedModel`` that shares this one's engine (the vllm backend
        loads the tensors that differ in place), or ``None`` where it cannot: the caller then
        closes this backend and builds one for ``model``."""
        return None

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing of their own
        """Free what the backend holds beyond the model (an engine, its cache)."""
