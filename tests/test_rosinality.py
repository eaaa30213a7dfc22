"""rosinality/stylegan2-pytorch checkpoints: the original code's pixels, safe reading, writing.

The fixtures (../shared/compat/rosinality_small*.pt, made by rosinality's own code; see the
.json beside them) and their reference images from rosinality's forward are the oracle.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import ok, png, usage_error

import stylegen
from stylegen import NetworkLoadError, load_network, to_uint8
from stylegen.formats import rosinality_names as names
from stylegen.formats.rosinality import (
    W_AVG_SAMPLES,
    RosinalityWarning,
    is_rosinality_zip,
    save_rosinality,
)
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig

from conftest import tiny_generator

TRAIN, CONVERT = "rosinality_small.pt", "rosinality_small_convert.pt"
TOL = 1e-4  # max abs vs rosinality's images (docs/formats.md: measured 8e-6 on this fixture)


@pytest.fixture(scope="module")
def ref(compat_dir):
    for name in (TRAIN, CONVERT, "rosinality_small_ref.npz"):
        assert (compat_dir / name).is_file(), f"rosinality fixture {name} missing in {compat_dir}"
    with np.load(compat_dir / "rosinality_small_ref.npz") as d:
        return {k: d[k] for k in d.files}


def _load(compat_dir, name, which="G_ema"):
    with pytest.warns(RosinalityWarning) if (name, which) != (CONVERT, "G_ema") else contextlib.nullcontext():
        return load_network(compat_dir / name, which)


def _check_images(img, want, what):
    want = torch.from_numpy(want)
    assert (img - want).abs().max() <= TOL, what
    assert (to_uint8(img).int() - to_uint8(want).int()).abs().max() <= 1, f"uint8 {what}"


# ---------------------------------------------------------------------------------------------
# The original code's pixels


@pytest.mark.parametrize("name", [TRAIN, CONVERT])
def test_every_reference_image(compat_dir, ref, ops_impl, name):
    G = _load(compat_dir, name)
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution, G.config.mapping_layers) == (128, 128, 8, 32, 4)
    if name == TRAIN:  # train.py files have no latent_avg: compare truncation around the npz's one
        G.mapping.w_avg.copy_(torch.from_numpy(ref["latent_avg"]))
    z = torch.from_numpy(ref["z"])
    for p, (psi, cutoff) in enumerate(zip(ref["psis"], ref["cutoffs"])):
        with torch.no_grad():
            ws = G.mapping(z, None, truncation_psi=float(psi), truncation_cutoff=None if cutoff < 0 else int(cutoff))
            img = G.synthesis(ws, noise_mode="const")
            img_call = G(z, truncation_psi=float(psi), noise_mode="const")
        assert (ws - torch.from_numpy(ref["ws"][p])).abs().max() <= 1e-5, f"ws psi {psi}"
        _check_images(img, ref["images"][p], f"psi {psi}")
        assert torch.equal(img, img_call)
    with torch.no_grad():
        img = G.synthesis(torch.from_numpy(ref["wplus"]), noise_mode="const")
    _check_images(img, ref["wplus_images"], "W+")


def test_convert_layout_w_avg_is_latent_avg(compat_dir, ref):
    G = _load(compat_dir, CONVERT)
    assert torch.equal(G.mapping.w_avg, torch.from_numpy(ref["latent_avg"]))
    assert G.source_notes == []
    assert "convert_weight.py layout" in G.source_format and "without executing code" in G.source_format


def test_train_layout_w_avg_is_estimated_and_said(compat_dir, ref):
    G = _load(compat_dir, TRAIN)
    rms = lambda t: float(t.square().mean().sqrt())
    err = rms(G.mapping.w_avg - torch.from_numpy(ref["latent_avg"]))
    assert err <= 0.1 * rms(torch.from_numpy(ref["w_std"])), err
    assert any(f"estimated as the mean of {W_AVG_SAMPLES} mapped z" in n for n in G.source_notes)
    assert torch.equal(G.mapping.w_avg, _load(compat_dir, TRAIN).mapping.w_avg), "not deterministic"
    # the truncated images with our own estimate are close to the reference's
    with torch.no_grad():
        img = G(torch.from_numpy(ref["z"]), truncation_psi=0.5)
    assert (img - torch.from_numpy(ref["images"][2])).abs().max() < 0.1


def test_train_layout_source_description(compat_dir):
    G = _load(compat_dir, TRAIN)
    assert G.source_format.startswith("rosinality/stylegan2-pytorch checkpoint (train.py layout, size 32")
    assert "64/64/64/32" in G.source_format
    notes = " | ".join(G.source_notes)
    assert "args.channel_multiplier 1" in notes and "the tensors win" in notes
    assert "args.size" not in notes and "args.latent" not in notes  # these agree with the tensors
    assert "cuda:0" in notes
    assert all("\n" not in n for n in G.source_notes)


def test_g_is_the_training_generator(compat_dir, ref, monkeypatch):
    monkeypatch.setenv("STYLEGEN_OPS", "ref")
    G = _load(compat_dir, TRAIN, "G")
    G_ema = _load(compat_dir, TRAIN)
    with torch.no_grad():
        img = G(torch.from_numpy(ref["z"]), truncation_psi=1)
    _check_images(img, ref["g_images"], "g at psi 1")
    assert (img - torch.from_numpy(ref["images"][0])).abs().max() > 0.5, "G looks like G_ema"
    assert not torch.equal(G.synthesis.b4.conv1.noise_const, G_ema.synthesis.b4.conv1.noise_const)


def test_missing_network_names_what_the_file_has(compat_dir):
    for which in ("G", "D"):
        with pytest.raises(NetworkLoadError, match=rf"has no '{which}' network \(has: G_ema\)"):
            load_network(compat_dir / CONVERT, which)


# ---------------------------------------------------------------------------------------------
# The discriminator, against rosinality's Discriminator.forward written out in plain torch


def _fused_lrelu(x, b):
    return F.leaky_relu(x + b.view(1, -1, *[1] * (x.ndim - 2)), 0.2) * math.sqrt(2)


def _blur(x, k, pad):
    c = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, k.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)


def _conv(x, w, stride=1, padding=0):
    return F.conv2d(x, w / math.sqrt(w[0].numel()), stride=stride, padding=padding)


def rosinality_d(s: dict, img: torch.Tensor) -> torch.Tensor:
    """rosinality model.py Discriminator.forward (ConvLayer, ResBlock, stddev, final layers)."""
    x = _fused_lrelu(_conv(img, s["convs.0.0.weight"]), s["convs.0.1.bias"])
    n = 1
    while f"convs.{n}.conv1.0.weight" in s:
        p = f"convs.{n}"
        out = _fused_lrelu(_conv(x, s[f"{p}.conv1.0.weight"], padding=1), s[f"{p}.conv1.1.bias"])
        out = _conv(_blur(out, s[f"{p}.conv2.0.kernel"], (2, 2)), s[f"{p}.conv2.1.weight"], stride=2)
        out = _fused_lrelu(out, s[f"{p}.conv2.2.bias"])
        skip = _conv(_blur(x, s[f"{p}.skip.0.kernel"], (1, 1)), s[f"{p}.skip.1.weight"], stride=2)
        x, n = (out + skip) / math.sqrt(2), n + 1
    b, c, h, w = x.shape
    g = min(b, 4)
    std = x.view(g, -1, 1, c, h, w)
    std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
    x = torch.cat([x, std.repeat(g, 1, h, w)], 1)
    x = _fused_lrelu(_conv(x, s["final_conv.0.weight"], padding=1), s["final_conv.1.bias"]).view(b, -1)
    w0, w1 = s["final_linear.0.weight"], s["final_linear.1.weight"]
    x = _fused_lrelu(F.linear(x, w0 / math.sqrt(w0.shape[1])), s["final_linear.0.bias"])
    return F.linear(x, w1 / math.sqrt(w1.shape[1]), s["final_linear.1.bias"])


def _train_state(compat_dir, key):
    from stylegen.formats.rosinality_pickle import read_checkpoint

    return read_checkpoint(compat_dir / TRAIN).data[key]


def test_d_loads_as_our_discriminator(compat_dir, ops_impl):
    D = load_network(compat_dir / TRAIN, "D")
    assert isinstance(D, Discriminator)
    assert (D.img_resolution, D.img_channels, D.c_dim) == (32, 3, 0)
    assert "rosinality/stylegan2-pytorch checkpoint (train.py layout" in D.source_format
    img = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = D(img), rosinality_d(_train_state(compat_dir, "d"), img)
    assert got.shape == (8, 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_d_of_another_architecture_is_refused_clearly(tmp_path, compat_dir):
    data = {k: _train_state(compat_dir, k) for k in ("g_ema", "d")}
    data["d"] = dict(data["d"])
    data["d"]["final_conv.0.weight"] = torch.zeros(64, 66, 3, 3)  # 2 stddev features, not rosinality's 1
    torch.save(data, tmp_path / "d2.pt")
    with pytest.raises(NetworkLoadError, match=r"'D' \(d\) does not match our Discriminator: .*final_conv"):
        load_network(tmp_path / "d2.pt", "D")
    with pytest.warns(RosinalityWarning):  # G_ema still loads (no latent_avg: estimated)
        assert isinstance(load_network(tmp_path / "d2.pt"), stylegen.Generator)


# ---------------------------------------------------------------------------------------------
# Reading safely: nothing from the file runs


class Evil:
    """Pickles as a call of os.system: what a hostile checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile(tmp_path, compat_dir, where: str):
    marker = tmp_path / f"ran-{where}"
    data = {k: _train_state(compat_dir, k) for k in ("g", "d", "g_ema")}
    if where == "args":
        data["args"] = argparse.Namespace(size=32, arch="stylegan2", evil=Evil(marker))
    else:
        data["g_ema"] = dict(data["g_ema"], evil=Evil(marker))
    path = tmp_path / f"{where}.pt"
    torch.save(data, path, _use_new_zipfile_serialization=where != "legacy")
    return path, marker


@pytest.mark.parametrize("where", ["zip", "args", "legacy"])
def test_hostile_files_are_refused_and_run_nothing(tmp_path, compat_dir, where):
    path, marker = _hostile(tmp_path, compat_dir, where)
    with pytest.raises(NetworkLoadError) as e:
        load_network(path)
    assert "refused global 'posix.system'" in str(e.value) and str(path) in str(e.value)
    assert "\n" not in str(e.value)
    usage_error("sample", "--network", path, "--seeds", "0", "--outdir", tmp_path / "out", match="posix.system")
    assert not marker.exists(), "the file's code ran"


def test_namespace_is_not_argparse(compat_dir):
    from stylegen.formats.rosinality_pickle import read_checkpoint

    args = read_checkpoint(compat_dir / TRAIN).data["args"]
    assert type(args) is dict and args["size"] == 32 and args["channel_multiplier"] == 1


@pytest.mark.parametrize("name", [TRAIN, CONVERT])
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_truncated_or_corrupt_files_give_one_line(tmp_path, compat_dir, name, damage):
    b = bytearray((compat_dir / name).read_bytes())
    if damage == "truncate":
        b = b[: len(b) // 2]
    else:  # garble the pickle (zip: inside data.pkl, whose CRC then fails; legacy: the object)
        start = b.find(b"g_ema")
        b[start : start + 400] = bytes(400)
    path = tmp_path / name
    path.write_bytes(bytes(b))
    with pytest.raises(NetworkLoadError) as e:
        load_network(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    usage_error("sample", "--network", path, "--seeds", "0", "--outdir", tmp_path / "out")


def test_swagan_is_refused_by_name(tmp_path, compat_dir):
    g_ema = dict(_train_state(compat_dir, "g_ema"))
    g_ema["to_rgbs.0.iwt.ll"] = torch.ones(1, 1, 2, 2)
    torch.save({"g_ema": g_ema, "latent_avg": torch.zeros(128)}, tmp_path / "swagan.pt")
    with pytest.raises(NetworkLoadError, match="SWAGAN"):
        load_network(tmp_path / "swagan.pt")


def test_checkpoints_without_constant_noise_are_refused(tmp_path, compat_dir):
    g_ema = {k: v for k, v in _train_state(compat_dir, "g_ema").items() if not k.startswith("noises.")}
    torch.save({"g_ema": g_ema, "latent_avg": torch.zeros(128)}, tmp_path / "old.pt")
    with pytest.raises(NetworkLoadError, match=r"'G_ema' \(g_ema\) cannot be rebuilt: no noises"):
        load_network(tmp_path / "old.pt")


def test_our_snapshots_are_not_taken_for_rosinality(tmp_path):
    G = tiny_generator()
    stylegen.save_network(tmp_path / "ours.pkl", G_ema=G)
    assert not is_rosinality_zip(tmp_path / "ours.pkl")
    assert load_network(tmp_path / "ours.pkl").source_format.startswith("stylegen")


# ---------------------------------------------------------------------------------------------
# Writing: our -> rosinality -> our


def _assert_same_tensors(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_round_trip_of_the_fixture_is_exact_and_in_rosinality_names(tmp_path, compat_dir):
    G_ema = _load(compat_dir, TRAIN)
    G, D = _load(compat_dir, TRAIN, "G"), load_network(compat_dir / TRAIN, "D")
    notes = save_rosinality(tmp_path / "out.pt", G_ema, G=G, D=D)
    assert any("not rosinality's table" in n for n in notes)
    data = torch.load(tmp_path / "out.pt", map_location="cpu", weights_only=True)  # plain tensors only
    assert set(data) == {"g_ema", "latent_avg", "g", "d"}
    for key in ("g_ema", "g", "d"):  # the very tensors rosinality's code saved, under its names
        original = _train_state(compat_dir, key)
        assert data[key].keys() == original.keys(), key
        assert all(torch.equal(data[key][k], original[k]) for k in original), key
    back = load_network(tmp_path / "out.pt")  # has latent_avg: no estimate, no warning
    _assert_same_tensors(G_ema, back)
    assert back.config == G_ema.config
    _assert_same_tensors(D, load_network(tmp_path / "out.pt", "D"))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"img_resolution": 64, "mapping_layers": 3, "z_dim": 16, "w_dim": 16, "channel_base": 512, "channel_max": 16},
        {"img_resolution": 8, "resample_filter": (1, 2, 1)},
    ],
)
def test_round_trip_of_our_networks_is_exact(tmp_path, kw):
    G = tiny_generator(**kw)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    cfg = G.config
    D = Discriminator(
        DiscriminatorConfig(
            c_dim=0,
            img_resolution=cfg.img_resolution,
            img_channels=3,
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            resample_filter=cfg.resample_filter,
        )
    )
    save_rosinality(tmp_path / "r.pt", G, G=G, D=D)
    back = load_network(tmp_path / "r.pt")
    _assert_same_tensors(G, back)
    # the file holds no settings: channel_base / channel_max may differ where the table allows
    table = lambda c: {
        2**i: min(c.channel_base // 2**i, c.channel_max) for i in range(2, c.img_resolution.bit_length())
    }
    assert table(back.config) == table(cfg)
    assert dataclasses.replace(back.config, channel_base=cfg.channel_base, channel_max=cfg.channel_max) == cfg
    _assert_same_tensors(D, load_network(tmp_path / "r.pt", "D"))
    with pytest.warns(RosinalityWarning):  # g has no latent_avg of its own
        G2 = load_network(tmp_path / "r.pt", "G")
    assert torch.equal(G2.synthesis.b4.const, G.synthesis.b4.const)


def test_save_refuses_what_rosinality_cannot_hold(tmp_path):
    with pytest.raises(stylegen.errors.InputError, match="unconditional"):
        save_rosinality(tmp_path / "c.pt", tiny_generator(c_dim=3))
    assert not (tmp_path / "c.pt").exists()


def test_architecture_tables():
    for cm, base in ((1, 16384), (2, 32768)):
        for size in (64, 256, 1024):
            table = names.rosinality_channels(size, cm)
            assert names.channel_multiplier_of(table) == cm
            assert names.base_and_max(table) == (base, 512)
            assert all(min(base // r, 512) == c for r, c in table.items())
    assert names.channel_multiplier_of(names.rosinality_channels(32, 2)) == 0  # 512 throughout
    assert names.base_and_max(names.rosinality_channels(256, 4)) is None  # 1024 after 512
    assert names.channel_multiplier_of({4: 64, 8: 64, 16: 64, 32: 32}) is None
    assert names.base_and_max({4: 64, 8: 64, 16: 64, 32: 32}) == (1024, 64)


# ---------------------------------------------------------------------------------------------
# The command line


@pytest.mark.filterwarnings("ignore::stylegen.formats.rosinality.RosinalityWarning")
@pytest.mark.parametrize("name", [TRAIN, CONVERT])
def test_cli_sample_gives_rosinalitys_pixels(tmp_path, compat_dir, ref, name):
    out = tmp_path / "out"
    ok("sample", "--network", compat_dir / name, "--seeds", "0-3", "--outdir", out)
    want = to_uint8(torch.from_numpy(ref["images"][0])).numpy()  # psi 1
    seeds = list(ref["seeds"])
    for seed in range(4):
        got = png(out / f"seed{seed:04d}.png").astype(int)
        assert np.abs(got - want[seeds.index(seed)]).max() <= 1, seed


@pytest.mark.filterwarnings("ignore::stylegen.formats.rosinality.RosinalityWarning")
@pytest.mark.parametrize("name", [TRAIN, CONVERT])
def test_cli_info_runs(compat_dir, name):
    result = ok("info", compat_dir / name)
    assert "32x32" in result.output


def test_cli_prints_the_estimate_as_one_warning_line(compat_dir):
    result = ok("info", compat_dir / TRAIN)
    said = [line for line in result.stderr.splitlines() if "latent_avg" in line]
    assert len(said) == 1, result.stderr
    assert said[0].startswith(f"Warning: {compat_dir / TRAIN}: latent_avg absent"), said[0]
    assert "RosinalityWarning" not in result.stderr and ".py:" not in result.stderr, result.stderr
