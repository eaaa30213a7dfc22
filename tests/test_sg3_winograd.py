"""Winograd F(4x4, 3x3) for the frozen StyleGAN3 layers: the CPU plugin's chunked transforms and GEMMs
(by torch's BLAS and by the plugin's own) against a float64 direct convolution, and when the frozen
layers take that path.

Oracle: F.conv2d in float64 of the same scaled input and weights (padding 2, as StyleGAN3's).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylegen import load_network
from stylegen.networks import sg3_winograd

import ops_helpers

cpu_plugin = ops_helpers.cpu_plugin
cpu_gemm = ops_helpers.cpu_gemm
row_isa = ops_helpers.row_isa

# (N, C, O, H, W): odd and even sizes (a last half tile), one pixel, several images.
SHAPES = [(1, 1, 1, 1, 1), (2, 5, 7, 4, 5), (1, 16, 8, 9, 9), (3, 6, 4, 2, 7), (1, 64, 32, 21, 30), (2, 33, 17, 12, 1)]


def _reference(x, w, s, d):
    y = F.conv2d((x * s[:, :, None, None]).double(), w.double(), padding=2)
    return y * d[:, :, None, None].double()


# Rows of 4x4 tiles per chunk: one, all but one (a shorter last chunk), and the default budget
# (all rows at once for these shapes). A buffer of one row of tiles holds 36 * max(C, O) * N * tw floats.
CHUNKS = ("one row", "a shorter last", "default")


def _budget(chunk: str, n: int, c: int, o: int, h: int, w: int) -> int:
    rows, row = (h + 5) // 4, 36 * max(c, o) * n * ((w + 5) // 4)
    return {"one row": row, "a shorter last": max(rows - 1, 1) * row, "default": sg3_winograd.BUDGET}[chunk]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("n, c, o, h, w", SHAPES)
def test_matches_a_direct_convolution(cpu_plugin, cpu_gemm, n, c, o, h, w, chunk):
    g = torch.Generator().manual_seed(n * 1000 + c * 10 + h)
    x = torch.randn([n, c, h, w], generator=g)
    wt = torch.randn([o, c, 3, 3], generator=g) / (9 * c) ** 0.5
    s, d = torch.rand([n, c], generator=g) + 0.5, torch.rand([n, o], generator=g) + 0.5
    budget = _budget(chunk, n, c, o, h, w)
    y = sg3_winograd.conv3x3_full(cpu_plugin, x, sg3_winograd.winograd_weights(wt), s, d, budget)
    want = _reference(x, wt, s, d)
    assert y.shape == (n, o, h + 2, w + 2) and y.dtype == torch.float32
    # float32 rounding of the transforms and GEMM: a few ulps of the sum of |products|
    bound = _reference(x.abs(), wt.abs(), s, d).amax() * 2e-6
    assert (y.double() - want).abs().max() <= bound


def test_every_vector_width_gives_the_same_bits(cpu_plugin, row_isa):
    """The transforms' loops at 64-, 32- and 16-byte vectors (each CPU runs its widest) compute
    the same bits: rows of tiles past one 64-byte vector block (16 tiles) with a tail, and one
    of fewer tiles than a 16-byte vector."""
    g = torch.Generator().manual_seed(7)
    cases = []
    for n, c, o, h, w in [(1, 3, 5, 9, 70), (2, 4, 3, 13, 37), (1, 2, 2, 6, 3)]:
        x = torch.randn([n, c, h, w], generator=g)
        u = sg3_winograd.winograd_weights(torch.randn([o, c, 3, 3], generator=g))
        cases.append((x, u, torch.rand([n, c], generator=g) + 0.5, torch.rand([n, o], generator=g) + 0.5))
    results = {
        isa: [sg3_winograd.conv3x3_full(cpu_plugin, *case, budget=1 << 12) for case in cases]
        for isa in ops_helpers.each_row_isa(row_isa)
    }
    assert "base" in results
    for isa, ys in results.items():
        for y, want in zip(ys, results["base"]):
            assert torch.equal(y, want), isa


# The Lagrange rows (1, p, p^2) / prod (p - q) at the points 0, 1, -1, 1/2, -2 and (0, 0, 1), by hand.
G_BY_HAND = torch.tensor(
    [
        [1, 0, 0],
        [1 / 3, 1 / 3, 1 / 3],
        [-1 / 3, 1 / 3, -1 / 3],
        [-16 / 15, -8 / 15, -4 / 15],
        [1 / 15, -2 / 15, 4 / 15],
        [0, 0, 1],
    ],
    dtype=torch.float64,
)


def test_weight_transform_by_hand():
    """G g G^T of a kernel with one 1 at (r, c): the outer product of G's columns r and c."""
    G = G_BY_HAND
    for r in range(3):
        for c in range(3):
            w = torch.zeros([1, 1, 3, 3])
            w[0, 0, r, c] = 1
            u = sg3_winograd.winograd_weights(w).reshape(6, 6)
            assert torch.equal(u, torch.outer(G[:, r], G[:, c]).float())
    with pytest.raises(ValueError, match="3x3"):
        sg3_winograd.winograd_weights(torch.zeros([1, 1, 1, 1]))


def test_weight_transform_of_a_layer():
    """Every channel pair's G g G^T in float64, rounded once (to an ulp: the sums' order is the
    transform's), in [36, O, C] order; O x C = 8730 runs past the transform's chunk of pairs."""
    assert sg3_winograd._PAIRS < 97 * 90 < 2 * sg3_winograd._PAIRS
    w = torch.randn([97, 90, 3, 3], generator=torch.Generator().manual_seed(3))
    want = torch.einsum("ai,ocij,bj->aboc", G_BY_HAND, w.double(), G_BY_HAND).reshape(36, 97, 90)
    torch.testing.assert_close(sg3_winograd.winograd_weights(w), want.float(), rtol=2**-23, atol=1e-12)


@pytest.fixture(scope="module")
def frozen_t(compat_dir):
    return load_network(compat_dir / "sg3t_small.pkl").freeze()


def _count_calls(monkeypatch) -> list:
    calls = []
    real = sg3_winograd.conv3x3_full
    monkeypatch.setattr(sg3_winograd, "conv3x3_full", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_frozen_layers_use_it_for_inference(cpu_plugin, frozen_t, monkeypatch):
    calls = _count_calls(monkeypatch)
    ws = torch.randn([2, frozen_t.num_ws, frozen_t.w_dim])
    with torch.no_grad():
        frozen_t.synthesis(ws)
    assert len(calls) == len(frozen_t.synthesis.layer_names) - 1  # every 3x3 layer; not the 1x1 RGB layer


def test_not_with_gradients_or_the_reference_ops(cpu_plugin, frozen_t, monkeypatch):
    calls = _count_calls(monkeypatch)
    ws = torch.randn([1, frozen_t.num_ws, frozen_t.w_dim], requires_grad=True)
    img = frozen_t.synthesis(ws)  # projection: a gradient w.r.t. ws
    img.sum().backward()
    assert ws.grad is not None and not calls
    monkeypatch.setenv("STYLEGEN_OPS", "ref")
    with torch.no_grad():
        frozen_t.synthesis(ws.detach())
    assert not calls
