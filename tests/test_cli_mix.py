"""`stylegen mix`: style mixing, layer swapping, ws files, refusals."""

from __future__ import annotations

import cli_helpers
import numpy as np
import torch
from cli_helpers import ok, png, usage_error

import stylegen
from stylegen.editing import mixing

_ref_ops = cli_helpers._ref_ops
nets = cli_helpers.nets


# ---------------------------------------------------------------------------------------------
# mix


def test_mix_one_network(nets, tmp_path):
    result = ok(
        "mix",
        "--coarse",
        nets["a"],
        "--coarse-seeds",
        "0-2",
        "--fine-seeds",
        "5,6",
        "--split",
        8,
        "--outdir",
        tmp_path / "cells",
    )
    assert "ws [0, 1, 2]" in result.output
    grid = png(tmp_path / "cells" / "mix.png")
    assert grid.shape == (3 * 16, 4 * 16, 3)
    assert (grid[:16, :16] == 255).all()  # blank corner
    G = stylegen.load_network(nets["a"])
    ws_src = mixing.ws_from_seeds(G, [0, 1, 2])
    ws_dst = mixing.ws_from_seeds(G, [5, 6])
    with torch.inference_mode():
        tops = stylegen.to_uint8(G.synthesis(ws_src)).numpy()
        row = stylegen.to_uint8(G.synthesis(mixing.mix_ws(ws_dst[1:2], ws_src, [0, 1, 2]))).numpy()
    assert np.array_equal(grid[:16, 32:48], tops[1])
    for i, seed in enumerate([0, 1, 2]):
        cell = png(tmp_path / "cells" / f"mix-c{seed:04d}-f0006.png")
        assert np.array_equal(cell, row[i])
        assert np.array_equal(grid[32:48, 16 * (i + 1) : 16 * (i + 2)], row[i])
    assert len(list((tmp_path / "cells").glob("mix-c*-f*.png"))) == 6


def test_mix_same_file_is_plain_mixing(nets, tmp_path):
    ok(
        "mix",
        "--coarse",
        nets["a"],
        "--fine",
        nets["a"],
        "--out",
        tmp_path / "same.png",
        "--split",
        "middle",
    )
    ok(
        "mix",
        "--coarse",
        nets["a"],
        "--out",
        tmp_path / "default.png",
        "--split",
        "middle",
    )
    assert np.array_equal(png(tmp_path / "same.png"), png(tmp_path / "default.png"))


def test_mix_two_networks_layer_swap(nets, tmp_path):
    result = ok(
        "mix",
        "--coarse",
        nets["a"],
        "--fine",
        nets["b"],
        "--coarse-seeds",
        "0,1",
        "--fine-seeds",
        7,
        "--split",
        8,
        "--outdir",
        tmp_path,
        "--save-network",
        tmp_path / "blend.pkl",
        "--trunc",
        0.8,
    )
    assert "b4" in result.output and "b16" in result.output
    G_a, G_b = stylegen.load_network(nets["a"]), stylegen.load_network(nets["b"])
    G_mix = mixing.layer_swap(G_a, G_b, (4, 8))
    ws = mixing.mix_ws(
        mixing.ws_from_seeds(G_b, [7], 0.8),
        mixing.ws_from_seeds(G_a, [0, 1], 0.8),
        [0, 1, 2],
    )
    with torch.inference_mode():
        expected = stylegen.to_uint8(G_mix.synthesis(ws)).numpy()
        loaded = stylegen.load_network(tmp_path / "blend.pkl")
        reloaded = stylegen.to_uint8(loaded.synthesis(ws)).numpy()
    assert np.array_equal(png(tmp_path / "mix-c0001-f0007.png"), expected[1])
    assert np.array_equal(reloaded, expected)
    # The saved generator samples like any other network.
    ok(
        "sample",
        "--network",
        tmp_path / "blend.pkl",
        "--seeds",
        0,
        "--outdir",
        tmp_path / "s",
    )


def test_mix_refuses(nets, tmp_path):
    out = tmp_path / "m.png"
    usage_error(
        "mix",
        "--coarse",
        nets["a"],
        "--fine",
        nets["wide"],
        "--out",
        out,
        match="channels at 4x4: SRC 32, DST 16",
    )
    usage_error(
        "mix",
        "--coarse",
        nets["a"],
        "--fine",
        nets["gray"],
        "--out",
        out,
        match="img_channels: SRC 3, DST 1",
    )
    usage_error(
        "mix",
        "--coarse",
        nets["a"],
        "--fine",
        nets["cond"],
        "--out",
        out,
        match="c_dim",
    )
    usage_error("mix", "--coarse", nets["a"], "--split", 12, "--out", out, match="'--split'")
    usage_error(
        "mix",
        "--coarse",
        nets["a"],
        "--split",
        32,
        "--out",
        out,
        match="power of two from 4 to 16",
    )
    usage_error("mix", "--coarse", nets["a"], "--split", "fine", "--out", out, match="fine")
    usage_error(
        "mix",
        "--coarse",
        nets["a"],
        "--coarse-seeds",
        "3-1",
        "--out",
        out,
        match="'--coarse-seeds'",
    )
    assert not out.exists()
