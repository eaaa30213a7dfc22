"""Generator behaviour on tiny configs: shapes, ws layout, truncation, w_avg, labels, noise, config."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from stylegen import Generator, GeneratorConfig, seed_to_z, to_uint8, ws_resolution


@pytest.mark.parametrize("resolution", [4, 8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_num_ws(make_generator, resolution, channels):
    G = make_generator(img_resolution=resolution, img_channels=channels)
    assert G.num_ws == 2 * int(math.log2(resolution)) - 2 == G.config.num_ws
    assert G.synthesis.block_resolutions == [2**i for i in range(2, int(math.log2(resolution)) + 1)]
    z = torch.randn([2, G.z_dim])
    ws = G.mapping(z)
    assert ws.shape == (2, G.num_ws, G.w_dim) and ws.dtype == torch.float32
    img = G.synthesis(ws)
    assert img.shape == (2, channels, resolution, resolution) and img.dtype == torch.float32
    torch.testing.assert_close(G(z), img)
    for r in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{r}")
        assert hasattr(block, "conv0") == (r > 4)
        assert hasattr(block, "conv1") and hasattr(block, "torgb")


def _affine_inputs(G, ws):
    """{layer name: the w its affine consumed} for one synthesis pass."""
    seen, hooks = {}, []
    for name, mod in G.synthesis.named_modules():
        if name.endswith(("conv0", "conv1", "torgb")):
            hooks.append(mod.affine.register_forward_hook(lambda m, a, o, n=name: seen.__setitem__(n, a[0].clone())))
    try:
        G.synthesis(ws)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _expected_index(name: str) -> int:
    """DESIGN.md: b4 uses ws[0] (conv1), ws[1] (torgb); block 2^k uses 2k-5, 2k-4, 2k-3."""
    block, layer = name.split(".")
    k = int(math.log2(int(block[1:])))
    if k == 2:
        return {"conv1": 0, "torgb": 1}[layer]
    return {"conv0": 2 * k - 5, "conv1": 2 * k - 4, "torgb": 2 * k - 3}[layer]


def test_ws_index_to_layer(make_generator):
    G = make_generator(img_resolution=32)
    ws = torch.randn([1, G.num_ws, G.w_dim])
    base = _affine_inputs(G, ws)
    assert len(base) == 3 * 4 - 1
    for i in range(G.num_ws):
        ws2 = ws.clone()
        ws2[:, i] += 1
        changed = {n for n, w in _affine_inputs(G, ws2).items() if not torch.equal(w, base[n])}
        assert changed == {n for n in base if _expected_index(n) == i}, f"ws[{i}]"
        for n in changed:
            if not n.endswith("torgb"):
                assert ws_resolution(i) == int(n.split(".")[0][1:])


def test_ws_resolution():
    assert [ws_resolution(i) for i in range(8)] == [4, 8, 8, 16, 16, 32, 32, 64]


def test_truncation_psi_one_is_identity(make_generator):
    G = make_generator()
    G.mapping.w_avg.copy_(torch.randn([G.w_dim]))
    z = torch.randn([3, G.z_dim])
    ws = G.mapping(z)
    assert torch.equal(G.mapping(z, truncation_psi=1, truncation_cutoff=2), ws)
    assert all(torch.equal(ws[:, 0], ws[:, i]) for i in range(G.num_ws))


@pytest.mark.parametrize("cutoff", [None, 1, 3])
def test_truncation_cutoff(make_generator, cutoff):
    G = make_generator()
    G.mapping.w_avg.copy_(torch.randn([G.w_dim]))
    z = torch.randn([3, G.z_dim])
    ws = G.mapping(z)
    wt = G.mapping(z, truncation_psi=0.4, truncation_cutoff=cutoff)
    n = G.num_ws if cutoff is None else cutoff
    expected = G.mapping.w_avg + 0.4 * (ws[:, :n] - G.mapping.w_avg)
    torch.testing.assert_close(wt[:, :n], expected)
    assert torch.equal(wt[:, n:], ws[:, n:])


def test_w_avg_updates_only_in_training(make_generator):
    G = make_generator()
    z = torch.randn([4, G.z_dim])
    G.mapping(z)
    assert torch.count_nonzero(G.mapping.w_avg) == 0
    G.train()
    G.mapping(z, update_w_avg=False)
    assert torch.count_nonzero(G.mapping.w_avg) == 0
    G.mapping(z)
    w = G.eval().mapping(z)[:, 0]
    torch.testing.assert_close(G.mapping.w_avg, w.mean(0) * (1 - G.config.w_avg_beta))


def test_conditional(make_generator):
    G = make_generator(c_dim=4)
    assert "mapping.embed.weight" in G.state_dict()
    z = torch.randn([2, G.z_dim]).repeat(2, 1)
    c = torch.eye(4)
    img = G(z, c)
    assert img.shape == (4, 3, 16, 16)
    assert not torch.allclose(img[0], img[2])
    with pytest.raises(ValueError, match="c \\[N, 4\\]"):
        G(z)


def test_unconditional_has_no_embed(make_generator):
    assert not any(k.startswith("mapping.embed") for k in make_generator().state_dict())


def test_noise_modes(make_generator):
    G = make_generator()
    ws = G.mapping(torch.randn([2, G.z_dim]))
    const, none = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="none")
    assert torch.equal(const, G.synthesis(ws, noise_mode="const"))
    assert torch.equal(none, G.synthesis(ws, noise_mode="none"))
    assert not torch.allclose(const, none)
    assert not torch.allclose(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fixed")


@pytest.mark.parametrize("batch", [1, 3])
def test_fused_and_unfused_modconv_agree(make_generator, batch):
    G = make_generator(img_resolution=32, conv_clamp=0.5)
    ws = G.mapping(torch.randn([batch, G.z_dim]))
    a = G.synthesis(ws, fused_modconv=True)
    b = G.synthesis(ws, fused_modconv=False)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    G.eval()
    torch.testing.assert_close(G.synthesis(ws), a, rtol=0, atol=0)  # eval default: NVIDIA's grouped conv
    G.train()
    torch.testing.assert_close(G.synthesis(ws), b, rtol=0, atol=0)  # training default: scaled activations


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("fold_up2", ["auto", "always", "never"])
@pytest.mark.parametrize("noise_mode", ["const", "random", "none"])
def test_frozen_form_matches_nvidia_path(make_generator, batch, fold_up2, noise_mode):
    """G.freeze() (derived weights, fused epilogue, folded up-sampling) vs NVIDIA's eval arithmetic."""
    G = make_generator(img_resolution=32, conv_clamp=0.5, c_dim=2).eval()
    F = G.freeze(fold_up2=fold_up2)
    z, c = torch.randn([batch, G.z_dim]), torch.eye(2)[torch.arange(batch) % 2]
    ws = G.mapping(z, c, truncation_psi=0.7)
    torch.testing.assert_close(F.mapping(z, c, truncation_psi=0.7), ws, rtol=0, atol=0)
    torch.manual_seed(5)
    expected = G.synthesis(ws, noise_mode=noise_mode, fused_modconv=True)
    for mode in (torch.inference_mode, torch.no_grad, torch.enable_grad):
        torch.manual_seed(5)
        with mode():
            got = F.synthesis(ws, noise_mode=noise_mode)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.manual_seed(5)
    torch.testing.assert_close(F(z, c, truncation_psi=0.7, noise_mode=noise_mode), expected, rtol=1e-5, atol=1e-5)
    for name in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels", "config"):
        assert getattr(F, name) == getattr(G, name), name


def test_frozen_form_is_a_snapshot_that_cannot_go_stale(make_generator):
    """Edits to G (even through .data, which bumps no version counter) never leak into a frozen
    form, and a fresh freeze() sees them; deepcopy copies plain buffers."""
    G, G2 = make_generator(seed=0).eval(), make_generator(seed=1).eval()
    ws = G.mapping(torch.randn([2, G.z_dim]))
    F0 = G.freeze()
    before = F0.synthesis(ws)
    with torch.no_grad():
        G.load_state_dict(G2.state_dict())
    G.synthesis.b8.conv0.weight.data.mul_(2)
    G2.synthesis.b8.conv0.weight.data.mul_(2)
    G.synthesis.b16.conv1.weight.data = G2.synthesis.b16.conv1.weight.data.clone() * 3
    G2.synthesis.b16.conv1.weight.data.mul_(3)
    torch.testing.assert_close(F0.synthesis(ws), before, rtol=0, atol=0)
    expected = G2.synthesis(ws, fused_modconv=True)
    torch.testing.assert_close(G.synthesis(ws), expected, rtol=0, atol=0)  # G itself caches nothing
    torch.testing.assert_close(G.freeze().synthesis(ws), expected, rtol=1e-5, atol=1e-5)
    F1 = copy.deepcopy(G.freeze())
    torch.testing.assert_close(F1.synthesis(ws), expected, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in F1.parameters())
    with pytest.raises(RuntimeError, match="cannot be trained"):
        F1.train()


def test_gradient_to_ws_through_frozen_generator(make_generator):
    """Projection-style use: gradients w.r.t. ws flow through the frozen form."""
    G = make_generator().requires_grad_(False).eval()
    F = G.freeze()
    ws = G.mapping(torch.randn([2, G.z_dim])).requires_grad_(True)
    with torch.inference_mode():
        F.synthesis(ws.detach())  # an inference-mode call first must not poison autograd later
    (g_fast,) = torch.autograd.grad(F.synthesis(ws).square().sum(), ws)
    (g_ref,) = torch.autograd.grad(G.synthesis(ws, fused_modconv=True).square().sum(), ws)
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-4, atol=1e-5)


def test_training_gradients_reach_every_parameter(make_generator):
    G = make_generator(c_dim=2).train()
    img = G(torch.randn([2, G.z_dim]), torch.eye(2), noise_mode="random")
    img.square().sum().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_state_dict_names_are_nvidias(make_generator):
    names = set(make_generator(img_resolution=8, c_dim=2).state_dict())
    expected = {
        "mapping.embed.weight", "mapping.embed.bias", "mapping.fc0.weight", "mapping.fc1.bias", "mapping.w_avg",
        "synthesis.b4.const", "synthesis.b4.resample_filter", "synthesis.b4.conv1.weight",
        "synthesis.b4.conv1.noise_const", "synthesis.b4.conv1.noise_strength", "synthesis.b4.conv1.resample_filter",
        "synthesis.b4.conv1.affine.weight", "synthesis.b4.conv1.affine.bias", "synthesis.b4.torgb.weight",
        "synthesis.b8.conv0.weight", "synthesis.b8.conv0.bias", "synthesis.b8.torgb.affine.bias",
    }  # fmt: skip
    assert expected <= names
    assert not any(n.startswith("synthesis.b4.conv0") for n in names)


def test_config_round_trip(make_config):
    cfg = make_config(c_dim=3, conv_clamp=256.0)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert GeneratorConfig.from_dict(d) == cfg
    assert Generator(GeneratorConfig.from_dict(d)).num_ws == cfg.num_ws
    with pytest.raises(AttributeError):
        cfg.z_dim = 3
    with pytest.raises(ValueError, match="unknown keys bogus"):
        GeneratorConfig.from_dict({**d, "bogus": 1})


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"img_resolution": 24}, "power of two"),
        ({"img_resolution": 2}, "power of two"),
        ({"architecture": "bogus"}, "architecture 'bogus'"),
        ({"w_dim": 0}, "w_dim"),
    ],
)
def test_config_rejects_bad_values(make_config, bad, match):
    with pytest.raises(ValueError, match=match):
        make_config(**bad)


def test_seed_to_z_matches_numpy():
    z = seed_to_z(42, 16)
    assert z.shape == (1, 16) and z.dtype == torch.float32
    np.testing.assert_array_equal(z.numpy(), np.random.RandomState(42).randn(1, 16).astype(np.float32))


def test_to_uint8_truncates_and_clamps():
    img = torch.tensor([-2.0, -1.0, 0.0, 0.5, 0.999, 1.0]).reshape(1, 1, 2, 3)
    out = to_uint8(img)
    assert out.dtype == torch.uint8 and out.shape == (1, 2, 3, 1)
    assert out.flatten().tolist() == [0, 0, 128, 191, 255, 255]
    assert to_uint8(torch.zeros([2, 3, 4, 5])).shape == (2, 4, 5, 3)
