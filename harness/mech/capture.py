"""Neuron statistics captured while generating ([B] §8), as running sums.

During greedy generation, at the last position of every step (the prompt pass, then one
token at a time), hooks add each neuron's activation a_i and each MLP's output to running
sums; a row that has emitted EOS stops counting. Nothing is stored per step and no
second forward pass is made. From the sums: the mean activation ā_i and the mean MLP
writing, whose projection on any direction gives p_i = ā_i ⟨v_i, ŵ⟩ and its direct check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from toxbench.mech.hooks import mlp_activation_hooks
from toxbench.mech.neurons import neuron_adapter


@dataclass
class NeuronSums:
    """Per layer: Σ a (d_mlp) and Σ MLP output (d_model) over counted steps, and the count."""

    act: np.ndarray  # [n_layers, d_mlp]
    mlp_out: np.ndarray  # [n_layers, d_model]
    steps: int

    def __add__(self, other: NeuronSums) -> NeuronSums:
        return NeuronSums(self.act + other.act, self.mlp_out + other.mlp_out, self.steps + other.steps)

    def mean_activation(self) -> np.ndarray:
        return self.act / max(self.steps, 1)

    def mean_mlp_out(self) -> np.ndarray:
        return self.mlp_out / max(self.steps, 1)

    def to_json(self) -> dict:
        return {"act": self.act.tolist(), "mlp_out": self.mlp_out.tolist(), "steps": self.steps}

    @classmethod
    def from_json(cls, d: dict) -> NeuronSums:
        return cls(
            np.asarray(d["act"], dtype=np.float64),
            np.asarray(d["mlp_out"], dtype=np.float64),
            int(d["steps"]),
        )


class _Accumulator:
    def __init__(self, n_layers: int, d_mlp: int, d_model: int, stop_ids: set[int]) -> None:
        self.act = torch.zeros(n_layers, d_mlp, dtype=torch.float64)
        self.out = torch.zeros(n_layers, d_model, dtype=torch.float64)
        self.steps = 0
        self.stop_ids = torch.tensor(sorted(stop_ids), dtype=torch.long)
        # Set by every forward pass: the indices of the rows that count (None: all of them).
        self.active: torch.Tensor | None = None

    def on_forward(self, input_ids: torch.Tensor) -> None:
        # The prompt pass counts every row; an incremental step fed an EOS/pad token is past the end
        # (the hf backend feeds padding to finished rows until it drops them, as ``generate`` does).
        if input_ids.shape[1] > 1:
            self.active = None
            self.steps += input_ids.shape[0]
            return
        fed = input_ids[:, -1]
        counted = ~torch.isin(fed, self.stop_ids.to(fed.device))
        n = int(counted.sum())
        self.active = None if n == len(fed) else counted.nonzero()[:, 0]
        self.steps += n

    def _last_position_sum(self, x: torch.Tensor) -> torch.Tensor:
        last = x[:, -1, :].detach()
        if self.active is not None:
            last = last.index_select(0, self.active.to(last.device))
        return last.sum(0, dtype=torch.float64).cpu()

    def add_act(self, layer: int, act: torch.Tensor) -> None:
        self.act[layer] += self._last_position_sum(act)

    def add_out(self, layer: int, out: torch.Tensor) -> None:
        self.out[layer] += self._last_position_sum(out)

    def sums(self) -> NeuronSums:
        return NeuronSums(self.act.numpy(), self.out.numpy(), self.steps)


@contextmanager
def capture_neuron_sums(model, tokenizer) -> Iterator[_Accumulator]:
    """While active, every forward of ``model`` adds its last-position statistics to the sums."""
    adapter = neuron_adapter(model)
    stop = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
    acc = _Accumulator(adapter.n_layers, adapter.d_mlp, adapter.d_model, stop)

    def pre_hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        acc.on_forward(ids)

    handles = [model.register_forward_pre_hook(pre_hook, with_kwargs=True)]
    for layer in range(adapter.n_layers):
        handles.append(
            adapter.mlp(layer).register_forward_hook(
                lambda _m, _i, out, layer=layer: acc.add_out(layer, out[0] if isinstance(out, tuple) else out)
            )
        )
    try:
        with mlp_activation_hooks(model, range(adapter.n_layers), acc.add_act):
            yield acc
    finally:
        for h in handles:
            h.remove()
