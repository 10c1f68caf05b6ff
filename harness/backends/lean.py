"""Bit-identical, leaner forwards for activation modules written as chains of tensor operations.

GPT-2's ``gelu_new`` (transformers' ``NewGELUActivation``, also GPT-J's, CodeGen's and Phi-1's)
is eight element-wise operations, each allocating a tensor the size of the MLP's hidden
layer; on a small model it is a fifth of a greedy decoding step. ``lean_activations(model)``
gives each such module, while active, a forward that runs the same operations in the same
order on one buffer (in place): every value is the same, bit for bit (tested), and the
module stays the module, so hooks on it (capture, patching) see and replace what they did.
A module of another class is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_new_in_place(x):
    """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))), as ``NewGELUActivation`` orders it."""
    import torch

    y = torch.pow(x, 3.0)
    y.mul_(0.044715).add_(x).mul_(_SQRT_2_OVER_PI).tanh_().add_(1.0)
    return (0.5 * x).mul_(y)


def _lean_forwards() -> dict[type, Callable]:
    from transformers.activations import NewGELUActivation

    return {NewGELUActivation: _gelu_new_in_place}


@contextmanager
def lean_activations(model) -> Iterator[None]:
    """While active, the model's activation modules of a known class run their lean forward.

    Only without gradients: an in-place chain would hold fewer tensors than autograd needs."""
    import torch

    if torch.is_grad_enabled():
        yield
        return
    lean = _lean_forwards()
    swapped = []
    for module in model.modules():
        forward = lean.get(type(module))
        if forward is not None and "forward" not in module.__dict__:
            module.forward = forward
            swapped.append(module)
    try:
        yield
    finally:
        for module in swapped:
            del module.forward
