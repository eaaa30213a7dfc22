"""Writing any loadable network file as our snapshot, or as a rosinality checkpoint.

`convert_network(src, dst, to)` reads every network of `src` (`read_network_file`: our
snapshots, NVIDIA's PyTorch and TensorFlow pickles, rosinality checkpoints; nothing from the file
is executed) and writes them atomically:
- to='stylegen': our snapshot (`save_network`, plain data for `torch.load(weights_only=True)`)
  with G_ema, G and D as far as they load; `extra['source']` records the input file's name,
  sha256, format and the loader's notes, and an input snapshot's own `extra` (a bundled
  network's provenance and licence) is kept.
- to='rosinality': `stylegen.formats.rosinality.save_rosinality(path, G_ema, G=None, D=None)`
  (atomic too); a D that rosinality's Discriminator cannot hold is left out, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stylegen.errors import InputError
from stylegen.formats.network_file import NetworkFile, file_sha256, read_network_file
from stylegen.formats.snapshot import save_network

TARGETS = ("stylegen", "rosinality")


@dataclass
class Conversion:
    """What `convert_network` read and wrote."""

    source: NetworkFile
    written: list[str]  # the networks in the output, e.g. ['G_ema', 'G', 'D']
    notes: list[str] = field(default_factory=list)  # one line each: what was skipped, and why


def convert_network(src: str | Path, dst: str | Path, to: str = "stylegen") -> Conversion:
    """Convert the network file `src` into `dst` (format `to`, one of TARGETS); returns a report.

    A G or D that is absent or cannot be rebuilt is skipped (said in the notes); the input must
    have a loadable generator. Raises NetworkLoadError for an unreadable input, InputError for an
    unknown target or a network the target cannot hold.
    """
    if to not in TARGETS:
        raise InputError(f"unknown conversion target {to!r} (one of {', '.join(TARGETS)})")
    source = read_network_file(src)
    notes = _skipped(source)
    if to == "rosinality":
        written = _write_rosinality(source, Path(dst), notes)
    else:
        written = _write_ours(source, Path(dst), notes)
    return Conversion(source, written, notes)


def _skipped(source: NetworkFile) -> list[str]:
    notes = [f"{which} not converted: {problem}" for which, problem in source.problems.items()]
    if source.G_ema is None:
        notes.append("the file has no G_ema: only G is converted (load it with which='G')")
    return notes


def _write_ours(source: NetworkFile, dst: Path, notes: list[str]) -> list[str]:
    snapshot = source.snapshot or {}
    extra = dict(snapshot["extra"]) if isinstance(snapshot.get("extra"), dict) else {}
    record = {
        "file": source.path.name,
        "sha256": file_sha256(source.path),
        "format": source.source_format,
        "notes": list(source.source_notes),
    }
    earlier = extra.get("source")
    if isinstance(earlier, dict):  # converting a converted file: keep where it came from first
        record["earlier"] = f"{earlier.get('file', '?')} ({earlier.get('format', '?')})"
    extra["source"] = record
    if snapshot.get("training") is not None:
        notes.append("training state (optimizers, counters) not copied: resume from the original for an exact resume")
    save_network(dst, G=source.G, G_ema=source.G_ema, D=source.D, extra=extra)
    return [k for k in ("G_ema", "G", "D") if source.networks.get(k) is not None]


def _write_rosinality(source: NetworkFile, dst: Path, notes: list[str]) -> list[str]:
    try:
        from stylegen.formats.rosinality import save_rosinality
    except ImportError:
        raise InputError(
            "--to rosinality is not available in this installation (stylegen.formats.rosinality has no save_rosinality)"
        ) from None
    if source.G_ema is None:
        raise InputError(f"{source.path}: a rosinality checkpoint needs G_ema; the file has only G")
    D = source.D
    try:
        notes += save_rosinality(dst, source.G_ema, G=source.G, D=D) or []
    except InputError as e:
        if D is None:
            raise
        D = None  # a discriminator rosinality cannot hold: write the generators without it
        notes += save_rosinality(dst, source.G_ema, G=source.G) or []
        notes.append(f"D not written: {e}")
    return [k for k, net in (("G_ema", source.G_ema), ("G", source.G), ("D", D)) if net is not None]
