"""Wall time of the main job: `stylegen sample --seeds 0-99` on the bundled network, fresh processes.

    python bench/sample_cli.py [--nvidia-repo DIR] [--network people] [--seeds 0-99] [--reps 5]
        [--out docs/benchmarks.md]

Each repeat starts a new `stylegen` process (interpreter start, torch import, network load, the
cached CPU plugin, one PNG per seed written), as a user runs it. With --nvidia-repo, the same
network is converted to NVIDIA's pickle format (their persistent Generator holding our weights,
pickled as their training loop does) and their generate.py renders the same seeds in a fresh
process too, alternating with ours; the PNGs of both must agree within 1 grey level. Their
generate.py hard-codes torch.device('cuda'): a shim run in their process maps it to the CPU
(no file of theirs is changed). The issue-5 target: 100 images at 64x64 in under 20 s on 2 cores.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _peer
import numpy as np
import torch
from PIL import Image

SECTION = "## Sampling with the bundled network"

# Run in NVIDIA's process: the requests stub (dnnlib imports it for URLs, unused here) and
# torch.device('cuda') -> cpu, so their unmodified generate.py runs on this CPU-only machine.
GENERATE_SHIM = """
import runpy, sys, types
repo, script = sys.argv[1], sys.argv[1] + '/generate.py'
sys.argv = [script] + sys.argv[2:]
sys.path.insert(0, repo)
try:
    import requests
except ImportError:
    sys.modules['requests'] = types.ModuleType('requests')
import torch
_Device = torch.device
class _CpuDeviceMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, _Device)
    def __call__(cls, *args, **kwargs):
        if args and str(args[0]).startswith('cuda'):
            args = ('cpu',)
        return _Device(*args, **kwargs)
class _CpuDevice(metaclass=_CpuDeviceMeta):
    pass
torch.device = _CpuDevice
runpy.run_path(script, run_name='__main__')
"""


def stylegen_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("stylegen")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stylegen.cli.main"]


def convert_for_nvidia(nv, network: str | None, dst: Path) -> None:
    """Write our network as an NVIDIA pickle: {'G', 'D', 'G_ema'} of their persistent classes."""
    import stylegen
    from stylegen.formats import bundled

    G = stylegen.load_network(bundled.resolve(network or bundled.DEFAULT)).eval()
    G_nv = nv.networks.Generator(**_peer.nvidia_generator_kwargs(G.config))
    G_nv.load_state_dict(G.state_dict(), strict=True)
    G_nv.eval().requires_grad_(False)
    cfg = G.config
    # generate.py only checks that 'D' is a module; a fresh D of the same size stands in.
    D_nv = nv.networks.Discriminator(0, cfg.img_resolution, cfg.img_channels, channel_base=cfg.channel_base)
    z = stylegen.seed_to_z(0, cfg.z_dim)
    with torch.no_grad():
        _peer.check_close("converted network", G_nv(z, torch.zeros([1, 0]), noise_mode="const"), G(z))
    with open(dst, "wb") as f:
        pickle.dump({"G": G_nv, "D": D_nv.requires_grad_(False), "G_ema": G_nv, "augment_pipe": None}, f)


def timed_run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        _peer.fail(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}): {tail[0]}")
    return sec


def max_png_diff(a: Path, b: Path) -> int:
    """Largest per-pixel difference (grey levels) between same-named PNGs of two directories."""
    names = sorted(p.name for p in a.glob("seed*.png"))
    if not names or names != sorted(p.name for p in b.glob("seed*.png")):
        _peer.fail(f"PNG sets differ: {len(names)} in {a}, {len(list(b.glob('seed*.png')))} in {b}")
    load = lambda p: np.asarray(Image.open(p).convert("RGB"), dtype=np.int16)  # noqa: E731
    return max(int(np.abs(load(a / n) - load(b / n)).max()) for n in names)


def run(args, tmp: Path) -> dict:
    ours = [*stylegen_cmd(), "sample", "--seeds", args.seeds]
    if args.network:
        ours += ["--network", args.network]
    sides = {"ours": lambda out: [*ours, "--outdir", str(out)]}
    if args.nvidia_repo is not None:
        nv = _peer.import_nvidia(args.nvidia_repo)
        pkl = tmp / "network-nvidia.pkl"
        convert_for_nvidia(nv, args.network, pkl)
        theirs = [sys.executable, "-c", GENERATE_SHIM, str(nv.repo), "--network", str(pkl), "--seeds", args.seeds]
        sides["nvidia"] = lambda out: [*theirs, "--outdir", str(out)]
    times: dict = {k: [] for k in sides}
    diff = None
    for rep in range(args.reps):
        outs = {k: tmp / f"{k}-{rep}" for k in sides}
        for k, make in sides.items():  # alternating: ours, theirs, ours, theirs ...
            times[k].append(timed_run(make(outs[k])))
        if "nvidia" in sides:
            d = max_png_diff(outs["ours"], outs["nvidia"])
            diff = d if diff is None else max(diff, d)
            if d > 1:
                _peer.fail(f"our PNGs differ from NVIDIA generate.py's by {d} grey levels (> 1)")
        for out in outs.values():
            shutil.rmtree(out)
        print(" ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    shown = ["stylegen", *ours[len(stylegen_cmd()) :]]  # the command as a user types it
    return {"times": times, "diff": diff, "cmd": " ".join(shown) + " --outdir TMP"}


def table(res: dict, args, load_before: float) -> str:
    times = res["times"]
    peer = (
        f"`nvidia` = NVIDIA's generate.py (from `--nvidia-repo`, unmodified, run through a shim that maps "
        f"torch.device('cuda') to the CPU) on the same network converted to their pickle format, "
        f"alternating with ours; largest pixel difference between the two sides' PNGs: {res['diff']} grey level(s)."
        if "nvidia" in times
        else "No peer: run without --nvidia-repo, so these are our numbers only."
    )
    lines = [
        SECTION,
        "",
        f"`{_peer.command_line('bench/sample_cli.py')}`",
        "",
        f"{_peer.machine_line()}. {_peer.load_note(load_before)}",
        "",
        f"Each run is a fresh process, as a user runs it: `{res['cmd']}` (interpreter start, torch import, "
        f"network load, the already built CPU plugin, one PNG per seed written). {peer} Target: under 20 s.",
        "",
        "| side | " + " | ".join(str(i + 1) for i in range(args.reps)) + " | median |",
        "| --- | " + " | ".join("---" for _ in range(args.reps + 1)) + " |",
    ]
    for side, ts in times.items():
        cells = " | ".join(f"{t:.2f}" for t in ts)
        lines.append(f"| {side} wall s | {cells} | **{_peer.median(ts):.2f}** |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _peer.add_nvidia_option(ap, required=False)
    ap.add_argument("--network", default=None, help="file or bundled name (default: the bundled default)")
    ap.add_argument("--seeds", default="0-99")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, help="markdown file whose sampling section is replaced")
    args = ap.parse_args()
    if args.reps < 1:
        _peer.fail(f"--reps {args.reps}: must be >= 1")
    from stylegen.cuda_ops import load_plugin

    load_plugin("cpu")  # a first build happens here, outside the timed runs
    load_before = _peer.load_average()
    with tempfile.TemporaryDirectory(prefix="stylegen-bench-") as tmp:
        res = run(args, Path(tmp))
    text = table(res, args, load_before)
    print(text)
    if args.out:
        _peer.write_section(args.out, text)


if __name__ == "__main__":
    main()
