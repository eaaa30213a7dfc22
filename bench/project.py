"""Projection of generated images back into their network: PSNR, perceptual distance, time.

    python bench/project.py [--network people] [--seeds 0-4] [--steps 500] [--distance offline] [--w-plus]
        [--out docs/benchmarks.md]

For each seed: the network's image of that seed (noise 'const', as `stylegen sample` writes it)
is the target, saved as a PNG and read back like `stylegen project --target` does; then the
projection runs `--steps` steps from w_avg with fresh noise maps. Reports per seed and the median:
PSNR at the start and the end, the perceptual distance at the start and the end, PSNR of ws.npz
re-rendered with the network's own noise, and wall time (w_avg estimation included). The
issue-6 target: PSNR >= 25 dB after 500 steps at 64x64 in under 5 minutes on 2 CPU cores.
No peer: NVIDIA's projector.py needs the VGG16 LPIPS weights, which cannot be downloaded here,
so the table holds our numbers only and says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _peer
import torch

import stylegen
from stylegen.cli.common import parse_seeds
from stylegen.editing import projection
from stylegen.formats import bundled
from stylegen.formats.images import save_png, to_numpy_images
from stylegen.metrics import perceptual

SECTION = "## Projection (issue 6)"


def project_seeds(G, dist, cfg: projection.ProjectConfig, seeds: list[int]) -> list[str]:
    """One markdown row per seed and a median row; progress is printed as rows complete."""
    lines, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            with torch.inference_mode():
                img = to_numpy_images(G(stylegen.seed_to_z(seed, G.z_dim), noise_mode="const"))[0]
            path = Path(tmp) / f"seed{seed:04d}.png"
            save_png(path, img)
            target = projection.load_target(path, G.img_resolution, G.img_channels)
            t0 = time.perf_counter()
            r = projection.project(G, target, dist, cfg)
            sec = time.perf_counter() - t0
            rows.append((r.psnr, r.distance, sec))
            lines.append(
                f"| {seed} | {r.psnr_start:.2f} | {r.psnr:.2f} | {r.psnr_stored_noise:.2f} | "
                f"{r.distance_start:.4f} | {r.distance:.4f} | {sec:.1f} |"
            )
            print(lines[-1], flush=True)
    med = [statistics.median(col) for col in zip(*rows)]
    lines.append(f"| median | | **{med[0]:.2f}** | | | {med[1]:.4f} | **{med[2]:.1f}** |")
    print(lines[-1])
    print(f"min PSNR {min(r[0] for r in rows):.2f} dB, max time {max(r[2] for r in rows):.1f} s", file=sys.stderr)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="people", help="file or bundled name")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--distance", default="offline", choices=["lpips", "offline"])
    ap.add_argument("--vgg", default=None)
    ap.add_argument("--w-plus", action="store_true")
    ap.add_argument("--out", type=Path, help="markdown file whose projection section is replaced")
    args = ap.parse_args()

    load_before = _peer.load_average()
    G = stylegen.load_network(bundled.resolve(args.network)).eval()
    dist = perceptual.load_distance(args.distance, args.vgg)
    cfg = projection.ProjectConfig(num_steps=args.steps, w_plus=args.w_plus)
    head = [
        SECTION,
        "",
        f"`{_peer.command_line('bench/project.py')}`",
        "",
        f"{_peer.machine_line()}. {_peer.load_note(load_before)}",
        "",
        f"Network {args.network} ({G.img_resolution}x{G.img_resolution}), distance {dist.name}, {args.steps} steps, "
        f"{'W+' if args.w_plus else 'W'}. Ours only, no peer: NVIDIA's projector.py needs the VGG16 LPIPS "
        "weights, which cannot be downloaded here.",
        "",
        "| seed | PSNR start dB | PSNR end dB | PSNR ws.npz dB | distance start | distance end | time s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(head))
    text = "\n".join(head + project_seeds(G, dist, cfg, parse_seeds(args.seeds))) + "\n"
    if args.out:
        _peer.write_section(args.out, text)


if __name__ == "__main__":
    main()
