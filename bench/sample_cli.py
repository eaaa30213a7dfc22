"""Wall time of the main job: `stylegen sample --seeds 0-99` on the bundled network, fresh processes.

    python bench/sample_cli.py [--network people] [--seeds 0-99] [--reps 5] [--grid]

Each repeat starts a new `stylegen` process (interpreter start, torch import, network load,
the cached CPU plugin, 100 PNGs written), as a user runs it; the median and the spread are
printed. The plugin is built once before timing (a first build takes about a minute and is
cached). The issue-5 target: 100 images at 64x64 in under 20 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def stylegen_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("stylegen")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stylegen.cli.main"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default=None, help="file or bundled name (default: the bundled default)")
    ap.add_argument("--seeds", default="0-99")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--grid", action="store_true")
    args = ap.parse_args()

    from stylegen.cuda_ops import load_plugin

    load_plugin("cpu")  # a first build happens here, outside the timed runs
    cmd = [*stylegen_cmd(), "sample", "--seeds", args.seeds]
    if args.network:
        cmd += ["--network", args.network]
    if args.grid:
        cmd.append("--grid")
    times, counts = [], []
    for _ in range(args.reps):
        outdir = Path(tempfile.mkdtemp(prefix="stylegen-bench-"))
        try:
            t0 = time.perf_counter()
            subprocess.run([*cmd, "--outdir", str(outdir)], check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
            counts.append(len(list(outdir.glob("seed*.png"))))
        finally:
            shutil.rmtree(outdir)
    print(" ".join(cmd), "--outdir TMP")
    print(f"PNGs written per run: {sorted(set(counts))}")
    print("wall s per run:", " ".join(f"{t:.2f}" for t in times))
    print(f"median {statistics.median(times):.2f} s, min {min(times):.2f}, max {max(times):.2f} ({args.reps} runs)")


if __name__ == "__main__":
    main()
