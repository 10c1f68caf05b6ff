"""ProFS's linear algebra on tensors: the subspace it finds, the centring, the projection, its settings."""

from __future__ import annotations

import pytest
import torch

from toxbench.baselines.profs import (
    PAPER_LAYERS,
    ProFSMethod,
    ProFSSettings,
    draw_pairs,
    parse_layers,
    project_out,
    resolve_layers,
    toxic_subspace,
)
from toxbench.errors import ToxbenchError

D, N = 24, 200


def _orthonormal(d: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64)).Q


def _principal_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosines of the principal angles between span(a) and span(b) (orthonormal columns)."""
    return torch.linalg.svdvals(a.T @ b)


def _pairs(toxic_dirs: torch.Tensor, common: torch.Tensor, common_in_diff: float, seed: int = 1):
    """Non-toxic embeddings: a large shared component along ``common`` plus noise; each toxic twin adds a
    mix of ``toxic_dirs``, a little noise, and ``common_in_diff`` x the shared component."""
    g = torch.Generator().manual_seed(seed)
    scale = 20.0 + torch.rand(N, 1, generator=g, dtype=torch.float64)
    non_toxic = scale * common + 0.5 * torch.randn(N, D, generator=g, dtype=torch.float64)
    mix = torch.randn(N, toxic_dirs.shape[1], generator=g, dtype=torch.float64) * 3.0
    noise = 0.05 * torch.randn(N, D, generator=g, dtype=torch.float64)
    toxic = non_toxic + mix @ toxic_dirs.T + noise + common_in_diff * scale * common
    return toxic, non_toxic


def test_the_subspace_of_planted_toxic_directions_is_found() -> None:
    planted = _orthonormal(D, 3, seed=0)
    common = _orthonormal(D, 1, seed=5)[:, 0]
    common = common - planted @ (planted.T @ common)
    common = common / common.norm()
    toxic, non_toxic = _pairs(planted, common, common_in_diff=0.0)
    found = toxic_subspace(toxic, non_toxic, 3)
    assert found.basis.shape == (D, 3) and found.basis.dtype == torch.float64
    torch.testing.assert_close(found.basis.T @ found.basis, torch.eye(3, dtype=torch.float64))
    assert _principal_cosines(found.basis, planted).min() > 0.999
    assert found.singular_values[2] > 10 * found.singular_values[3]  # the gap after the planted rank
    # A smaller k finds a subspace inside the planted one.
    assert _principal_cosines(toxic_subspace(toxic, non_toxic, 2).basis, planted).min() > 0.999


def test_centring_removes_the_direction_every_sentence_shares() -> None:
    """Where the toxic texts also differ along the shared direction (longer, more frequent tokens), T's top
    direction is that one; centring projects it out first, leaving the toxic subspace."""
    planted = _orthonormal(D, 2, seed=0)
    common = _orthonormal(D, 1, seed=5)[:, 0]
    common = common - planted @ (planted.T @ common)
    common = common / common.norm()
    toxic, non_toxic = _pairs(planted, common, common_in_diff=0.5)
    raw = toxic_subspace(toxic, non_toxic, 2, centre=False).basis
    centred = toxic_subspace(toxic, non_toxic, 2, centre=True).basis
    assert abs(float(raw[:, 0] @ common)) > 0.9  # uncentred: the shared direction comes first
    shared = torch.linalg.svd(non_toxic, full_matrices=False).Vh[0]  # the estimate of `common` centring uses
    assert float(torch.linalg.norm(centred.T @ shared)) < 1e-10
    assert float(torch.linalg.norm(centred.T @ common)) < 0.01
    assert _principal_cosines(centred, planted).min() > 0.999


def test_project_out_leaves_no_component_in_the_subspace_and_keeps_the_rest() -> None:
    basis = _orthonormal(D, 3, seed=2)
    values = torch.randn(50, D, generator=torch.Generator().manual_seed(3))  # float32, as weights are
    projected = project_out(values, basis)
    assert projected.dtype == values.dtype and projected.shape == values.shape
    assert float(torch.linalg.norm(projected.double() @ basis)) < 1e-5
    # What lies outside the subspace is untouched, and projecting twice changes nothing more.
    outside = torch.eye(D, dtype=torch.float64) - basis @ basis.T
    torch.testing.assert_close(projected.double(), values.double() @ outside, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(project_out(projected, basis), projected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(projected, values, atol=1e-3)
    bias = torch.randn(D)
    assert float((project_out(bias, basis).double() @ basis).abs().max()) < 1e-5  # a vector too


def test_toxic_subspace_refuses_mismatched_inputs_and_too_large_a_rank() -> None:
    a = torch.randn(5, D)
    with pytest.raises(ValueError, match="matching \\[N, d\\]"):
        toxic_subspace(a, torch.randn(6, D), 2)
    with pytest.raises(ValueError, match="k=6 must lie between 1 and min\\(N=5"):
        toxic_subspace(a, torch.randn(5, D), 6)


@pytest.mark.parametrize(
    ("spec", "n_layers", "expected"),
    [
        (PAPER_LAYERS, 24, list(range(10, 24))),  # the released GPT2-medium config: layers 10..23
        (PAPER_LAYERS, 32, list(range(13, 32))),
        (PAPER_LAYERS, 4, [2, 3]),  # the default organism
        (PAPER_LAYERS, 2, [1]),  # the micro organism
        ("10:24", 24, list(range(10, 24))),
        ("-2:", 24, [22, 23]),
        (":", 3, [0, 1, 2]),
        ("0.0:0.5", 4, [0, 1]),
        ("1:0.75", 4, [1, 2]),
    ],
)
def test_layer_ranges_resolve_by_index_or_by_fraction_of_the_depth(spec, n_layers, expected) -> None:
    assert resolve_layers(spec, n_layers) == expected


def test_bad_layer_ranges_are_refused_with_what_to_write() -> None:
    for spec in ("10", "1:2:3", "a:b", "0.5:1.5"):
        with pytest.raises(ValueError, match=f"layers={spec!r}"):
            parse_layers(spec)
    with pytest.raises(ToxbenchError, match="names no layers of this model \\(it has 2.*resolves to 5:9"):
        resolve_layers("5:9", 2)
    with pytest.raises(ToxbenchError, match="resolves to 2:1"):
        resolve_layers("2:1", 4)


def test_settings_are_checked_with_clear_errors() -> None:
    method = ProFSMethod()
    defaults = method.settings({})
    assert (defaults.layers, defaults.k, defaults.n_pairs, defaults.centre) == (PAPER_LAYERS, 2, 500, True)
    assert defaults.project_bias is False and defaults.max_tokens == 128
    for overrides, message in [
        ({"k": 0}, "k must be a whole number ≥ 1, got 0"),
        ({"k": 2.5}, "k must be a whole number"),
        ({"n_pairs": 0}, "n_pairs must be a whole number ≥ 1"),
        ({"k": 10, "n_pairs": 4}, "k=10 exceeds n_pairs=4"),
        ({"layers": "10"}, "layers='10' is not a range"),
        ({"centre": "yes"}, "centre must be true or false"),
        ({"max_tokens": 0}, "max_tokens must be"),
    ]:
        with pytest.raises(ToxbenchError, match=f"method 'profs': {message}"):
            method.settings(overrides)
    with pytest.raises(ToxbenchError, match="'rank' \\(did you mean 'k'|unknown option"):
        method.settings({"rank": 3})
    assert ProFSSettings(n_pairs=None).n_pairs is None


def test_pairs_are_drawn_by_seed_and_stay_whole() -> None:
    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(40)]
    a, b, c = draw_pairs(rows, 10, 0), draw_pairs(rows, 10, 0), draw_pairs(rows, 10, 1)
    assert a == b and a != c and len(a) == 10
    assert all(r["chosen"][1:] == r["rejected"][1:] == r["prompt"][1:] for r in a)  # pairs never split
    assert [int(r["prompt"][1:]) for r in a] == sorted(int(r["prompt"][1:]) for r in a)
    assert draw_pairs(rows, 40, 3) == rows
