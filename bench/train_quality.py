"""Real-data training check: Fashion-MNIST (32x32, 1 channel) on the CPU for a fixed wall-clock budget.

    bash bench/train_quality.sh [--minutes 30] [--work /tmp/sg_fmnist] [--out docs/benchmarks.md]

Steps: (1) the 60k training photos padded to 32x32 into a dataset zip; (2) a small CNN trained on
Fashion-MNIST's labels, whose 128-d penultimate features define the metric; (3) `stylegen train`
for the budget (killed at the deadline: snapshots are atomic); (4) for every snapshot, the
Frechet distance between 10k G_ema samples and the 10k test photos in that feature space.

This is NOT Inception FID: the numbers are comparable only with each other (same classifier,
same seed). Writes a curve PNG, a fakes grid PNG and a '## Training quality' section.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageDraw

from stylegen import load_network
from stylegen.formats.images import make_grid, save_png, to_numpy_images
from stylegen.metrics.frechet import feature_stats, frechet_distance

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def read_idx(name: str, offset: int) -> np.ndarray:
    with gzip.open(FMNIST / name) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 32, 32] (padded by 2) and labels [N]."""
    imgs = read_idx(f"{split}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    return np.pad(imgs, ((0, 0), (2, 2), (2, 2))), read_idx(f"{split}-labels-idx1-ubyte.gz", 8).astype(np.int64)


def write_zip(images: np.ndarray, path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for i, im in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="png")
            zf.writestr(f"{i // 1000:05d}/img{i:08d}.png", buf.getvalue())


class Classifier(nn.Module):
    """Small CNN; features() is the 128-d penultimate layer."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.c3, self.fc, self.out = nn.Conv2d(64, 64, 3, padding=1), nn.Linear(64 * 4 * 4, 128), nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.c1, self.c2, self.c3):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


def to_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)


def train_classifier(work: Path) -> Classifier:
    path = work / "classifier.pt"
    net = Classifier()
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    torch.manual_seed(0)
    x, y = load_split("train")
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _epoch in range(3):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            idx = perm[i : i + 256].numpy()
            loss = F.cross_entropy(net(to_input(x[idx])), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    xt, yt = load_split("t10k")
    with torch.no_grad():
        acc = (net.eval()(to_input(xt)).argmax(1).numpy() == yt).mean()
    print(f"classifier test accuracy {acc:.3f}", flush=True)
    torch.save(net.state_dict(), path)
    return net


@torch.no_grad()
def features(net: Classifier, images: torch.Tensor) -> np.ndarray:
    return torch.cat([net.features(images[i : i + 1000]) for i in range(0, len(images), 1000)]).numpy()


@torch.no_grad()
def generate(G, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=gen)
    return torch.cat([G(z[i : i + 250], noise_mode="const") for i in range(0, n, 250)]).clamp(-1, 1)


def run_training(work: Path, minutes: float, extra: list[str]) -> Path:
    run = work / "run"
    cmd = [
        sys.executable,
        "-m",
        "stylegen.cli.main",
        "train",
        "--data",
        str(work / "fmnist32.zip"),
        "--outdir",
        str(run),
        "--kimg",
        "100000",
        "--keep",
        "0",
        "--quiet",
        *extra,
    ]
    print("running:", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd)
    try:
        proc.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return run


def plot(points: list[tuple[float, float]], path: Path) -> None:
    """A plain line chart (minutes vs FD) drawn with Pillow."""
    w, h, m = 640, 400, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x1, y1 = max(xs) or 1, max(ys) * 1.05 or 1
    sx = lambda v: m + (w - 2 * m) * v / x1  # noqa: E731
    sy = lambda v: h - m - (h - 2 * m) * v / y1  # noqa: E731
    d.line([(m, m), (m, h - m), (w - m, h - m)], fill="black")
    d.line([(sx(x), sy(y)) for x, y in points], fill="blue", width=2)
    for x, y in points:
        d.ellipse([sx(x) - 3, sy(y) - 3, sx(x) + 3, sy(y) + 3], fill="blue")
    d.text((m, 10), "Frechet distance (classifier features) vs training minutes, Fashion-MNIST 32x32", fill="black")
    d.text((w - m - 40, h - m + 10), f"{x1:.0f} min", fill="black")
    d.text((5, m - 5), f"{y1:.1f}", fill="black")
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--work", default="/tmp/sg_fmnist")
    ap.add_argument("--out", help="markdown file whose '## Training quality' section is replaced")
    ap.add_argument("--img-dir", default="docs/img")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("train_args", nargs="*", help="extra `stylegen train` options (after --)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "fmnist32.zip").exists():
        write_zip(load_split("train")[0], work / "fmnist32.zip")
    net = train_classifier(work)
    real_mu, real_sigma = feature_stats(features(net, to_input(load_split("t10k")[0])))
    train_sub = load_split("train")[0][: args.samples]
    real_fd = frechet_distance(*feature_stats(features(net, to_input(train_sub))), real_mu, real_sigma)
    print(f"real vs real (train subset vs test): FD {real_fd:.3f}", flush=True)
    run = run_training(work, args.minutes, args.train_args or ["--cfg", "cpu32", "--snap", "2"])
    stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    t0 = json.loads((run / "config.json").read_text())["start_time"]
    rows = []
    for snap in sorted(run.glob("network-snapshot-*.pkl")):
        kimg = float(snap.stem.split("-")[-1])
        t = next((s["time"] for s in stats if abs(s["kimg"] - kimg) < 1e-6), None)
        G = load_network(snap)
        fake = generate(G, args.samples)
        fd = frechet_distance(*feature_stats(features(net, fake)), real_mu, real_sigma)
        rows.append(((t - t0) / 60 if t else float("nan"), kimg, fd))
        print(f"kimg {kimg:8.3f}  minutes {rows[-1][0]:6.1f}  FD {fd:8.3f}", flush=True)
    img_dir = Path(args.img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    plot([(m, fd) for m, _, fd in rows], img_dir / "fmnist_fd_curve.png")
    last = load_network(sorted(run.glob("network-snapshot-*.pkl"))[-1])
    save_png(img_dir / "fmnist_fakes.png", make_grid(list(to_numpy_images(generate(last, 64, seed=1))), cols=8))
    section = report(rows, args, real_fd)
    print(section)
    if args.out:
        from train_speed import write_section

        write_section(args.out, section)


def report(rows, args, real_fd: float) -> str:
    lines = [
        "## Training quality (Fashion-MNIST, CPU)",
        "",
        f"`bash bench/train_quality.sh --minutes {args.minutes:g}` — `stylegen train "
        f"{' '.join(args.train_args or ['--cfg', 'cpu32', '--snap', '2'])}` on the 60k training photos padded to 32x32, "
        f"2 CPU cores, killed after {args.minutes:g} minutes. Metric: Frechet distance between {args.samples} G_ema "
        "samples and the 10k test photos in the 128-d feature space of a small CNN trained on Fashion-MNIST's labels "
        "(**not Inception FID**; comparable only within this table). For scale, "
        f"{args.samples} real training photos vs the test photos: FD {real_fd:.2f}.",
        "",
        "| minutes | kimg | FD |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {m:.1f} | {k:.1f} | {fd:.2f} |" for m, k, fd in rows]
    lines += ["", "![FD curve](img/fmnist_fd_curve.png) ![fakes](img/fmnist_fakes.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
