"""`stylegen convert` and `stylegen info` on every network format we read.

Oracles: the fixtures' reference images (made by the original code, ../shared/compat/) for the
converted networks; bit equality of the converted weights with what `load_network` reads from the
input; the input's sha256 computed here with hashlib.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch
from cli_helpers import _ref_ops, ok, run, tiny, usage_error  # noqa: F401  (_ref_ops: autouse, STYLEGEN_OPS=ref)
from payloads import Payload

import stylegen
from stylegen.formats import network_file
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig


def _tiny_D(seed: int = 0) -> Discriminator:
    torch.manual_seed(seed)
    cfg = DiscriminatorConfig(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=32)
    return Discriminator(cfg).eval().requires_grad_(False)


@pytest.fixture
def ours(tmp_path):
    """Our snapshot with different G, G_ema and D, provenance in `extra`, and a training record."""
    path = tmp_path / "ours.pkl"
    stylegen.save_network(
        path,
        G=tiny(1),
        G_ema=tiny(2),
        D=_tiny_D(),
        training={"kimg": 4.0},
        extra={"licence": "CC0", "made_by": "test"},
    )
    return path


def _equal_states(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plain_load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------
# Our snapshots


def test_convert_ours_keeps_every_network_and_records_the_source(ours, tmp_path):
    out = tmp_path / "out.pkl"
    result = ok("convert", ours, out)
    assert f"Wrote {out} (stylegen: G_ema, G, D)" in result.output
    assert "training state" in result.output  # said: the optimizer state is not copied
    for which in ("G_ema", "G", "D"):
        _equal_states(stylegen.load_network(out, which), stylegen.load_network(ours, which))
    data = _plain_load(out)
    assert data["format"] == "stylegen" and "training" not in data
    source = data["extra"]["source"]
    assert source["file"] == "ours.pkl" and source["sha256"] == _sha256(ours)
    assert source["format"] == "stylegen v1" and isinstance(source["notes"], list)
    assert data["extra"]["licence"] == "CC0" and data["extra"]["made_by"] == "test"  # provenance kept


def test_convert_ours_gives_the_same_images(ours, tmp_path):
    out = tmp_path / "out.pkl"
    ok("convert", ours, out)
    z = torch.cat([stylegen.seed_to_z(s, 16) for s in range(4)])
    with torch.no_grad():
        a = stylegen.load_network(ours)(z, truncation_psi=0.7)
        b = stylegen.load_network(out)(z, truncation_psi=0.7)
    assert torch.equal(a, b)


def test_convert_skips_a_discriminator_that_cannot_be_rebuilt(tmp_path):
    src = tmp_path / "src.pkl"
    stylegen.save_network(src, G_ema=tiny(0), D=_tiny_D())
    data = _plain_load(src)
    data["D"]["config"]["no_such_option"] = 1
    torch.save(data, src)
    out = tmp_path / "out.pkl"
    result = ok("convert", src, out)
    assert "note: D not converted:" in result.output and "no_such_option" in result.output
    assert "(stylegen: G_ema)" in result.output
    assert set(_plain_load(out)) >= {"G_ema"} and "D" not in _plain_load(out)


def test_convert_generator_only_file(tmp_path):
    src = tmp_path / "g.pkl"
    stylegen.save_network(src, G=tiny(0))
    out = tmp_path / "out.pkl"
    result = ok("convert", src, out)
    assert "no G_ema" in result.output
    _equal_states(stylegen.load_network(out, "G"), stylegen.load_network(src, "G"))


def test_convert_bundled_name(tmp_path):
    out = tmp_path / "faces.pkl"
    ok("convert", "faces", out)
    extra = _plain_load(out)["extra"]
    assert extra["source"]["file"] == "emoji-faces-64.pkl" and "parent" in extra  # provenance kept
    info = ok("info", out).output
    assert "Open Font License" in info
    assert any(
        line.startswith("source sha256") and line.endswith(extra["source"]["sha256"]) for line in info.splitlines()
    )
    assert "converted from emoji-faces-64.pkl (stylegen v1)" in info


# ---------------------------------------------------------------------------------------------
# Refusals: one `Error:` line, exit code 2, nothing written


def test_convert_refuses_writing_over_its_input(ours):
    before = ours.read_bytes()
    usage_error("convert", ours, ours, match="OUT is the input file")
    usage_error("convert", ours, ours, "--force", match="OUT is the input file")
    assert ours.read_bytes() == before


def test_convert_refuses_an_existing_output_without_force(ours, tmp_path):
    out = tmp_path / "out.pkl"
    out.write_bytes(b"keep me")
    usage_error("convert", ours, out, match="--force")
    assert out.read_bytes() == b"keep me"
    ok("convert", ours, out, "--force")
    _equal_states(stylegen.load_network(out), stylegen.load_network(ours))


@pytest.mark.parametrize("content", [b"hello", b"", b"PK\x03\x04 truncated", b"\x80\x04 truncated"])
def test_convert_refuses_non_networks(tmp_path, content):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(content)
    out = tmp_path / "out.pkl"
    usage_error("convert", bad, out, match="bad.pkl")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.pkl"]


def test_convert_refuses_bad_paths(ours, tmp_path):
    usage_error("convert", tmp_path / "missing.pkl", tmp_path / "o.pkl", match="missing.pkl")
    usage_error("convert", ours, tmp_path, match="is a directory")
    usage_error("convert", ours, tmp_path / "no" / "o.pkl", match="does not exist")


# ---------------------------------------------------------------------------------------------
# Every other format: the converted file reproduces the original code's images


def _reference(compat_dir, name: str) -> dict:
    with np.load(compat_dir / name) as d:
        return {k: d[k] for k in d.files}


def _assert_reference_images(G, ref: dict, settings=None) -> None:
    z = torch.from_numpy(ref["z"])
    for s, (psi, cutoff) in enumerate(zip(ref["psis"], ref["cutoffs"])):
        if settings is not None and s not in settings:
            continue
        with torch.no_grad():
            img = G(z, truncation_psi=float(psi), truncation_cutoff=None if cutoff < 0 else int(cutoff))
        want = torch.from_numpy(ref["images"][s])
        assert (img - want).abs().max() <= 1e-4, f"setting {s}"
        assert (stylegen.to_uint8(img).int() - stylegen.to_uint8(want).int()).abs().max() <= 1, f"uint8, setting {s}"


def test_convert_nvidia_pickle(compat_dir, tmp_path):
    src = compat_dir / "official_small.pkl"
    out = tmp_path / "official.pkl"
    result = ok("convert", src, out)
    assert "NVIDIA pickle" in result.output and "(stylegen: G_ema, G, D)" in result.output
    data = _plain_load(out)  # plain torch.load(weights_only=True): no stylegen code needed
    assert {"G_ema", "G", "D"} <= set(data)
    source = data["extra"]["source"]
    assert source["file"] == "official_small.pkl" and source["sha256"] == _sha256(src)
    assert source["format"].startswith("NVIDIA pickle")
    for which in ("G_ema", "G", "D"):
        _equal_states(stylegen.load_network(out, which), stylegen.load_network(src, which))
    _assert_reference_images(stylegen.load_network(out), _reference(compat_dir, "official_small_ref.npz"))


def test_info_nvidia_pickle(compat_dir):
    out = ok("info", compat_dir / "official_small.pkl").output
    rows = dict(line.split(None, 1) if " " in line else (line, "") for line in out.splitlines())
    assert rows["format"].strip() == "NVIDIA pickle (stylegan2-ada-pytorch)"
    assert rows["note"].strip().startswith("read without executing code")
    for line in ["params G_ema", "params G ", "params D"]:
        assert line in out, (line, out)


def test_info_converted_nvidia_pickle(compat_dir, tmp_path):
    out = tmp_path / "official.pkl"
    ok("convert", compat_dir / "official_small.pkl", out)
    text = ok("info", out).output
    assert "stylegen v1" in text and "converted from official_small.pkl (NVIDIA pickle" in text
    assert _sha256(compat_dir / "official_small.pkl") in text and "params D" in text


def test_read_network_file_reports_what_loads(compat_dir):
    f = network_file.read_network_file(compat_dir / "official_small.pkl")
    assert set(f.networks) == {"G_ema", "G", "D"} and not f.problems and f.snapshot is None
    assert f.source_format.startswith("NVIDIA pickle") and f.source_notes


def test_info_snapshot_without_d_has_no_d_row(tmp_path):
    path = tmp_path / "g.pkl"
    stylegen.save_network(path, G_ema=tiny(0))
    result = run("info", path)
    assert result.exit_code == 0 and "params G_ema" in result.output and "params D" not in result.output


# (fixture file, reference file, settings compared with the file's own w_avg): rosinality's
# train.py layout has no latent_avg, so its truncated references are compared after putting the
# reference's latent_avg into w_avg (docs/formats.md); TF and convert layouts carry w_avg.
FOREIGN = [
    ("tf_small.pkl", "tf_small_ref.npz"),
    ("rosinality_small.pt", "rosinality_small_ref.npz"),
    ("rosinality_small_convert.pt", "rosinality_small_ref.npz"),
]


@pytest.mark.parametrize("name, ref_name", FOREIGN, ids=[n for n, _ in FOREIGN])
def test_convert_foreign_formats(compat_dir, tmp_path, name, ref_name):
    src = compat_dir / name
    out = tmp_path / "out.pkl"
    result = ok("convert", src, out)
    loaded = network_file.read_network_file(src)
    assert f"(stylegen: {', '.join(k for k in ('G_ema', 'G', 'D') if k in loaded.networks)})" in result.output
    data = _plain_load(out)
    assert data["extra"]["source"]["sha256"] == _sha256(src)
    assert data["extra"]["source"]["format"] == loaded.source_format and loaded.source_format != "unknown"
    for which, net in loaded.networks.items():
        _equal_states(stylegen.load_network(out, which), net)
    G = stylegen.load_network(out)
    ref = _reference(compat_dir, ref_name)
    if "latent_avg" in ref:
        G.mapping.w_avg.copy_(torch.from_numpy(ref["latent_avg"]))
    _assert_reference_images(G, ref)
    if "wplus" in ref:
        with torch.no_grad():
            img = G.synthesis(torch.from_numpy(ref["wplus"]), noise_mode="const")
        assert (img - torch.from_numpy(ref["wplus_images"])).abs().max() <= 1e-4


@pytest.mark.parametrize("name", [n for n, _ in FOREIGN])
def test_info_foreign_formats(compat_dir, name):
    text = ok("info", compat_dir / name).output
    loaded = network_file.read_network_file(compat_dir / name)
    assert loaded.source_format in text and "32x32" in text and "params G_ema" in text
    assert ("params D" in text) == ("D" in loaded.networks)
    for note in loaded.source_notes:
        assert note in text


# ---------------------------------------------------------------------------------------------
# --to rosinality


def test_round_trip_ours_rosinality_ours_is_exact(ours, tmp_path):
    pt, back = tmp_path / "net.pt", tmp_path / "back.pkl"
    result = ok("convert", ours, pt, "--to", "rosinality")
    assert f"Wrote {pt} (rosinality: G_ema, G, D)" in result.output
    assert {"g_ema", "latent_avg", "g", "d"} <= set(_plain_load(pt))  # plain data, no Namespace
    ok("convert", pt, back)
    for which in ("G_ema", "D"):
        _equal_states(stylegen.load_network(back, which), stylegen.load_network(ours, which))
    # rosinality's layout has one latent_avg (g_ema's): G's w_avg is re-estimated, the rest exact
    G_back, G = stylegen.load_network(back, "G").state_dict(), stylegen.load_network(ours, "G").state_dict()
    assert G_back.keys() == G.keys() and all(torch.equal(G_back[k], G[k]) for k in G if k != "mapping.w_avg")


def test_nvidia_pickle_to_rosinality_keeps_the_images(compat_dir, tmp_path):
    pt = tmp_path / "official.pt"
    ok("convert", compat_dir / "official_small.pkl", pt, "--to", "rosinality")
    _assert_reference_images(stylegen.load_network(pt), _reference(compat_dir, "official_small_ref.npz"))


def test_to_rosinality_refuses_a_conditional_network(tmp_path):
    src = tmp_path / "cond.pkl"
    stylegen.save_network(src, G_ema=tiny(0, c_dim=4))
    out = tmp_path / "cond.pt"
    usage_error("convert", src, out, "--to", "rosinality", match="c_dim 4")
    assert not out.exists()


def test_to_rosinality_leaves_out_a_discriminator_it_cannot_hold(tmp_path):
    src = tmp_path / "d8.pkl"
    cfg = DiscriminatorConfig(
        c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=32, mbstd_group_size=8
    )
    stylegen.save_network(src, G_ema=tiny(0), D=Discriminator(cfg))
    out = tmp_path / "d8.pt"
    result = ok("convert", src, out, "--to", "rosinality")
    assert "note: D not written:" in result.output and "(rosinality: G_ema)" in result.output
    assert "d" not in _plain_load(out)


@pytest.mark.parametrize("container", ["pickle", "torch zip"])
def test_convert_and_info_refuse_code_in_the_file(tmp_path, container):
    import pickle

    marker, bad, out = tmp_path / "ran", tmp_path / "evil.pkl", tmp_path / "out.pkl"
    if container == "pickle":
        bad.write_bytes(pickle.dumps({"G_ema": Payload(os.system, f"touch {marker}")}, protocol=4))
    else:
        torch.save({"format": "stylegen", "version": 1, "G_ema": Payload(os.system, f"touch {marker}")}, bad)
    usage_error("convert", bad, out, match="evil.pkl")
    usage_error("info", bad, match="evil.pkl")
    assert not marker.exists() and not out.exists()
