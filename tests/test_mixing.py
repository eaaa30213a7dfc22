"""stylegen.editing.mixing: level/split resolution, ws mixing, layer swapping."""

from __future__ import annotations

from pathlib import Path

import cli_helpers
import pytest
import torch
from cli_helpers import tiny

from stylegen.editing import mixing
from stylegen.formats import ws_file

_ref_ops = cli_helpers._ref_ops


# ---------------------------------------------------------------------------------------------
# resolve_split: a 64x64 network has num_ws 10 at resolutions 4,8,8,16,16,32,32,64,64,(128->64)


@pytest.mark.parametrize(
    "split, expected",
    [
        ("coarse", (0, 1, 2)),
        ("middle", (3, 4, 5, 6)),
        ("fine", (7, 8, 9)),
        ("4", (0,)),
        ("8", (0, 1, 2)),
        ("16", (0, 1, 2, 3, 4)),
        (16, (0, 1, 2, 3, 4)),
        ("32", tuple(range(7))),
        ("64", tuple(range(10))),
        ("Coarse", (0, 1, 2)),
    ],
)
def test_resolve_split_64(split, expected):
    assert mixing.resolve_split(split, 64, 10).ws_indices == expected


def test_resolve_split_resolutions():
    assert mixing.resolve_split("middle", 64, 10).resolutions == (16, 32)
    assert mixing.resolve_split("16", 64, 10).resolutions == (4, 8, 16)
    assert mixing.resolve_split("fine", 1024, 18).ws_indices == tuple(range(7, 18))
    assert mixing.resolve_split("fine", 1024, 18).resolutions == (
        64,
        128,
        256,
        512,
        1024,
    )


def test_last_ws_counts_at_img_resolution():
    # 32x32: ws 7 drives only the final toRGB at 32x32, so it belongs to the middle level.
    assert mixing.ws_resolutions(8, 32) == [4, 8, 8, 16, 16, 32, 32, 32]
    assert mixing.resolve_split("middle", 32, 8).ws_indices == (3, 4, 5, 6, 7)


@pytest.mark.parametrize("split", ["fine", "3", "12", "2", "128", "0", "abc", "-8", ""])
def test_resolve_split_refuses(split):
    with pytest.raises(ValueError, match="split"):
        mixing.resolve_split(split, 32, 8)


def test_complement():
    sel = mixing.resolve_split("middle", 64, 10)
    rest = mixing.complement(sel, 64, 10)
    assert rest.ws_indices == (0, 1, 2, 7, 8, 9) and rest.resolutions == (4, 8, 64)
    assert "ws [3, 4, 5, 6]" in sel.describe() and "16x16, 32x32" in sel.describe()


def test_mix_ws():
    dst = torch.zeros([1, 6, 4])
    src = torch.arange(3 * 6 * 4, dtype=torch.float32).reshape(3, 6, 4)
    ws = mixing.mix_ws(dst, src, (0, 1, 2))
    assert ws.shape == (3, 6, 4)
    assert torch.equal(ws[:, :3], src[:, :3]) and torch.equal(ws[:, 3:], torch.zeros([3, 3, 4]))
    assert torch.equal(dst, torch.zeros([1, 6, 4]))  # input untouched


# ---------------------------------------------------------------------------------------------
# Layer swapping


def test_layer_swap_takes_blocks_and_mapping():
    G_src, G_dst = tiny(0), tiny(1)
    before = {k: v.clone() for k, v in G_dst.state_dict().items()}
    G = mixing.layer_swap(G_src, G_dst, (4, 8))
    state, src, dst = G.state_dict(), G_src.state_dict(), G_dst.state_dict()
    for name, value in state.items():
        from_src = name.startswith(("mapping.", "synthesis.b4.", "synthesis.b8."))
        assert torch.equal(value, (src if from_src else dst)[name]), name
    assert all(torch.equal(before[k], v) for k, v in G_dst.state_dict().items())
    assert G.config == G_src.config and G is not G_src


def test_layer_swap_renders_like_its_parts():
    G_src, G_dst = tiny(0), tiny(1)
    G = mixing.layer_swap(G_src, G_dst, (4, 8, 16))
    ws = torch.randn([2, G.num_ws, G.w_dim])
    assert torch.equal(G.synthesis(ws), G_src.synthesis(ws))
    G = mixing.layer_swap(G_src, G_dst, ())
    assert torch.equal(G.synthesis(ws), G_dst.synthesis(ws))


@pytest.mark.parametrize(
    "change, field",
    [
        ({"img_resolution": 32}, "img_resolution: SRC 16, DST 32"),
        ({"img_channels": 1}, "img_channels: SRC 3, DST 1"),
        ({"w_dim": 8}, "w_dim: SRC 16, DST 8"),
        ({"c_dim": 3}, "c_dim: SRC 0, DST 3"),
        ({"channel_max": 16}, "channels at 4x4: SRC 32, DST 16"),
    ],
)
def test_check_same_architecture(change, field):
    with pytest.raises(ValueError, match=field):
        mixing.check_same_architecture(tiny(0), tiny(1, **change))
    mixing.check_same_architecture(tiny(0), tiny(1, mapping_layers=3, z_dim=8))  # mapping may differ


def test_mix_rows_match_manual_mixing():
    G = tiny(0)
    src = mixing.StyleSource(G, torch.randn([3, G.num_ws, G.w_dim]), ["a", "b", "c"])
    dst = mixing.StyleSource(G, torch.randn([2, G.num_ws, G.w_dim]), ["x", "y"])
    sel = mixing.resolve_split("coarse", 16, G.num_ws)
    assert mixing.mixing_generator(src, dst, sel) is G
    rows = list(mixing.mix_rows(G, src, dst, sel))
    assert len(rows) == 2 and rows[0].shape == (3, 3, 16, 16)
    ws = dst.ws[1:2].repeat(3, 1, 1)
    ws[:, :3] = src.ws[:, :3]
    assert torch.equal(rows[1], G.synthesis(ws))


def test_ws_from_seeds_matches_mapping():
    from stylegen import seed_to_z

    G = tiny(0)
    ws = mixing.ws_from_seeds(G, [3, 7], truncation_psi=0.5, truncation_cutoff=2)
    z = torch.cat([seed_to_z(3, 16), seed_to_z(7, 16)])
    assert torch.equal(ws, G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2))


# ---------------------------------------------------------------------------------------------
# ws files


def test_ws_file_round_trip_records_the_network_and_replaces_atomically(tmp_path, monkeypatch):
    import hashlib

    import numpy as np

    net = tmp_path / "net.pkl"
    net.write_bytes(b"any network file")
    path = tmp_path / "ws.npz"
    ws = torch.randn([2, 6, 8])
    ws_file.save_ws_file(path, ws, [7, 9], truncation_psi=0.5, truncation_cutoff=4, network=net)
    with np.load(path) as data:
        assert data["ws"].dtype == np.float32 and torch.equal(torch.from_numpy(data["ws"]), ws)
        assert data["seeds"].tolist() == [7, 9] and float(data["truncation_psi"]) == 0.5
        assert int(data["truncation_cutoff"]) == 4 and int(data["class_idx"]) == -1
    assert ws_file.ws_file_network(path) == ("net.pkl", hashlib.sha256(b"any network file").hexdigest())
    assert ws_file.is_ws_file(path)

    # A failed write leaves the previous file whole and no temporary behind.
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        Path(file).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        ws_file.save_ws_file(path, torch.zeros([1, 6, 8]))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["net.pkl", "ws.npz"]
    monkeypatch.undo()
    ws_file.save_ws_file(path, torch.zeros([1, 6, 8]))  # no network: nothing recorded, still readable
    assert ws_file.ws_file_network(path) is None
