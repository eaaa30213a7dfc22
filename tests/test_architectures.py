"""Generator architectures 'orig', 'skip' and 'resnet': NVIDIA's pixels, through every format.

The references (tests/data/nvidia_arch_small.npz) were computed by NVIDIA's own
`training.networks.Generator` (stylegan2-ada-pytorch) by scripts/make_arch_fixture.py: tiny
networks with random non-zero weights, unconditional and conditional, conv_clamp None and 0.5.
Each is rebuilt here from its constructor arguments and state dict, written as an NVIDIA pickle
and as a legacy TF pickle (tests/tf_helpers.py: the inverse of docs/formats.md's table), and must
give NVIDIA's ws and images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_compat import nvidia_writer  # noqa: F401  (fixture)
from tf_helpers import flat_variables, tf_generator, write_tf

from stylegen import Generator, GeneratorConfig, NetworkLoadError, load_network
from stylegen.editing.mixing import check_same_architecture, layer_swap
from stylegen.errors import InputError

FIXTURE = Path(__file__).parent / "data" / "nvidia_arch_small.npz"
NAMES = ["orig_cond", "skip_clamp", "resnet", "resnet_clamp_cond", "resnet_32_gray"]
TOL = 1e-5  # max abs difference to NVIDIA's float32 images and ws


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as d:
        return {k: d[k] for k in d.files}


def nvidia_kwargs(fixture: dict, name: str) -> dict:
    return json.loads(str(fixture[f"{name}/kwargs"]))


def our_config(kw: dict) -> GeneratorConfig:
    """NVIDIA's constructor arguments -> our config, written out here independently of the loader."""
    syn = kw["synthesis_kwargs"]
    return GeneratorConfig(
        z_dim=kw["z_dim"], c_dim=kw["c_dim"], w_dim=kw["w_dim"], img_resolution=kw["img_resolution"],
        img_channels=kw["img_channels"], mapping_layers=kw["mapping_kwargs"]["num_layers"],
        channel_base=syn["channel_base"], channel_max=syn["channel_max"], conv_clamp=syn["conv_clamp"],
        architecture=syn["architecture"],
    )  # fmt: skip


def nvidia_state(fixture: dict, name: str) -> dict[str, torch.Tensor]:
    prefix = f"{name}/state/"
    return {k[len(prefix) :]: torch.from_numpy(v) for k, v in fixture.items() if k.startswith(prefix)}


def build(fixture: dict, name: str) -> Generator:
    G = Generator(our_config(nvidia_kwargs(fixture, name))).eval()
    G.load_state_dict(nvidia_state(fixture, name), strict=True)
    return G


def assert_nvidia_pixels(G: torch.nn.Module, fixture: dict, name: str, tol: float = TOL) -> None:
    z, c = torch.from_numpy(fixture[f"{name}/z"]), torch.from_numpy(fixture[f"{name}/c"])
    for s, (psi, cutoff) in enumerate(zip(fixture["psis"], fixture["cutoffs"])):
        with torch.no_grad():
            ws = G.mapping(z, c, truncation_psi=float(psi), truncation_cutoff=None if cutoff < 0 else int(cutoff))
            img = G.synthesis(ws, noise_mode="const")
        assert (ws - torch.from_numpy(fixture[f"{name}/ws/{s}"])).abs().max() <= tol, f"{name} ws, setting {s}"
        assert (img - torch.from_numpy(fixture[f"{name}/img/{s}"])).abs().max() <= tol, f"{name} images, setting {s}"


def test_fixture_covers_the_architectures(fixture):
    archs = {nvidia_kwargs(fixture, n)["synthesis_kwargs"]["architecture"] for n in NAMES}
    assert archs == {"orig", "skip", "resnet"}
    resnet = nvidia_state(fixture, "resnet")
    assert "synthesis.b8.skip.weight" in resnet and "synthesis.b8.skip.resample_filter" in resnet
    assert "synthesis.b8.torgb.weight" not in resnet and "synthesis.b16.torgb.weight" in resnet


@pytest.mark.parametrize("form", ["nvidia", "frozen"])
@pytest.mark.parametrize("name", NAMES)
def test_nvidia_pixels(fixture, ops_impl, name, form):
    G = build(fixture, name)
    assert G.num_ws == 2 * int(np.log2(G.img_resolution)) - 2
    assert_nvidia_pixels(G.freeze() if form == "frozen" else G, fixture, name)


@pytest.mark.parametrize("name", ["orig_cond", "resnet_clamp_cond"])
def test_frozen_fold_choices_and_micro_batches(fixture, name):
    G = build(fixture, name)
    for fold in ("always", "never"):
        assert_nvidia_pixels(G.freeze(fold), fixture, name)


@pytest.mark.parametrize("name", NAMES)
def test_nvidia_pickle(tmp_path, fixture, nvidia_writer, name):  # noqa: F811
    G = build(fixture, name)
    # NVIDIA's class of the resnet shortcut (ours is SkipLayer): the record names what their file holds.
    blocks = [f"b{r}" for r in G.synthesis.block_resolutions if hasattr(getattr(G.synthesis, f"b{r}"), "skip")]
    skips = {f"synthesis.{b}.skip": "Conv2dLayer" for b in blocks}
    assert bool(skips) == (G.config.architecture == "resnet")
    path = nvidia_writer(tmp_path / f"{name}.pkl", G, class_names=skips, init_kwargs=nvidia_kwargs(fixture, name))
    G2 = load_network(path)
    assert G2.config.architecture == G.config.architecture
    assert_nvidia_pixels(G2, fixture, name)


def tf_static_kwargs(kw: dict) -> dict:
    syn = kw["synthesis_kwargs"]
    return {
        "latent_size": kw["z_dim"], "label_size": kw["c_dim"], "dlatent_size": kw["w_dim"],
        "resolution": kw["img_resolution"], "num_channels": kw["img_channels"],
        "mapping_layers": kw["mapping_kwargs"]["num_layers"], "fmap_base": syn["channel_base"] // 2,
        "fmap_max": syn["channel_max"], "architecture": syn["architecture"], "conv_clamp": syn["conv_clamp"],
        "randomize_noise": False,
    }  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_tf_pickle(tmp_path, fixture, name):
    G = build(fixture, name)
    Gs = tf_generator(G, "Gs", tf_static_kwargs(nvidia_kwargs(fixture, name)))
    names = flat_variables(Gs)
    arch = G.config.architecture
    assert ("synthesis/8x8/Skip/weight" in names) == (arch == "resnet")
    assert ("synthesis/8x8/ToRGB/weight" in names) == (arch == "skip")
    G2 = load_network(write_tf(tmp_path / f"{name}.pkl", Gs))
    assert G2.config.architecture == arch
    assert_nvidia_pixels(G2, fixture, name, tol=2e-5)  # mod_bias - 1 + 1 in float32: rounding only


def _tf_file(tmp_path, fixture, name, **overrides) -> Path:
    kw = {**tf_static_kwargs(nvidia_kwargs(fixture, name)), **overrides}
    return write_tf(tmp_path / "variant.pkl", tf_generator(build(fixture, name), "Gs", kw))


@pytest.mark.parametrize(
    "name, arch, match",
    [
        ("resnet", "skip", r"architecture 'resnet' \(Skip convolutions\).*static_kwargs says architecture 'skip'"),
        ("resnet", "orig", "architecture 'resnet'"),
        ("orig_cond", "skip", r"architecture 'orig' \(one ToRGB"),
        ("skip_clamp", "resnet", r"architecture 'skip' \(a ToRGB per block\)"),
        ("resnet", "cool", "not one of orig, skip, resnet"),
    ],
)
def test_tf_architecture_must_match_the_variables(tmp_path, fixture, name, arch, match):
    with pytest.raises(NetworkLoadError, match=match):
        load_network(_tf_file(tmp_path, fixture, name, architecture=arch))


def test_tf_missing_skip_weight_is_refused(tmp_path, fixture):
    path = _tf_file(tmp_path, fixture, "resnet")
    Gs = tf_generator(build(fixture, "resnet"), "Gs", tf_static_kwargs(nvidia_kwargs(fixture, "resnet")))
    synth = Gs.components["synthesis"]
    synth.variables = [(n, v) for n, v in synth.variables if n != "16x16/Skip/weight"]
    with pytest.raises(NetworkLoadError, match=r"missing synthesis.b16.skip.weight"):
        load_network(write_tf(path, Gs))


@pytest.mark.parametrize(
    "arch, match", [("skip", r"\(architecture 'skip'\): missing synthesis.b4.torgb"), ("bogus", "'bogus'")]
)
def test_nvidia_architecture_must_match_the_weights(tmp_path, fixture, nvidia_writer, arch, match):  # noqa: F811
    kw = nvidia_kwargs(fixture, "orig_cond")
    kw["synthesis_kwargs"]["architecture"] = arch
    path = nvidia_writer(tmp_path / "bad.pkl", build(fixture, "orig_cond"), init_kwargs=kw)
    with pytest.raises(NetworkLoadError, match=match):
        load_network(path)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="architecture 'bogus' is not supported"):
        GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, architecture="bogus")


@pytest.mark.parametrize("name", ["orig_cond", "resnet_clamp_cond"])
def test_training_mode_gradients_flow(fixture, name):
    """Training's arithmetic (shared-weight convs) gives NVIDIA's pixels and every weight a gradient,
    to second order (path-length regularisation differentiates through the synthesis twice)."""
    G = build(fixture, name).train().requires_grad_(True)
    z, c = torch.from_numpy(fixture[f"{name}/z"]), torch.from_numpy(fixture[f"{name}/c"])
    ws = G.mapping(z, c, update_w_avg=False)
    img = G.synthesis(ws, noise_mode="const")
    assert (img - torch.from_numpy(fixture[f"{name}/img/0"])).abs().max() <= 1e-4
    (grad_ws,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    (img.square().mean() + grad_ws.square().sum()).backward()
    no_grad = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not [n for n in no_grad if n != "mapping.w_avg"], no_grad
    if G.config.architecture == "resnet":
        assert G.synthesis.b8.skip.weight.grad.abs().sum() > 0


def test_layer_swapping_needs_the_same_architecture(fixture):
    src, dst = build(fixture, "resnet"), build(fixture, "resnet")
    with torch.no_grad():
        for p in dst.synthesis.b16.parameters():
            p.mul_(0.5)
    blended = layer_swap(src, dst, [4, 8])
    assert torch.equal(blended.synthesis.b8.skip.weight, src.synthesis.b8.skip.weight)
    assert torch.equal(blended.synthesis.b16.skip.weight, dst.synthesis.b16.skip.weight)
    cfg = our_config(nvidia_kwargs(fixture, "resnet"))
    orig = Generator(GeneratorConfig.from_dict({**cfg.to_dict(), "architecture": "orig"}))
    with pytest.raises(InputError, match="architecture"):
        check_same_architecture(src, orig)


@pytest.mark.parametrize("name", ["orig_cond", "resnet"])
def test_fine_tuning_trains_the_architecture(tmp_path, fixture, name):
    """`train --resume` from an orig / resnet network: the file's architecture, a step changes every block."""
    from PIL import Image

    from stylegen import save_network
    from stylegen.training.config import TrainConfig
    from stylegen.training.distributed import Dist
    from stylegen.training.loop import setup, train_step

    G = build(fixture, name)
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.RandomState(0)
    for i in range(8):
        Image.fromarray(rng.randint(0, 255, (16, 16, 3), dtype=np.uint8)).save(data / f"{i}.png")
    if G.c_dim:
        (data / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", i % G.c_dim] for i in range(8)]}))
    save_network(tmp_path / "start.pkl", G=G, G_ema=G)
    cfg = TrainConfig(
        data=str(data), outdir=str(tmp_path / "run"), preset="cpu32", batch=4, kimg=0.004, aug="none", grid=2,
        snap=1, resume=str(tmp_path / "start.pkl"), cond=bool(G.c_dim),
    )  # fmt: skip
    st = setup(cfg, Dist(0, 1, torch.device("cpu")))
    assert st.G.config.architecture == G.config.architecture
    before = {k: v.clone() for k, v in st.G.state_dict().items()}
    train_step(st)
    after = st.G.state_dict()
    for r in (8, 16):
        assert not torch.equal(after[f"synthesis.b{r}.conv1.weight"], before[f"synthesis.b{r}.conv1.weight"])
    if name == "resnet":
        assert not torch.equal(after["synthesis.b8.skip.weight"], before["synthesis.b8.skip.weight"])
