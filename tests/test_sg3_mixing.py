"""Style mixing and layer swapping for StyleGAN3 generators (`stylegen mix`, stylegen.editing.mixing).

Oracles: the layer rates and cutoffs NVIDIA's code wrote into the fixtures' json
(../shared/compat/sg3t_small.json, sg3r_small.json), levels derived from them by hand below, ws
mixed with plain torch slicing, and swapped state dicts assembled key by key from the two inputs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import cli_helpers
import numpy as np
import pytest
import torch
from cli_helpers import ok, png, usage_error

import stylegen
from stylegen import seed_to_z, to_uint8
from stylegen.editing import mixing
from stylegen.errors import InputError
from stylegen.networks.sg3_generator import Generator3

nets = cli_helpers.nets  # tiny StyleGAN2 snapshots, for the family refusal

# Levels by hand from the json's out_cutoff per layer (ws i + 1 = layer i; ws 0 = the input,
# bandwidth 2): res = smallest power of two >= 2 * cutoff; coarse 4-8, middle 16-32, fine 64+.
# sg3t_small (64x64): input 2 -> 4; L0 2.0 -> 4; L1 2.52, L2 3.17, L3 4.0 -> 8; L4 5.04, L5 6.35,
#   L6 8.0 -> 16; L7 10.08, L8 12.70, L9 16.0 -> 32; L10 20.16 .. L14 32.0 -> 64.
# sg3r_small (32x32): input 2 -> 4; L0 2.0 -> 4; L1 2.38, L2 2.83, L3 3.36, L4 4.0 -> 8;
#   L5 4.76, L6 5.66, L7 6.73, L8 8.0 -> 16; L9 9.51 .. L14 16.0 -> 32.
EXPECTED = {
    "sg3t_small": {
        "res": [4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64],
        "coarse": tuple(range(0, 5)),
        "middle": tuple(range(5, 11)),
        "fine": tuple(range(11, 16)),
        "4": (0, 1),
        "16": tuple(range(0, 8)),
        "64": tuple(range(16)),
    },
    "sg3r_small": {
        "res": [4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 32, 32],
        "coarse": tuple(range(0, 6)),
        "middle": tuple(range(6, 16)),
        "8": tuple(range(0, 6)),
        "16": tuple(range(0, 10)),
        "32": tuple(range(16)),
    },
}


@pytest.fixture(scope="module")
def sg3(compat_dir):
    """name -> (path, loaded generator, json record of the network)."""
    out = {}
    for name in EXPECTED:
        meta = json.loads((compat_dir / f"{name}.json").read_text())["network"]
        out[name] = (compat_dir / f"{name}.pkl", stylegen.load_network(compat_dir / f"{name}.pkl"), meta)
    return out


@pytest.fixture(scope="module")
def related(sg3, tmp_path_factory):
    """Snapshots of sg3t_small ('a') and of a copy with every weight and buffer perturbed ('b')."""
    root = tmp_path_factory.mktemp("sg3nets")
    G_a = sg3["sg3t_small"][1]
    G_b = copy.deepcopy(G_a)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, t in G_b.state_dict().items():
            if t.is_floating_point() and not name.endswith(("_filter", "transform")):
                t.add_(0.05 * torch.randn(t.shape, generator=gen) * t.abs().mean().clamp(min=1e-3))
    paths = {"a": root / "a.pkl", "b": root / "b.pkl"}
    stylegen.save_network(paths["a"], G=G_a, G_ema=G_a)
    stylegen.save_network(paths["b"], G=G_b, G_ema=G_b)
    return paths


def _ws(G, seeds):
    z = torch.cat([seed_to_z(s, G.z_dim) for s in seeds])
    with torch.inference_mode():
        return G.mapping(z, None)


def _hand_mix(dst_row, src, indices):
    """[len(src), num_ws, w_dim]: dst_row [1, num_ws, w_dim] with src's rows at `indices`, by stacking."""
    rows = []
    for k in range(src.shape[0]):
        rows.append(torch.stack([(src[k, i] if i in indices else dst_row[0, i]) for i in range(src.shape[1])]))
    return torch.stack(rows)


# ---------------------------------------------------------------------------------------------
# Levels


@pytest.mark.parametrize("name", list(EXPECTED))
def test_layer_levels_follow_the_json_cutoffs(sg3, name):
    _, G, meta = sg3[name]
    levels = mixing.layer_levels(G)
    assert [lv.ws_index for lv in levels] == list(range(meta["num_ws"]))
    assert [lv.name for lv in levels] == ["input", *meta["layer_names"]]
    assert levels[0].sampling_rate == meta["input"]["sampling_rate"] and levels[0].cutoff == meta["input"]["bandwidth"]
    for lv, layer in zip(levels[1:], meta["layers"]):
        assert lv.ws_index == layer["ws_index"]
        assert lv.sampling_rate == layer["out_sampling_rate"] and lv.cutoff == layer["out_cutoff"]
    assert [lv.resolution for lv in levels] == EXPECTED[name]["res"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_splits_by_level_and_resolution(sg3, name):
    G = sg3[name][1]
    for split, want in EXPECTED[name].items():
        if split != "res":
            assert mixing.select(split, G).ws_indices == want, split
    sel = mixing.select("coarse", G)
    assert sel.resolutions == (4, 8)
    rest = mixing.rest_of(sel, G)
    assert rest.ws_indices == tuple(i for i in range(G.num_ws) if i not in sel.ws_indices)
    assert rest.resolutions == tuple(sorted(set(EXPECTED[name]["res"]) - {4, 8}))


def test_split_refusals(sg3):
    G_r = sg3["sg3r_small"][1]
    with pytest.raises(ValueError, match="'fine' .* does not exist in a 32x32"):
        mixing.select("fine", G_r)
    for bad in ("64", "12", "ws:", "ws:3-1", "ws:16", "ws:a", "ws:1-", "layers"):
        with pytest.raises(ValueError, match="split"):
            mixing.select(bad, G_r)


def test_ws_lists_work_for_both_families(sg3):
    G = sg3["sg3t_small"][1]
    sel = mixing.select("ws:0,8-10, 3", G)
    assert sel.ws_indices == (0, 3, 8, 9, 10) and sel.resolutions == (4, 8, 32)
    assert mixing.select("ws:0-15", G).ws_indices == tuple(range(16))
    # StyleGAN2, 64x64 (num_ws 10): ws 0, 1, 2 count at 4, 8, 8 (DESIGN.md).
    sel2 = mixing.resolve_split("ws:0-2", 64, 10)
    assert sel2.ws_indices == (0, 1, 2) and sel2.resolutions == (4, 8)
    assert mixing.resolve_split("ws:0-3", 64, 10).resolutions == (4, 8, 16)  # layer swap: b4, b8, b16


def test_levels_of_a_1024_network_mirror_stylegan2():
    """NVIDIA's cutoff schedule for 1024x1024 (14 layers, 2 critical, first cutoff 2):
    f_c[i] = 2 * (512 / 2) ** min(i / 12, 1); ws 0 is the input (bandwidth 2)."""
    cutoffs = [2.0] + [2 * 256 ** min(i / 12, 1) for i in range(15)]
    res = [mixing.band_resolution(c, 1024) for c in cutoffs]
    # 2 * f_c: 4 | 4, 6.3, 10.1, 16, 25.4, 40.3, 64, 101.6, 161.3, 256, 406.4, 645.1, 1024, 1024, 1024
    assert res == [4, 4, 8, 16, 16, 32, 64, 64, 128, 256, 256, 512, 1024, 1024, 1024, 1024]
    split = {lvl: mixing.resolve_split(lvl, 1024, 16, res).ws_indices for lvl in mixing.LEVELS}
    assert split == {"coarse": (0, 1, 2), "middle": (3, 4, 5), "fine": tuple(range(6, 16))}
    assert mixing.band_resolution(7.999999999999999, 64) == 16 and mixing.band_resolution(8 + 1e-12, 64) == 16
    assert mixing.band_resolution(8.01, 64) == 32 and mixing.band_resolution(1.0, 64) == 4


@pytest.mark.parametrize(
    "R, coarse, middle",  # the table in docs/cli.md; fine = the rest
    [(512, (0, 2), (3, 6)), (256, (0, 3), (4, 7)), (64, (0, 4), (5, 10)), (32, (0, 5), (6, 15))],
)
def test_levels_documented_for_nvidia_configs(R, coarse, middle):
    cutoffs = [2.0] + [2 * (R / 4) ** min(i / 12, 1) for i in range(15)]
    res = [mixing.band_resolution(c, R) for c in cutoffs]
    assert mixing.resolve_split("coarse", R, 16, res).ws_indices == tuple(range(coarse[0], coarse[1] + 1))
    assert mixing.resolve_split("middle", R, 16, res).ws_indices == tuple(range(middle[0], middle[1] + 1))
    if middle[1] < 15:
        assert mixing.resolve_split("fine", R, 16, res).ws_indices == tuple(range(middle[1] + 1, 16))


# ---------------------------------------------------------------------------------------------
# Mixing


def test_mix_rows_equal_a_hand_built_ws_mix(sg3):
    G = sg3["sg3t_small"][1].freeze()
    src = mixing.StyleSource(G, _ws(G, [0, 1]), ["0000", "0001"])
    dst = mixing.StyleSource(G, _ws(G, [5]), ["0005"])
    sel = mixing.select("middle", G)
    assert mixing.mixing_generator(src, dst, sel) is G
    with torch.inference_mode():
        (row,) = list(mixing.mix_rows(G, src, dst, sel))
        want = G.synthesis(_hand_mix(dst.ws, src.ws, range(5, 11)))
    assert row.shape == (2, 3, 64, 64) and torch.equal(row, want)


def _table(output: str) -> dict[int, list[str]]:
    rows = {}
    for line in output.splitlines():
        m = re.match(
            r"^\s+(\d+)\s+(input|L\d+_\d+_\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(coarse|middle|fine)\s+(SRC|DST)$", line
        )
        if m:
            rows[int(m.group(1))] = list(m.groups()[1:])
    return rows


def test_cli_mix_writes_the_grid_and_the_layer_table(sg3, compat_dir, tmp_path):
    path, G, meta = sg3["sg3t_small"]
    out = tmp_path / "mix.png"
    result = ok("mix", "--coarse", path, "--coarse-seeds", 1, "--fine-seeds", "2,3", "--out", out, "--device", "cpu")
    table = _table(result.output)
    assert sorted(table) == list(range(16))
    names = ["input", *meta["layer_names"]]
    levels = ["coarse"] * 5 + ["middle"] * 6 + ["fine"] * 5
    for i, (name, rate, cutoff, res, level, side) in table.items():
        assert name == names[i] and level == levels[i] and int(res) == EXPECTED["sg3t_small"]["res"][i]
        want = meta["input"] if i == 0 else meta["layers"][i - 1]
        assert float(rate) == want.get("sampling_rate", want.get("out_sampling_rate"))
        assert abs(float(cutoff) - want.get("bandwidth", want.get("out_cutoff"))) <= 5e-4
        assert side == ("SRC" if i < 5 else "DST")
    assert "From SRC (coarse seeds): ws [0, 1, 2, 3, 4]" in result.output
    grid = png(out).astype(int)
    assert grid.shape == (3 * 64, 2 * 64, 3) and (grid[:64, :64] == 255).all()
    # Sources and destinations: NVIDIA's images of seeds 1, 2, 3 (psi 1), within one uint8 level.
    with np.load(compat_dir / "sg3t_small_ref.npz") as ref:
        seeds, images = list(ref["seeds"]), to_uint8(torch.from_numpy(ref["images"][0])).numpy().astype(int)
    assert np.abs(grid[:64, 64:] - images[seeds.index(1)]).max() <= 1
    assert np.abs(grid[64:128, :64] - images[seeds.index(2)]).max() <= 1
    assert np.abs(grid[128:, :64] - images[seeds.index(3)]).max() <= 1
    # The cell of destination 3: its ws with source 1's at 0-4.
    G = G.freeze()
    with torch.inference_mode():
        cell = to_uint8(G.synthesis(_hand_mix(_ws(G, [3]), _ws(G, [1]), range(5)))).numpy()[0]
    assert np.array_equal(grid[128:, 64:], cell)


# ---------------------------------------------------------------------------------------------
# Layer swapping


def _expected_swap(G_a, G_b, from_a: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """A's tensor for mapping.* and the listed synthesis parts, B's for every other key."""
    a, b = G_a.state_dict(), G_b.state_dict()
    prefixes = ("mapping.", *(f"synthesis.{p}." for p in from_a))
    return {k: (a if k.startswith(prefixes) else b)[k] for k in a}


COARSE_T = ("input", "L0_36_64", "L1_36_64", "L2_36_64", "L3_36_64")  # ws 0-4 of sg3t_small


def test_layer_swap3_takes_whole_layers(related):
    G_a, G_b = stylegen.load_network(related["a"]), stylegen.load_network(related["b"])
    before = {k: v.clone() for k, v in G_b.state_dict().items()}
    G = mixing.layer_swap3(G_a, G_b, mixing.select("coarse", G_a).ws_indices)
    want = _expected_swap(G_a, G_b, COARSE_T)
    state = G.state_dict()
    assert set(state) == set(want)
    for k, v in state.items():
        assert torch.equal(v, want[k]), k
    changed = {k for k in want if not torch.equal(G_a.state_dict()[k], G_b.state_dict()[k])}
    assert changed == {k for k in want if not k.endswith(("_filter", "transform"))}  # B differs everywhere else
    assert all(torch.equal(before[k], v) for k, v in G_b.state_dict().items())
    assert isinstance(G, Generator3) and G.config == G_a.config and G is not G_a
    # ws 6 and 9 only: the input and every other layer from B.
    G = mixing.layer_swap3(G_a, G_b, (6, 9))
    want = _expected_swap(G_a, G_b, ("L5_52_64", "L8_84_64"))
    assert all(torch.equal(v, want[k]) for k, v in G.state_dict().items())
    with pytest.raises(TypeError, match="layer_swap3"):
        mixing.layer_swap(G_a, G_b, (4, 8))


def test_cli_layer_swap_writes_the_blended_generator(related, tmp_path):
    args = ["--coarse-seeds", 0, "--fine-seeds", 5, "--outdir", tmp_path, "--device", "cpu"]
    result = ok(
        "mix", "--coarse", related["a"], "--fine", related["b"], *args, "--save-network", tmp_path / "blend.pkl"
    )
    assert "Layer swapping" in result.output and len(_table(result.output)) == 16
    G_a, G_b = stylegen.load_network(related["a"]), stylegen.load_network(related["b"])
    want = _expected_swap(G_a, G_b, COARSE_T)
    blend = stylegen.load_network(tmp_path / "blend.pkl")
    assert isinstance(blend, Generator3) and set(blend.state_dict()) == set(want)
    assert all(torch.equal(v, want[k]) for k, v in blend.state_dict().items())
    # The cell: B's seed-5 ws with A's seed-0 ws at 0-4, through a generator assembled by hand.
    G_hand = Generator3(G_a.config).eval()
    G_hand.load_state_dict(want)
    G_hand = G_hand.freeze()  # the commands' inference form (its Winograd convs round differently)
    with torch.inference_mode():
        cell = to_uint8(G_hand.synthesis(_hand_mix(_ws(G_b, [5]), _ws(G_a, [0]), range(5)))).numpy()[0]
    assert np.array_equal(png(tmp_path / "mix-c0000-f0005.png"), cell)


def test_unrelated_networks_are_refused(sg3, related, nets, tmp_path):
    path_t, G_t, _ = sg3["sg3t_small"]
    layers = tuple(
        dataclasses.replace(s, out_cutoff=s.out_cutoff * 1.1) if s.name == "L5_52_64" else s for s in G_t.config.layers
    )
    G_other = Generator3(dataclasses.replace(G_t.config, layers=layers))
    G_other.load_state_dict(G_t.state_dict())
    other = tmp_path / "other.pkl"
    stylegen.save_network(other, G=G_other, G_ema=G_other)
    out = tmp_path / "m.png"
    usage_error("mix", "--coarse", related["a"], "--fine", other, "--out", out, match="synthesis.L5_52_64.out_cutoff")
    usage_error(
        "mix", "--coarse", path_t, "--fine", sg3["sg3r_small"][0], "--out", out, match="img_resolution: SRC 64, DST 32"
    )
    usage_error(
        "mix",
        "--coarse",
        path_t,
        "--fine",
        nets["a"],
        "--out",
        out,
        match="SRC is a StyleGAN3 network, DST a StyleGAN2",
    )
    usage_error(
        "mix",
        "--coarse",
        nets["a"],
        "--fine",
        path_t,
        "--out",
        out,
        match="SRC is a StyleGAN2 network, DST a StyleGAN3",
    )
    usage_error("mix", "--coarse", sg3["sg3r_small"][0], "--split", "fine", "--out", out, match="'--split'")
    usage_error("mix", "--coarse", path_t, "--split", "ws:0-16", "--out", out, match="0 to 15")
    assert not out.exists()
    with pytest.raises(InputError, match="synthesis.L5_52_64.out_cutoff"):
        mixing.layer_swap3(G_t, G_other, (0,))
