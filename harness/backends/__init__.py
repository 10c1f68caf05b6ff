"""Generation backends: one interface (``Backend``) over transformers and vLLM."""

from harness.backends.base import Backend, Completion, SamplingConfig

__all__ = ["Backend", "Completion", "SamplingConfig"]
