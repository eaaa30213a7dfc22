"""StyleGAN3 generators from NVIDIA's pickles: their pixels, layer by layer, and through the CLI.

Oracles: the fixtures' reference outputs (`sg3t_small_ref.npz`, `sg3r_small_ref.npz`), made by
NVIDIA's stylegan3 code on the CPU in float32 (see ../shared/compat/FORMAT.md).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from cli_helpers import ok, png

import stylegen
from stylegen import load_network, seed_to_z, to_uint8
from stylegen.networks.discriminator import Discriminator
from stylegen.networks.sg3_generator import Generator3, Generator3Config

import ops_helpers
from conftest import SG3_NETS as NETS
from ops_helpers import cuda_plugin, needs_cuda

cpu_plugin, cpu_gemm = ops_helpers.cpu_plugin, ops_helpers.cpu_gemm

ATOL = 1e-4  # FORMAT.md: images to 1e-4 max abs, uint8 within one level
WS_ATOL = 1e-5


def _close(got: torch.Tensor, want: np.ndarray, atol: float, what: str) -> None:
    diff = (got.float() - torch.from_numpy(want).float()).abs().max().item()
    assert diff <= atol, f"{what}: max abs difference {diff:.3g} > {atol}"


def _images(G, z, psi, transform=None, frozen=True):
    G = G.freeze() if frozen else copy.deepcopy(G).eval()
    if transform is not None:
        G.synthesis.input.transform.copy_(torch.from_numpy(transform))
    with torch.inference_mode():
        ws = G.mapping(z, None, truncation_psi=psi)
        return ws, G.synthesis(ws, noise_mode="const")


def test_loads_as_generator3(sg3, sg3_net):
    G, meta = sg3_net, sg3["meta"]
    assert isinstance(G, Generator3) and not G.training
    assert not any(p.requires_grad for p in G.parameters())
    net = meta["network"]
    kwargs = meta["G_init_kwargs"]
    assert (G.z_dim, G.c_dim, G.w_dim) == (kwargs["z_dim"], kwargs["c_dim"], kwargs["w_dim"])
    assert (G.img_resolution, G.img_channels) == (kwargs["img_resolution"], kwargs["img_channels"])
    assert G.num_ws == net["num_ws"] == len(net["layer_names"]) + 1
    assert G.synthesis.layer_names == net["layer_names"]
    assert G.config.architecture == meta["cfg"]
    assert "stylegan3" in G.source_format and "without executing code" in G.source_format
    assert isinstance(G.source_notes, list) and G.source_notes
    n_params = sum(p.numel() for p in G.parameters())
    assert n_params == meta["params"]["G"]


def test_layer_specs_match_the_fixture_json(sg3, sg3_net):
    for spec, want in zip(sg3_net.config.layers, sg3["meta"]["network"]["layers"]):
        assert spec.name == want["name"]
        for key in ("in_channels", "out_channels", "conv_kernel", "up_factor", "down_factor", "up_taps", "down_taps"):
            assert getattr(spec, key) == want[key], (spec.name, key)
        assert list(spec.in_size) == want["in_size"] and list(spec.out_size) == want["out_size"]
        assert list(spec.padding) == want["padding"] and spec.down_radial == want["down_radial"]
        layer = getattr(sg3_net.synthesis, spec.name)
        assert abs(layer.magnitude_ema.item() - want["magnitude_ema"]) <= 1e-7
        for buf, shape in (("up_filter", want["up_filter_shape"]), ("down_filter", want["down_filter_shape"])):
            got = getattr(layer, buf)
            assert (got is None and shape is None) or list(got.shape) == shape, (spec.name, buf)


def test_state_dict_names_are_nvidias(sg3, sg3_net):
    from stylegen.formats.nvidia import collect_state, read_records

    with open(sg3["path"], "rb") as f:
        state = collect_state(read_records(f)["G_ema"])
    ours = sg3_net.state_dict()
    assert set(ours) == set(state)
    assert all(torch.equal(ours[k], state[k]) for k in state)


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "trainable"])
def test_reference_images(sg3, sg3_net, ops_impl, frozen):
    """Every seed and psi of the npz, identity transform, through STYLEGEN_OPS=ref and =cpu,
    in the inference form (G.freeze()) and in the trainable one."""
    ref = sg3["ref"]
    z = torch.from_numpy(ref["z"])
    assert torch.equal(torch.cat([seed_to_z(int(s), sg3_net.z_dim) for s in ref["seeds"]]), z)
    for p, psi in enumerate(ref["psis"]):
        assert ref["cutoffs"][p] < 0  # None
        ws, img = _images(sg3_net, z, float(psi), frozen=frozen)
        _close(ws, ref["ws"][p], WS_ATOL, f"ws, psi {psi}")
        _close(img, ref["images"][p], ATOL, f"images, psi {psi}")
        diff = (to_uint8(img).int() - to_uint8(torch.from_numpy(ref["images"][p])).int()).abs().max()
        assert diff <= 1, f"uint8 images, psi {psi}: {diff} levels"


def test_reference_images_with_each_gemm(sg3, sg3_net, cpu_gemm):
    """The frozen form on the CPU plugin, its products (Winograd GEMMs, 1x1 layers) by torch's BLAS
    and by the plugin's own GEMM (what runs on CPUs that are not Intel's)."""
    ref = sg3["ref"]
    for p, psi in enumerate(ref["psis"]):
        _, img = _images(sg3_net, torch.from_numpy(ref["z"]), float(psi))
        _close(img, ref["images"][p], ATOL, f"images, psi {psi}, {cpu_gemm} GEMM")


def test_transformed_images(sg3, sg3_net):
    """synthesis.input.transform = the npz's inverse transform (translate 0.3, -0.2, rotate 20 degrees)."""
    ref = sg3["ref"]
    z = torch.from_numpy(ref["z"])
    for p, psi in enumerate(ref["psis"]):
        _, img = _images(sg3_net, z, float(psi), transform=ref["transform"])
        _close(img, ref["images_transformed"][p], ATOL, f"transformed images, psi {psi}")
    assert torch.equal(sg3_net.synthesis.input.transform, torch.eye(3)), "freeze() must copy, not share"


@needs_cuda
@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "trainable"])
def test_reference_images_on_cuda(sg3, sg3_net, monkeypatch, frozen):
    """GPU machines: the CUDA plugin (STYLEGEN_OPS=cuda) gives NVIDIA's pixels, transform included."""
    cuda_plugin()
    monkeypatch.setenv("STYLEGEN_OPS", "cuda")
    ref = sg3["ref"]
    G = (sg3_net.freeze() if frozen else copy.deepcopy(sg3_net).eval()).to("cuda")
    G.synthesis.input.transform.copy_(torch.from_numpy(ref["transform"]))
    z = torch.from_numpy(ref["z"]).cuda()
    with torch.inference_mode():
        img = G.synthesis(G.mapping(z, None, truncation_psi=float(ref["psis"][0])))
    _close(img.cpu(), ref["images_transformed"][0], ATOL, "transformed images on cuda")


def test_probes_layer_by_layer(sg3, sg3_net):
    """The first 4 channels of the input and of every layer, seeds[0], psi 1 (finds the first layer that differs)."""
    ref = sg3["ref"]
    syn = sg3_net.synthesis
    with torch.inference_mode():
        ws = sg3_net.mapping(torch.from_numpy(ref["z"][:1]), None).unbind(dim=1)
        x = syn.input(ws[0])
        _close(x[0, :4], ref["probe_input"], ATOL, "probe_input")
        for name, w in zip(syn.layer_names, ws[1:]):
            x = getattr(syn, name)(x, w)
            _close(x[0, :4], ref[f"probe_{name}"], ATOL, f"probe_{name}")


def test_generator_call_and_single_images(sg3, sg3_net):
    """G(z) equals the batched reference, one image at a time (the style normalisation spans the batch)."""
    ref = sg3["ref"]
    with torch.inference_mode():
        for i in (0, 4):
            img = sg3_net(torch.from_numpy(ref["z"][i : i + 1]), truncation_psi=0.7, noise_mode="random")
            _close(img[0], ref["images"][1][i], ATOL, f"G(z) seed {ref['seeds'][i]}")


def test_freeze_is_an_eval_copy(sg3_net):
    frozen = sg3_net.freeze()
    assert frozen is not sg3_net and isinstance(frozen, Generator3) and not frozen.training
    assert not any(p.requires_grad for p in frozen.parameters())
    assert frozen.synthesis.input.weight.data_ptr() != sg3_net.synthesis.input.weight.data_ptr()
    layer = getattr(frozen.synthesis, sg3_net.synthesis.layer_names[0])
    with pytest.raises(ValueError, match="update_emas"):
        frozen.synthesis(torch.zeros([1, sg3_net.num_ws, sg3_net.w_dim]), update_emas=True)
    with torch.no_grad():  # a later edit of G does not reach the frozen form
        before = layer.weight.clone()
        getattr(sg3_net.synthesis, sg3_net.synthesis.layer_names[0]).weight.mul_(2)
        getattr(sg3_net.synthesis, sg3_net.synthesis.layer_names[0]).weight.div_(2)
    assert torch.equal(layer.weight, before)


@pytest.mark.parametrize("batch", [1, 3])
def test_frozen_form_matches_the_trainable_one(sg3_net, batch):
    """Both of the frozen layer's paths (one image: scales in the weights; a batch: around a shared conv),
    the batch-wide style normalisation included, and the gradient w.r.t. ws (projection needs it)."""
    z = torch.randn([batch, sg3_net.z_dim], generator=torch.Generator().manual_seed(batch))
    G, frozen = copy.deepcopy(sg3_net).eval(), sg3_net.freeze()
    ws = G.mapping(z, None).detach()
    with torch.no_grad():
        want = G.synthesis(ws)
    ws_f = ws.clone().requires_grad_(True)
    got = frozen.synthesis(ws_f)
    assert (got - want).abs().max().item() <= 1e-5
    got.square().sum().backward()
    ws_t = ws.clone().requires_grad_(True)
    G.requires_grad_(False).synthesis(ws_t).square().sum().backward()
    # (a value on an lrelu kink or at the clamp may take the other side: compare the whole gradient)
    assert (ws_f.grad - ws_t.grad).norm() <= 1e-3 * ws_t.grad.norm()


def test_config_round_trips(sg3_net):
    cfg = sg3_net.config
    assert Generator3Config.from_dict(cfg.to_dict()) == cfg


def test_our_snapshot_round_trips(sg3_net, sg3, tmp_path):
    """save_network / load_network (what `stylegen convert` writes) keep the network and its pixels."""
    stylegen.save_network(tmp_path / "sg3.pkl", G_ema=sg3_net)
    G = load_network(tmp_path / "sg3.pkl")
    assert isinstance(G, Generator3) and G.config == sg3_net.config
    ref = sg3["ref"]
    with torch.inference_mode():
        _close(G(torch.from_numpy(ref["z"][:2])), ref["images"][0][:2], ATOL, "images after a round trip")


def test_bad_ws_and_noise_mode_are_refused(sg3_net):
    with pytest.raises(ValueError, match="ws must be"):
        sg3_net.synthesis(torch.zeros([1, sg3_net.num_ws - 1, sg3_net.w_dim]))
    with pytest.raises(ValueError, match="noise_mode"):
        sg3_net.synthesis(torch.zeros([1, sg3_net.num_ws, sg3_net.w_dim]), noise_mode="bogus")


@pytest.mark.parametrize("name", NETS)
def test_discriminator_still_loads(compat_dir, name):
    D = load_network(compat_dir / f"{name}.pkl", which="D")
    assert isinstance(D, Discriminator)
    meta = json.loads((compat_dir / f"{name}.json").read_text())
    assert sum(p.numel() for p in D.parameters()) == meta["params"]["D"]
    R = meta["D_init_kwargs"]["img_resolution"]
    with torch.no_grad():
        assert D(torch.zeros([4, 3, R, R]), None).shape == (4, 1)


@pytest.mark.parametrize("name", NETS)
def test_G_loads_too(compat_dir, name):
    G = load_network(compat_dir / f"{name}.pkl", which="G")
    assert isinstance(G, Generator3)


def test_a_broken_layer_spec_is_one_error_line(compat_dir, tmp_path):
    """A file whose layer padding does not give the stored sizes: NetworkLoadError, not a crash."""
    from stylegen.formats import nvidia_sg3
    from stylegen.formats.nvidia import read_records

    with open(compat_dir / "sg3t_small.pkl", "rb") as f:
        rec = read_records(f)["G_ema"]
    layer = rec.state["_modules"]["synthesis"].state["_modules"]["L0_36_64"]
    layer.state["padding"] = [9, 8, 9, 10]
    with pytest.raises(ValueError, match="L0_36_64: padding"):
        nvidia_sg3.generator3_from_record(rec)
    layer.state["padding"] = [9, 8, 9, 8]
    layer.state["up_taps"] = 24  # the stored filter has 12: shapes are checked before building
    layer.state["padding"] = [15, 14, 15, 14]
    with pytest.raises(ValueError, match="up_filter has shape"):
        nvidia_sg3.generator3_from_record(rec)


def test_cli_sample_pixels(compat_dir, tmp_path):
    """`stylegen sample --network sg3t_small.pkl --seeds 0-3`: NVIDIA's uint8 within one level."""
    with np.load(compat_dir / "sg3t_small_ref.npz") as d:
        seeds, images = list(d["seeds"]), d["images"][0]
    out = tmp_path / "out"
    ok("sample", "--network", compat_dir / "sg3t_small.pkl", "--seeds", "0-3", "--outdir", out)
    want = to_uint8(torch.from_numpy(images)).numpy()
    for seed in range(4):
        got = png(out / f"seed{seed:04d}.png").astype(int)
        diff = np.abs(got - want[seeds.index(seed)].astype(int)).max()
        assert diff <= 1, f"seed {seed}: {diff} levels"


def test_cli_info(compat_dir):
    result = ok("info", compat_dir / "sg3t_small.pkl")
    assert "stylegan3-t" in result.output and "num_ws" in result.output
    assert "params D" in result.output


def test_load_network_is_exported():
    assert stylegen.load_network is load_network
