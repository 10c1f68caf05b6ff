"""toxbench: evaluate how safety alignment changes a language model.

Importing this package is cheap and offline: heavy libraries (torch, transformers,
vllm, detoxify) are imported only by the modules that use them, when they are used.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``toxbench.evaluate`` and ``toxbench.Results``, imported when first used."""
    if name in ("evaluate", "Results"):
        from toxbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'toxbench' has no attribute {name!r}")


__all__ = ["Results", "__version__", "evaluate"]
