"""A teacher-forced pass with activation patching on (the ablation task's patch variants, scored for
perplexity) against the same pass unhooked: same model, same Wikitext windows, same run. The
patch sets a tenth of every layer's neurons, at every position, to fixed values (as the patch to
the aligned model's mean does); its cost should stay within 1.3x of the unhooked pass."""

from __future__ import annotations

import numpy as np
import pytest

from toxbench.backends.hf import HFBackend
from toxbench.data import load_wikitext
from toxbench.fluency import FluencySettings, perplexity_windows
from toxbench.mech.hooks import patch_to_means
from toxbench.mech.neurons import neuron_adapter


@pytest.fixture(scope="module")
def setup(bench_organism):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bench_organism.base_dir)
    model = AutoModelForCausalLM.from_pretrained(bench_organism.base_dir).eval()
    window = FluencySettings().window_for(model)
    windows = perplexity_windows(tok, load_wikitext(bench_organism.data_dir).rows, window)
    adapter = neuron_adapter(model)
    rng = np.random.default_rng(0)
    masks = rng.random((adapter.n_layers, adapter.d_mlp)) < 0.1
    target = rng.normal(size=(adapter.n_layers, adapter.d_mlp)).astype(np.float32)
    return HFBackend(model, tok, batch_size="auto"), windows, masks, target


def patched_pass(backend, windows, masks, target):
    with patch_to_means(backend.model, masks, target):
        return backend.window_nll(windows)


@pytest.mark.benchmark(group="teacher-forced pass, Wikitext windows")
def test_unhooked_pass(benchmark, compare, setup) -> None:
    backend, windows, _, _ = setup
    out = benchmark.pedantic(backend.window_nll, args=(windows,), rounds=5, iterations=1, warmup_rounds=1)
    compare(benchmark, "patching", "baseline")
    assert len(out) == len(windows)


@pytest.mark.benchmark(group="teacher-forced pass, Wikitext windows")
def test_patched_pass(benchmark, compare, setup) -> None:
    backend, windows, masks, target = setup
    out = benchmark.pedantic(patched_pass, args=setup, rounds=5, iterations=1, warmup_rounds=1)
    compare(benchmark, "patching", "candidate")
    plain = backend.window_nll(windows)
    assert len(out) == len(plain)
    assert sum(n for n, _ in out) != pytest.approx(sum(n for n, _ in plain), rel=1e-3)  # the patch acted
