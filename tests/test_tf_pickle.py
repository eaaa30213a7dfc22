"""NVIDIA's legacy TensorFlow pickles: the fixture's pixels, its G and D, and its build arguments.

`tf_small.pkl` was written in TF's layout and checked against NVIDIA's own converter; its
reference images come from NVIDIA's PyTorch code (`tf_small.json`). Variants of the file are made
by re-pickling its data with a small writer (tests/tf_helpers.py), never by changing the fixture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_helpers import ok, png, usage_error
from tf_helpers import Network, flat_variables, read_raw, set_variable, tf_discriminator, tf_generator, write_tf

from stylegen import NetworkLoadError, load_network, seed_to_z, to_uint8
from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig


@pytest.fixture(scope="module")
def tf_path(compat_dir):
    return compat_dir / "tf_small.pkl"


@pytest.fixture(scope="module")
def reference(compat_dir):
    with np.load(compat_dir / "tf_small_ref.npz") as d:
        return {k: d[k] for k in d.files}


def _settings(ref):
    for s, (psi, cutoff) in enumerate(zip(ref["psis"], ref["cutoffs"])):
        yield s, float(psi), None if cutoff < 0 else int(cutoff)


def assert_reproduces(G, ref, freeze: bool = False) -> None:
    """Every setting of the reference: ws and images to 1e-4, uint8 images within one level."""
    G = G.freeze() if freeze else G
    z = torch.from_numpy(ref["z"])
    for s, psi, cutoff in _settings(ref):
        with torch.inference_mode():
            ws = G.mapping(z, None, truncation_psi=psi, truncation_cutoff=cutoff)
            img = G.synthesis(ws, noise_mode="const")
        ref_img = torch.from_numpy(ref["images"][s])
        assert (ws - torch.from_numpy(ref["ws"][s])).abs().max() <= 1e-4, f"ws, setting {s}"
        assert (img - ref_img).abs().max() <= 1e-4, f"images, setting {s}"
        assert (to_uint8(img).int() - to_uint8(ref_img).int()).abs().max() <= 1, f"uint8, setting {s}"


def test_fixture_z_is_seed_to_z(reference):
    z = np.concatenate([seed_to_z(int(s), reference["z"].shape[1]).numpy() for s in reference["seeds"]])
    np.testing.assert_array_equal(z, reference["z"])
    assert (reference["labels"] < 0).all(), "the fixture is unconditional"


@pytest.mark.parametrize("form", ["nvidia", "frozen"])
def test_tf_fixture_pixels(tf_path, reference, ops_impl, form):
    G = load_network(tf_path)  # which='G_ema' is TF's Gs
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution) == (128, 128, 8, 32)
    assert G.config.channel_base == 2048 and G.config.channel_max == 128 and G.config.mapping_layers == 4
    assert_reproduces(G, reference, freeze=form == "frozen")


def test_generator_call_matches_fixture(tf_path, reference):
    G = load_network(tf_path, which="G_ema")
    with torch.no_grad():
        img = G(torch.from_numpy(reference["z"]), truncation_psi=0.7)
    assert (img - torch.from_numpy(reference["images"][1])).abs().max() <= 1e-4


def test_source_format_and_notes(tf_path):
    for which in ("G_ema", "G", "D"):
        net = load_network(tf_path, which)
        assert net.source_format.startswith("NVIDIA TensorFlow pickle (StyleGAN2 TF, state version 4)")
        assert isinstance(net.source_notes, list) and all(
            isinstance(n, str) and "\n" not in n for n in net.source_notes
        )


def test_g_is_not_gs(tf_path, reference):
    """G (the raw training generator) has other weights: taking it fails the reference."""
    G = load_network(tf_path, which="G")
    with torch.no_grad():
        img = G(torch.from_numpy(reference["z"]))
    assert (img - torch.from_numpy(reference["images"][0])).abs().max() > 0.1


def _tf_to_ours(name: str, v: np.ndarray) -> np.ndarray:
    """docs/formats.md's D table: conv kernels [kh, kw, in, out] -> [out, in, kh, kw], dense transposed."""
    return v.transpose(3, 2, 0, 1) if v.ndim == 4 else (v.T if v.ndim == 2 else v)


def test_discriminator_loads_for_fine_tuning(tf_path):
    D = load_network(tf_path, which="D")
    assert isinstance(D, Discriminator) and D.img_resolution == 32 and D.c_dim == 0
    raw = flat_variables(read_raw(tf_path)[1])
    names = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip"}
    ours = D.state_dict()
    for name, v in raw.items():
        head, param = name.rsplit("/", 1)
        if head.startswith("4x4/") or head == "Output":
            key = {"4x4/Conv": "b4.conv", "4x4/Dense0": "b4.fc", "Output": "b4.out"}[head] + "." + param
        else:
            r, layer = head.split("/")
            key = f"b{r.split('x')[0]}.{names[layer]}.{param}"
        np.testing.assert_array_equal(ours[key].numpy(), _tf_to_ours(name, v), err_msg=name)
    assert len([k for k in ours if not k.endswith("resample_filter")]) == len(raw)
    with torch.no_grad():
        logits = D(torch.randn([4, 3, 32, 32]))
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()


# ---------------------------------------------------------------------------------------------
# Variants of the fixture: build arguments, versions, layouts.


def _variant(tmp_path, tf_path, edit, protocol: int = 4):
    G, D, Gs = read_raw(tf_path)
    edit(G, D, Gs)
    return write_tf(tmp_path / "variant.pkl", (G, D, Gs), protocol=protocol)


def test_rewritten_fixture_is_the_same_network(tmp_path, tf_path, reference):
    path = _variant(tmp_path, tf_path, lambda G, D, Gs: None)
    assert_reproduces(load_network(path), reference)


def test_harmless_static_kwarg_is_accepted(tmp_path, tf_path, reference):
    def edit(G, D, Gs):
        Gs.static_kwargs.update(randomize_noise=True, truncation_psi=0.5, style_mixing_prob=None, num_fp16_res=2)

    G = load_network(_variant(tmp_path, tf_path, edit))
    assert_reproduces(G, reference)
    assert any("randomize_noise" in n for n in G.source_notes)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("resolution_w", 32, "resolution_w"),
        ("architecture", "resnet", "architecture 'resnet'"),
        ("architecture", "orig", "architecture 'orig'"),
        ("nonlinearity", "relu", "nonlinearity='relu'"),
        ("use_noise", False, "use_noise=False"),
        ("label_fmaps", 64, "label_fmaps=64"),
        ("resample_kernel", None, "resample_kernel=None"),
        ("fmap_base", 2048, "static_kwargs"),  # shapes no longer match the arguments
    ],
)
def test_static_kwargs_that_change_the_network_are_refused(tmp_path, tf_path, key, value, match):
    path = _variant(tmp_path, tf_path, lambda G, D, Gs: Gs.static_kwargs.update({key: value}))
    with pytest.raises(NetworkLoadError, match=match) as e:
        load_network(path)
    assert str(path) in str(e.value) and "'G_ema'" in str(e.value) and "\n" not in str(e.value)
    load_network(path, which="G")  # only Gs was changed


def test_unknown_discriminator_kwarg_is_refused(tmp_path, tf_path):
    path = _variant(tmp_path, tf_path, lambda G, D, Gs: D.static_kwargs.update(architecture="orig"))
    with pytest.raises(NetworkLoadError, match="discriminator architecture 'orig'"):
        load_network(path, which="D")


def test_stylegan1_is_refused_with_what_it_is(tmp_path, tf_path):
    def edit(G, D, Gs):
        for net in (G, D, Gs, *G.components.values(), *Gs.components.values()):
            net.version = 3
        G.build_func_name = Gs.build_func_name = "G_style"  # StyleGAN's own names
        D.build_func_name = "D_basic"

    with pytest.raises(NetworkLoadError, match=r"StyleGAN \(1\).*version 3.*StyleGAN2") as e:
        load_network(_variant(tmp_path, tf_path, edit))
    assert "\n" not in str(e.value)


def test_ada_version_5_protocol_3(tmp_path, tf_path, reference):
    def edit(G, D, Gs):
        for net in (G, D, Gs, *G.components.values(), *Gs.components.values()):
            net.version = 5
            net.input_shapes, net.output_shapes = [[None, 128], [None, 0]], [[None, 3, 32, 32]]
            net.input_names, net.output_names = ["latents_in", "labels_in"], ["images_out"]
        Gs.variables = [(n, v) for n, v in Gs.variables if n != "lod"]

    G = load_network(_variant(tmp_path, tf_path, edit, protocol=3))
    assert_reproduces(G, reference)
    assert "StyleGAN2-ADA TF, state version 5" in G.source_format


def test_label_concat_is_refused(tmp_path, tf_path):
    def edit(G, D, Gs):
        Gs.static_kwargs["label_size"] = 4
        Gs.components["mapping"].variables.insert(0, ("LabelConcat/weight", np.ones([4, 128], np.float32)))

    with pytest.raises(NetworkLoadError, match="LabelConcat"):
        load_network(_variant(tmp_path, tf_path, edit))


def test_resnet_generator_variables_are_refused(tmp_path, tf_path):
    def edit(G, D, Gs):
        Gs.components["synthesis"].variables.append(("8x8/Skip/weight", np.ones([1, 1, 128, 128], np.float32)))

    with pytest.raises(NetworkLoadError, match="architecture 'resnet'"):
        load_network(_variant(tmp_path, tf_path, edit))


def test_unexpected_variable_and_shape_are_refused(tmp_path, tf_path):
    path = _variant(tmp_path, tf_path, lambda G, D, Gs: Gs.variables.append(("Extra/weight", np.ones(3, np.float32))))
    with pytest.raises(NetworkLoadError, match="Extra/weight"):
        load_network(path)
    bad = np.ones([3, 3, 128, 64], np.float32)
    path = _variant(tmp_path, tf_path, lambda G, D, Gs: set_variable(Gs, "synthesis/8x8/Conv1/weight", bad))
    with pytest.raises(NetworkLoadError, match="b8.conv1.weight has shape"):
        load_network(path)


def test_bare_gs_file(tmp_path, tf_path, reference):
    G, D, Gs = read_raw(tf_path)
    path = write_tf(tmp_path / "gs.pkl", Gs)
    assert_reproduces(load_network(path), reference)
    with pytest.raises(NetworkLoadError, match=r"no 'D' network \(has: G_ema\)"):
        load_network(path, which="D")


def test_not_a_network_tuple(tmp_path, tf_path):
    G, D, Gs = read_raw(tf_path)
    with pytest.raises(NetworkLoadError, match="tuple of 2"):
        load_network(write_tf(tmp_path / "two.pkl", (G, Gs)))


# ---------------------------------------------------------------------------------------------
# Conditional StyleGAN2-ADA TF networks of other sizes: our networks written in TF's layout
# (tf_helpers, the inverse of docs/formats.md's table) read back with the same weights.


def test_conditional_ada_generator_and_discriminator(tmp_path, make_generator):
    G = make_generator(c_dim=3, conv_clamp=256.0)
    torch.manual_seed(1)
    dcfg = DiscriminatorConfig(
        c_dim=3, img_resolution=16, img_channels=3, channel_base=64, channel_max=8, mbstd_group_size=2, mapping_layers=2
    )
    D = Discriminator(dcfg).eval()
    kw = {
        "num_channels": 3,
        "resolution": 16,
        "label_size": 3,
        "fmap_base": 32,
        "fmap_max": 8,
        "num_fp16_res": 2,
        "conv_clamp": 256,
    }
    gkw = {**kw, "latent_size": 8, "dlatent_size": 8, "mapping_layers": 2, "style_mixing_prob": None}
    tf_G = tf_generator(G, "Gs", gkw)
    files = (
        tf_generator(G, "G", gkw),
        tf_discriminator(D, {**kw, "mbstd_group_size": 2, "mapping_layers": 2, "mapping_lrmul": 0.01}),
        tf_G,
    )
    path = write_tf(tmp_path / "cond.pkl", files, protocol=3)
    G2, D2 = load_network(path), load_network(path, which="D")
    assert G2.config.c_dim == 3 and G2.config.conv_clamp == 256 and D2.config.mbstd_group_size == 2
    for ours, theirs in ((G.state_dict(), G2.state_dict()), (D.state_dict(), D2.state_dict())):
        assert ours.keys() == theirs.keys()
        for k in ours:  # affine biases went through TF's -1 / +1 in float32: rounding only
            torch.testing.assert_close(theirs[k], ours[k], rtol=0, atol=1e-6 if "affine.bias" in k else 0, msg=k)
    z, c = torch.randn([4, 8]), torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        torch.testing.assert_close(G2(z, c, truncation_psi=0.7), G(z, c, truncation_psi=0.7), rtol=0, atol=1e-5)
        torch.testing.assert_close(D2(G(z, c), c), D(G(z, c), c), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Command line


def test_cli_sample_reproduces_tf_images(tf_path, reference, tmp_path):
    s = next(k for k in range(len(reference["psis"])) if reference["psis"][k] == 1 and reference["cutoffs"][k] < 0)
    assert reference["seeds"].tolist()[:4] == [0, 1, 2, 3]
    ok("sample", "--network", tf_path, "--seeds", "0-3", "--outdir", tmp_path)
    expected = to_uint8(torch.from_numpy(reference["images"][s, :4])).numpy()
    for k in range(4):
        diff = png(tmp_path / f"seed{k:04d}.png").astype(int) - expected[k].astype(int)
        assert np.abs(diff).max() <= 1, k


def test_cli_info_tf(tf_path):
    out = ok("info", tf_path).output
    assert "TensorFlow" in out and "32x32" in out and "channel_base    2048" in out


def test_cli_bad_tf_files(tf_path, tmp_path):
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(tf_path.read_bytes()[:100_000])
    usage_error("sample", "--network", cut, "--seeds", "0", "--outdir", tmp_path, match="cut.pkl")
    usage_error("info", cut, match="cut.pkl")
    odd = write_tf(tmp_path / "odd.pkl", Network(name="Gs", version=4, static_kwargs={}, components={}, variables=[]))
    usage_error("info", odd, match="odd.pkl")
