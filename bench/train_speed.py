"""Training speed per iteration, side by side with NVIDIA's training step on the same weights.

    python bench/train_speed.py --nvidia-repo DIR [--res 32] [--batch 8] [--reps 3] [--impls ref,cpu]
        [--out docs/benchmarks.md]

Config (NVIDIA's 'auto' comparison point, fp32): channel_base 16384, channel_max 512, 2 mapping
layers, resnet D with minibatch std group 4, style mixing 0.9, path length (weight 2) every 4
and R1 every 16 minibatches, Adam (0, 0.99) with the lazy-regularisation lr/beta correction,
no augmentation, random reals (no data loading on either side). NVIDIA's side is their own
per-phase work from training_loop.py: zero_grad, `training.loss.StyleGAN2Loss.accumulate_gradients`
with their networks, nan_to_num of the grads, their optimizer step, then the G_ema update.
Ours is the same sequence through stylegen.training.losses (as stylegen.training.loop.train_step
runs it). Both start from NVIDIA's initialisation (copied into ours; G and D outputs checked to
agree within 1e-3); every phase alternates between the sides (A B A B ...), median of --reps.
"amortised" = G main + D main + G reg / 4 + D reg / 16 + G_ema, the cost of an average iteration.
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import _peer
import torch

from stylegen.networks.discriminator import DiscriminatorConfig
from stylegen.networks.generator import GeneratorConfig
from stylegen.training.losses import LossConfig, StyleGAN2Loss

SECTION = "## Training speed"
PL_INTERVAL, R1_INTERVAL = 4, 16
PHASES = ("G main", "G reg", "D main", "D reg", "G_ema")
LR, R1_GAMMA, PL_WEIGHT, MIXING = 0.0025, 1.0, 2.0, 0.9


def adam(module: torch.nn.Module, interval: int) -> torch.optim.Adam:
    """Adam (0, 0.99), lr and beta corrected for lazy regularisation as both training loops do."""
    ratio = interval / (interval + 1)
    return torch.optim.Adam(module.parameters(), lr=LR * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)


def ema_step(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float = 0.999) -> None:
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)


def nvidia_side(nv, G, D, batch: int, res: int) -> dict:
    """Phase name -> zero-argument step, NVIDIA's training_loop per-phase sequence."""
    loss = nv.loss.StyleGAN2Loss(
        "cpu", G.mapping, G.synthesis, D, style_mixing_prob=MIXING, r1_gamma=R1_GAMMA, pl_weight=PL_WEIGHT
    )
    G_ema = copy.deepcopy(G).eval()
    opts = {"G": adam(G, PL_INTERVAL), "D": adam(D, R1_INTERVAL)}
    c = torch.zeros([batch, 0])
    real = torch.rand([batch, 3, res, res]) * 2 - 1

    def phase(name: str, module: torch.nn.Module, opt: torch.optim.Optimizer, gain: int):
        def step():
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            z = torch.randn([batch, G.z_dim])
            loss.accumulate_gradients(phase=name, real_img=real, real_c=c, gen_z=z, gen_c=c, sync=True, gain=gain)
            module.requires_grad_(False)
            for param in module.parameters():
                if param.grad is not None:
                    nv.misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
            opt.step()

        return step

    return {
        "G main": phase("Gmain", G, opts["G"], 1),
        "G reg": phase("Greg", G, opts["G"], PL_INTERVAL),
        "D main": phase("Dmain", D, opts["D"], 1),
        "D reg": phase("Dreg", D, opts["D"], R1_INTERVAL),
        "G_ema": lambda: ema_step(G_ema, G),
    }


def our_side(G, D, batch: int, res: int, impl: str) -> dict:
    """Phase name -> zero-argument step, the sequence of stylegen.training.loop.train_step."""
    loss = StyleGAN2Loss(G, D, LossConfig(r1_gamma=R1_GAMMA, pl_weight=PL_WEIGHT, style_mixing_prob=MIXING))
    G_ema = copy.deepcopy(G).eval()
    opts = {"G": adam(G, PL_INTERVAL), "D": adam(D, R1_INTERVAL)}
    real = torch.rand([batch, 3, res, res]) * 2 - 1

    def phase(module: torch.nn.Module, opt: torch.optim.Optimizer, run, after=None):
        def step():
            os.environ["STYLEGEN_OPS"] = impl
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            stats = run(torch.randn([batch, G.z_dim]))
            for p in module.parameters():  # as loop._reduce_grads on one process
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            module.requires_grad_(False)
            opt.step()
            if after is not None:
                after(stats)

        return step

    def update_w_avg(stats):
        w_avg = G.mapping.w_avg
        w_avg.copy_(stats["w_mean"].view_as(w_avg).lerp(w_avg, G.config.w_avg_beta))

    def update_pl_mean(stats):
        loss.pl_mean.copy_(loss.pl_mean.lerp(stats["pl_len_mean"].squeeze(), loss.cfg.pl_decay))

    return {
        "G main": phase(G, opts["G"], lambda z: loss.g_main(z, None, 1.0), update_w_avg),
        "G reg": phase(G, opts["G"], lambda z: loss.g_reg(z, None, float(PL_INTERVAL)), update_pl_mean),
        "D main": phase(D, opts["D"], lambda z: loss.d_main(real, None, z, None, 1.0)),
        "D reg": phase(D, opts["D"], lambda z: loss.d_reg(real, None, float(R1_INTERVAL))),
        "G_ema": lambda: ema_step(G_ema, G),
    }


def build_sides(nv, res: int, batch: int, impls: list[str]) -> dict:
    """Side name -> phases, every side starting from the same (NVIDIA-initialised) weights."""
    g_cfg = GeneratorConfig(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3, mapping_layers=2, channel_base=16384
    )
    d_cfg = DiscriminatorConfig(c_dim=0, img_resolution=res, img_channels=3, channel_base=16384)
    G_nv, G = _peer.generator_pair(nv, g_cfg)
    D_nv, D = _peer.discriminator_pair(nv, d_cfg)
    z, img = torch.randn([batch, 512]), torch.rand([batch, 3, res, res]) * 2 - 1
    with torch.no_grad():
        c = torch.zeros([batch, 0])
        _peer.check_close("G (noise const)", G_nv(z, c, noise_mode="const"), G(z, noise_mode="const"))
        _peer.check_close("D", D_nv(img, c), D(img))
    sides = {
        "nvidia": nvidia_side(nv, G_nv.train().requires_grad_(False), D_nv.train().requires_grad_(False), batch, res)
    }
    for impl in impls:
        G_i, D_i = copy.deepcopy(G).train().requires_grad_(False), copy.deepcopy(D).train().requires_grad_(False)
        sides[f"ours|{impl}"] = our_side(G_i, D_i, batch, res, impl)
    return sides


def measure(nv, res: int, batch: int, impls: list[str], reps: int) -> dict:
    """Side -> phase -> median seconds; each phase alternates over the sides."""
    sides = build_sides(nv, res, batch, impls)
    out: dict = {side: {} for side in sides}
    for name in PHASES:
        times = _peer.alternate({side: ph[name] for side, ph in sides.items()}, reps)
        for side, ts in times.items():
            out[side][name] = _peer.median(ts)
        print(name, " ".join(f"{s}: {out[s][name]:.3f} s" for s in sides), flush=True)
    return out


def amortised(p: dict) -> float:
    return p["G main"] + p["D main"] + p["G reg"] / PL_INTERVAL + p["D reg"] / R1_INTERVAL + p["G_ema"]


def table(results: dict, args, load_before: float) -> str:
    lines = [
        SECTION,
        "",
        f"`{_peer.command_line('bench/train_speed.py')}`",
        "",
        f"{_peer.machine_line()}. {_peer.load_note(load_before)}",
        "",
        f"Batch {args.batch}, channel_base 16384, channel_max 512, 2 mapping layers, fp32, no augmentation, "
        f"random reals; median of {args.reps} alternating runs per phase. `nvidia` = NVIDIA's "
        "stylegan2-ada-pytorch training step (their `StyleGAN2Loss`, networks and optimizer sequence) imported "
        "from `--nvidia-repo` (their CPU ops = their reference path); `ours` = stylegen.training.losses with "
        "our ops implementation `ref` or `cpu`. Each phase includes zero_grad, backward and the Adam step. "
        f"amortised = G main + D main + G reg / {PL_INTERVAL} + D reg / {R1_INTERVAL} + G_ema.",
        "",
        "| res | side | ops | G main s | G reg s | D main s | D reg s | G_ema s | full iter s | amortised s | amortised vs nvidia |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for res, sides in results.items():
        nv_am = amortised(sides["nvidia"])
        for side, p in sides.items():
            name, _, impl = side.partition("|")
            cells = " | ".join(f"{p[k]:.3f}" if k == "G_ema" else f"{p[k]:.2f}" for k in PHASES)
            lines.append(
                f"| {res} | {name} | {impl or 'ref (theirs)'} | {cells} | {sum(p.values()):.2f} | "
                f"{amortised(p):.2f} | {amortised(p) / nv_am:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _peer.add_nvidia_option(ap)
    ap.add_argument("--res", type=int, nargs="+", default=[32], help="resolutions (powers of two >= 8)")
    ap.add_argument("--impls", default="ref,cpu", help="our ops implementations, comma-separated")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per phase and side (median)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", type=Path, help="markdown file whose '## Training speed' section is replaced")
    args = ap.parse_args()
    if args.reps < 1 or args.batch < 2:
        _peer.fail(f"--reps {args.reps} / --batch {args.batch}: need reps >= 1 and batch >= 2 (path length halves it)")
    load_before = _peer.load_average()
    nv = _peer.import_nvidia(args.nvidia_repo)
    impls = args.impls.split(",")
    results = {res: measure(nv, res, args.batch, impls, args.reps) for res in args.res}
    section = table(results, args, load_before)
    print(section)
    if args.out:
        _peer.write_section(args.out, section)


if __name__ == "__main__":
    main()
