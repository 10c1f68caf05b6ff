"""Generation backends: one interface (``Backend``) over transformers and vLLM."""

from __future__ import annotations

from typing import Any

from harness.backends.base import Backend, Completion, SamplingConfig

__all__ = ["Backend", "Completion", "SamplingConfig", "with_hooks"]


def with_hooks(model: Any, config: Any) -> Backend:
    """A hooks-capable backend for ``model`` (transformers, on the loaded model), whatever the run's backend.

    For passes that read or change activations (attribution's capture, activation patching),
    which an engine running its own copy of the weights cannot serve.
    """
    factory: Any = hooks_backend_class()  # a concrete backend: (model, tokenizer, batch_size=...)
    return factory(model.model, model.tokenizer, batch_size=config.batch_size)


def hooks_backend_class() -> type[Backend]:
    """The backend ``with_hooks`` builds."""
    from harness.backends.hf import HFBackend

    return HFBackend
