"""Copy G_ema of a training snapshot into the package as a bundled network, with provenance.

    python scripts/export_bundled.py RUN/network-snapshot-000200.000.pkl people \\
        --command "stylegen train --data ... (the exact command)" [--parent people]

Writes stylegen/models/<file of NAME in stylegen.formats.bundled.BUNDLED>: only G_ema (float32, no D,
no optimizer state), plus an 'extra' record: model name, kimg, the run's training options
(config.json beside the snapshot), the dataset's provenance summary (the zip's
provenance.json: font sha256, Debian package version, licence) and the licence of the weights.
`stylegen info people` prints it. Prints the file's size and sha256 for docs/models.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

import stylegen
from stylegen.formats import bundled

WEIGHTS_LICENCE = (
    "trained on images rendered from Noto Color Emoji (Copyright Google Inc., SIL Open Font "
    "License 1.1); see docs/models.md"
)


def dataset_summary(zip_path: str) -> dict:
    """The parts of the zip's provenance.json that identify the data (not the per-image list)."""
    with zipfile.ZipFile(zip_path) as z:
        prov = json.loads(z.read("provenance.json"))
    return {
        "set": prov["set"],
        "images": prov["images"],
        "resolution": prov["resolution"],
        "font_sha256": prov["font"]["sha256"],
        "font_package": f"{prov['font']['package']} {prov['font']['package_version']}",
        "font_license": prov["font"]["license"],
        "renderer": prov["renderer"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshot", help="training snapshot (network-snapshot-*.pkl) of a run directory")
    ap.add_argument("name", choices=bundled.names(), help="bundled name to write")
    ap.add_argument("--command", required=True, help="the exact training command(s), recorded verbatim")
    ap.add_argument("--parent", choices=bundled.names(), help="bundled name this network was fine-tuned from")
    ap.add_argument("--data", help="the training zip (default: the path in the run's config.json)")
    ap.add_argument("--models-dir", default=str(bundled.MODELS_DIR), help="where to write (default: the package)")
    args = ap.parse_args(argv)

    snap = stylegen.load_snapshot(args.snapshot)
    G = stylegen.load_network(args.snapshot, which="G_ema")
    run_dir = Path(args.snapshot).resolve().parent
    config = json.loads((run_dir / "config.json").read_text())
    training = snap.get("training") or {}
    if "kimg" not in training:
        ap.error(f"{args.snapshot} is not a training snapshot (no kimg counter)")
    extra = {
        "model": args.name,
        "description": bundled.BUNDLED[args.name][1],
        "kimg": float(training["kimg"]),
        "command": args.command,
        "train_options": config["train"],
        "dataset": dataset_summary(args.data or config["train"]["data"]),
        "parent": args.parent,
        "licence": WEIGHTS_LICENCE,
    }
    out = Path(args.models_dir) / bundled.BUNDLED[args.name][0]
    out.parent.mkdir(parents=True, exist_ok=True)
    stylegen.save_network(out, G_ema=G, extra=extra)
    data = out.read_bytes()
    print(f"wrote {out}: {len(data) / 1e6:.2f} MB, sha256 {hashlib.sha256(data).hexdigest()}, kimg {extra['kimg']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
