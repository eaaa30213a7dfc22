"""Write tests/data/nvidia_arch_small.npz: tiny 'orig' / 'skip' / 'resnet' generators run by NVIDIA's code.

    .venv/bin/python scripts/make_arch_fixture.py --nvidia-repo /work/nvidia-sg2ada \
        --out tests/data/nvidia_arch_small.npz

Imports `training.networks.Generator` from a stylegan2-ada-pytorch checkout (on the CPU their custom
ops fall back to their reference code), builds a few tiny networks with random non-zero weights
(noise strengths, biases, w_avg), and stores, per network `{name}`:
  `{name}/kwargs`  their constructor arguments as JSON (a 0-d unicode array),
  `{name}/state/{param}`  every state-dict tensor, with NVIDIA's names,
  `{name}/z`, `{name}/c`  the inputs ([N, z_dim], [N, c_dim]),
  `{name}/ws/{s}`, `{name}/img/{s}`  their mapping and synthesis outputs for setting s
  (noise_mode 'const', eval mode), and the top-level `psis` / `cutoffs` (-1 = None) of the settings.
Nothing from our package is used to compute the references.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import torch

PSIS = (1.0, 0.6)
CUTOFFS = (-1, 2)
BATCH = 2
# name: (architecture, conv_clamp, c_dim, img_resolution, channel_base, channel_max, img_channels)
NETWORKS = {
    "orig_cond": ("orig", None, 4, 16, 64, 16, 3),
    "skip_clamp": ("skip", 0.5, 0, 16, 64, 16, 3),
    "resnet": ("resnet", None, 0, 16, 64, 16, 3),
    "resnet_clamp_cond": ("resnet", 0.5, 4, 16, 64, 16, 3),
    "resnet_32_gray": ("resnet", 0.5, 0, 32, 64, 16, 1),
}


def import_nvidia(repo: Path) -> types.ModuleType:
    """Their `training.networks`, imported from `repo` (requests stubbed: only used for URLs)."""
    try:
        importlib.import_module("requests")
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    warnings.filterwarnings("ignore", message=r".*conv2d_gradfix.*")
    sys.path.insert(0, str(repo.resolve()))
    return importlib.import_module("training.networks")


def build(networks: types.ModuleType, spec: tuple, seed: int) -> tuple[torch.nn.Module, dict]:
    """Their Generator for spec with random non-zero weights; (G, constructor kwargs)."""
    arch, clamp, c_dim, res, base, cmax, img_channels = spec
    kwargs = {
        "z_dim": 16, "c_dim": c_dim, "w_dim": 16, "img_resolution": res, "img_channels": img_channels,
        "mapping_kwargs": {"num_layers": 2},
        "synthesis_kwargs": {
            "channel_base": base, "channel_max": cmax, "architecture": arch, "conv_clamp": clamp, "num_fp16_res": 0,
        },
    }  # fmt: skip
    torch.manual_seed(seed)
    G = networks.Generator(**kwargs).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.copy_(torch.randn([]) * 0.3)
            elif name.endswith("affine.bias"):
                p.copy_(1 + torch.randn_like(p) * 0.2)
            elif name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.2)
            else:
                p.copy_(torch.randn_like(p))
        G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg) * 0.3)
    return G, kwargs


def run(G: torch.nn.Module, seed: int) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([BATCH, G.z_dim], generator=gen)
    c = torch.eye(G.c_dim)[torch.arange(BATCH) % G.c_dim] if G.c_dim else torch.zeros([BATCH, 0])
    out = {"z": z.numpy(), "c": c.numpy()}
    with torch.no_grad():
        for s, (psi, cutoff) in enumerate(zip(PSIS, CUTOFFS)):
            ws = G.mapping(z, c, truncation_psi=psi, truncation_cutoff=None if cutoff < 0 else cutoff)
            out[f"ws/{s}"] = ws.numpy()
            out[f"img/{s}"] = G.synthesis(ws, noise_mode="const").numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvidia-repo", type=Path, required=True, help="a stylegan2-ada-pytorch checkout")
    ap.add_argument("--out", type=Path, required=True, help="the .npz to write")
    args = ap.parse_args()
    networks = import_nvidia(args.nvidia_repo)
    data: dict[str, np.ndarray] = {"psis": np.array(PSIS), "cutoffs": np.array(CUTOFFS)}
    for i, (name, spec) in enumerate(NETWORKS.items()):
        G, kwargs = build(networks, spec, seed=100 + i)
        data[f"{name}/kwargs"] = np.array(json.dumps(kwargs))
        for k, t in G.state_dict().items():
            data[f"{name}/state/{k}"] = t.numpy()
        for k, v in run(G, seed=200 + i).items():
            data[f"{name}/{k}"] = v
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {len(NETWORKS)} networks)")


if __name__ == "__main__":
    main()
