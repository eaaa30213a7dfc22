"""Write tests/data/nvidia_sg3_configs.npz: NVIDIA's StyleGAN3 pickles of uncommon settings, and their pixels.

    .venv/bin/python scripts/make_sg3_configs_fixture.py --nvidia-repo /work/nvidia-sg3 \
        --out tests/data/nvidia_sg3_configs.npz

The shared fixtures (../shared/compat/sg3t_small.pkl, sg3r_small.pkl) hold train.py's default
layouts. These networks take the Generator arguments those leave at their defaults: conditional,
one and four image channels, 1024 px, other layer counts, critical layers, first cutoff and stop
band, margin, output scale, filter taps, leaky-ReLU up-sampling, radial filters in -T, an active
conv_clamp (`check_coverage` asserts that their layers took them). Their
`training.networks_stylegan3.Generator` is imported from a stylegan3 checkout (on the CPU their
filtered_lrelu runs its reference path), given random non-zero biases, weights (those initialised
to zero too, such as the input's affine), magnitude EMAs and w_avg, pickled by their persistence
module (module sources included, as in a training snapshot) and run by their code. Two of them
hold what a training snapshot holds: G (G_ema with other random weights) and D (their StyleGAN2
discriminator, randomised too); in the others G is G_ema and D is None. Per network `{name}`:
  `{name}/pickle`  the pickle's bytes, {'G': G, 'G_ema': G_ema, 'D': D, 'augment_pipe': None},
  `{name}/kwargs`  their constructor arguments as JSON (a 0-d unicode array),
  `{name}/z`, `{name}/c`  the inputs ([N, z_dim], [N, c_dim]),
  `{name}/ws/{s}`, `{name}/img/{s}`  G_ema's mapping and synthesis outputs for setting s
  (images subsampled by `{name}/stride` in both axes),
  `{name}/img_G/0`  G's images of setting 0, where G is not G_ema,
  `{name}/img_unclamped/0`  setting 0 with every layer's clamp lifted, for the network with conv_clamp 1,
  `{name}/d_img`, `{name}/d_logits`  D's input and output, where D is stored.
Settings (top-level `psis`, `cutoffs` (-1 = None), `translates`, `rotates`): the input transform
is set as their gen_images.py sets it (the inverse of make_transform(translate, rotate), which is
imported from their gen_images.py). Nothing from our package is used to compute the references.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import _peer  # noqa: E402  (their code's import shims)

PSIS = (1.0, 0.6, 1.0)
CUTOFFS = (-1, 3, -1)
TRANSLATES = ((0.0, 0.0), (0.0, 0.0), (0.3, -0.2))
ROTATES = (0.0, 0.0, 20.0)
BATCH = 2
SMALL = {"z_dim": 16, "w_dim": 16, "channel_base": 1024, "channel_max": 8}
NETWORKS = {  # name: (Generator kwargs, stride of the stored images, with a D)
    "t_layout": (
        {**SMALL, "img_resolution": 32, "mapping_kwargs": {"num_layers": 8}, "num_layers": 10, "num_critical": 1,
         "first_cutoff": 3, "first_stopband": 2**2.5, "last_stopband_rel": 2**0.5, "margin_size": 5,
         "output_scale": 0.5, "filter_size": 4, "lrelu_upsampling": 4, "conv_clamp": None},
        1, False,
    ),
    "t_cond_gray_clamp": (
        {**SMALL, "z_dim": 8, "c_dim": 5, "img_resolution": 64, "img_channels": 1, "mapping_kwargs": {"num_layers": 4},
         "channel_base": 512, "conv_clamp": 1.0, "num_fp16_res": 4},
        1, True,
    ),
    "t_radial": (
        {**SMALL, "img_resolution": 32, "use_radial_filters": True, "magnitude_ema_beta": 0.9, "num_layers": 6},
        1, False,
    ),
    "r_rgba_cond": (
        {**SMALL, "w_dim": 32, "c_dim": 3, "img_resolution": 32, "img_channels": 4, "channel_base": 2048,
         "mapping_kwargs": {"num_layers": 1}, "conv_kernel": 1, "use_radial_filters": True},
        1, True,
    ),
    "t_1024": (
        {**SMALL, "z_dim": 8, "w_dim": 8, "img_resolution": 1024, "channel_base": 16384, "channel_max": 4},
        32, False,
    ),
}  # fmt: skip


def randomize(G: torch.nn.Module, seed: int) -> None:
    """Non-zero biases and weights (also those initialised to 0), weights off their initial scale,
    tracked magnitudes and w_avg away from 1 and 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            elif name.endswith("weight"):
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=gen)).add_(0.1 * torch.randn(p.shape, generator=gen))
        for name, b in G.named_buffers():
            if name.endswith("magnitude_ema"):
                b.copy_(torch.rand(b.shape, generator=gen) * 2 + 0.2)
            elif name.endswith("w_avg"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.5)


def unclamped(G: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """Their images with every layer's conv_clamp lifted (shows that the clamp is reached)."""
    layers = [getattr(G.synthesis, name) for name in G.synthesis.layer_names]
    saved = [layer.conv_clamp for layer in layers]
    for layer in layers:
        layer.conv_clamp = None
    try:
        return G.synthesis(ws, noise_mode="const")
    finally:
        for layer, clamp in zip(layers, saved):
            layer.conv_clamp = clamp


def check_coverage(name: str, G: torch.nn.Module, out: dict) -> None:
    """The settings the docstring names reached their layers (not only their kwargs)."""
    layers = [getattr(G.synthesis, n) for n in G.synthesis.layer_names]
    if name == "t_layout":
        assert sum(lay.is_critically_sampled and not lay.is_torgb for lay in layers) == 1 and len(layers) == 11
        assert layers[0].conv_clamp is None and G.synthesis.output_scale == 0.5
        assert G.synthesis.margin_size == 5 and G.synthesis.input.bandwidth == 3
        assert all(lay.up_taps in (1, 4 * lay.up_factor) for lay in layers) and max(lay.up_taps for lay in layers) > 1
        lay = layers[0]  # leaky ReLU at 4x the higher rate
        assert lay.tmp_sampling_rate == 4 * max(lay.in_sampling_rate, lay.out_sampling_rate)
    if name == "t_radial":
        assert layers[0].conv_kernel == 3 and any(layer.down_radial for layer in layers)
    if name == "r_rgba_cond":
        assert layers[0].conv_kernel == 1 and any(layer.down_radial for layer in layers)
    if "img_unclamped/0" in out:
        assert layers[0].conv_clamp == 1.0
        assert np.abs(out["img/0"] - out["img_unclamped/0"]).max() > 1e-2, "the clamp is never reached"
    # the input's affine (initialised to 0) now turns and shifts the input grid per w
    assert G.synthesis.input.affine.weight.abs().min() > 0


def run(G, D, make_transform, stride: int, lift_clamp: bool, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([BATCH, G.z_dim], generator=gen)
    c = torch.eye(G.c_dim)[torch.arange(BATCH) % G.c_dim] if G.c_dim else torch.zeros([BATCH, 0])
    out = {"z": z.numpy(), "c": c.numpy(), "stride": np.array(stride)}
    with torch.no_grad():
        for s, (psi, cutoff, translate, rotate) in enumerate(zip(PSIS, CUTOFFS, TRANSLATES, ROTATES)):
            m = np.linalg.inv(make_transform(translate, rotate))  # as their gen_images.py
            G.synthesis.input.transform.copy_(torch.from_numpy(m))
            ws = G.mapping(z, c, truncation_psi=psi, truncation_cutoff=None if cutoff < 0 else cutoff)
            out[f"ws/{s}"] = ws.numpy()
            out[f"img/{s}"] = G.synthesis(ws, noise_mode="const")[:, :, ::stride, ::stride].numpy()
            if s == 0 and lift_clamp:
                out["img_unclamped/0"] = unclamped(G, ws)[:, :, ::stride, ::stride].numpy()
        G.synthesis.input.transform.copy_(torch.eye(3))
        if D is not None:
            img = torch.randn([BATCH, G.img_channels, G.img_resolution, G.img_resolution], generator=gen)
            out["d_img"] = img.numpy()
            out["d_logits"] = D(img, c).numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvidia-repo", type=Path, required=True, help="a stylegan3 checkout")
    ap.add_argument("--out", type=Path, required=True, help="the .npz to write")
    args = ap.parse_args()
    nv = _peer.import_nvidia_sg3(args.nvidia_repo)
    sg2 = importlib.import_module("training.networks_stylegan2")
    make_transform = importlib.import_module("gen_images").make_transform
    data: dict[str, np.ndarray] = {
        "psis": np.array(PSIS), "cutoffs": np.array(CUTOFFS),
        "translates": np.array(TRANSLATES), "rotates": np.array(ROTATES),
    }  # fmt: skip
    for i, (name, (kwargs, stride, with_d)) in enumerate(NETWORKS.items()):
        kwargs = {"c_dim": 0, "img_channels": 3, **kwargs}
        torch.manual_seed(100 + i)
        G_ema = nv.networks.Generator(**kwargs).eval().requires_grad_(False)
        randomize(G_ema, seed=300 + i)
        G, D = G_ema, None
        if with_d:  # a training snapshot's: G with weights of its own, D
            G = copy.deepcopy(G_ema)
            randomize(G, seed=500 + i)
            D = sg2.Discriminator(
                c_dim=G.c_dim, img_resolution=G.img_resolution, img_channels=G.img_channels,
                channel_base=256, channel_max=8,
            ).eval().requires_grad_(False)  # fmt: skip
            randomize(D, seed=400 + i)
        data[f"{name}/kwargs"] = np.array(json.dumps(kwargs))
        lift_clamp = kwargs.get("conv_clamp", 256) not in (None, 256)  # a clamp other than the default
        out = run(G_ema, D, make_transform, stride, lift_clamp, seed=200 + i)
        if G is not G_ema:
            with torch.no_grad():
                ws = G.mapping(torch.from_numpy(out["z"]), torch.from_numpy(out["c"]))
                out["img_G/0"] = G.synthesis(ws, noise_mode="const")[:, :, ::stride, ::stride].numpy()
        check_coverage(name, G_ema, out)
        for k, v in out.items():
            data[f"{name}/{k}"] = v
        buf = io.BytesIO()
        pickle.dump({"G": G, "G_ema": G_ema, "D": D, "augment_pipe": None}, buf)
        data[f"{name}/pickle"] = np.frombuffer(buf.getvalue(), dtype=np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {len(NETWORKS)} networks)")


if __name__ == "__main__":
    main()
