"""toxbench: evaluate how safety alignment changes a language model.

Importing this package is cheap and offline: heavy libraries (torch, transformers,
vllm, detoxify) are imported only by the modules that use them, when they are used.
"""

__version__ = "0.1.0"
