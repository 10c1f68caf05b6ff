"""Generation backends: one interface (``Backend``) over transformers and vLLM."""

from __future__ import annotations

from typing import Any

from toxbench.backends.base import Backend, Completion, SamplingConfig

__all__ = ["Backend", "Completion", "SamplingConfig", "build", "with_hooks"]


def build(cls: type[Backend], model: Any, config: Any, live: dict[str, Backend]) -> Backend:
    """``cls``'s backend for ``model``, given the backends alive (keyed by model fingerprint).

    A backend that holds an engine runs ``model`` on a live engine where one can serve it;
    otherwise the live backends are closed (and removed from ``live``) first, so that one
    engine is alive at a time."""
    if cls.single_engine:
        for other in live.values():
            shared = other.serve(model, config)
            if shared is not None:
                return shared
        for fingerprint in list(live):
            live.pop(fingerprint).close()
    return cls.for_model(model, config)


def with_hooks(model: Any, config: Any) -> Backend:
    """A hooks-capable backend for ``model`` (transformers, on the loaded model), whatever the run's backend.

    For passes that read or change activations (attribution's capture, activation patching),
    which an engine running its own copy of the weights cannot serve.
    """
    factory: Any = hooks_backend_class()  # a concrete backend: (model, tokenizer, batch_size=...)
    return factory(model.model, model.tokenizer, batch_size=config.batch_size)


def hooks_backend_class() -> type[Backend]:
    """The backend ``with_hooks`` builds."""
    from toxbench.backends.hf import HFBackend

    return HFBackend
