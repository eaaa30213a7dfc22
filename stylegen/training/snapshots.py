"""What a run writes: config.json, snapshots (atomic, last K kept), fakes grids, stats.jsonl."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import torch

from stylegen.formats.atomic import atomic_path
from stylegen.formats.images import make_grid, save_png, to_numpy_images
from stylegen.formats.snapshot import save_network
from stylegen.training import distributed
from stylegen.training.setup import newest_snapshot


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


class SnapshotWriter:
    """Owned by the training loop; only process 0 touches the file system."""

    def __init__(self, st):
        self.st = st
        self.run_dir = Path(st.cfg.outdir)
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.t_last, self.nimg_last = time.time(), st.nimg
        n = st.cfg.grid**2
        gen = torch.Generator().manual_seed(st.cfg.seed + 123)
        self.grid_z = torch.randn([n, st.G.z_dim], generator=gen)
        labels = st.dataset.labels
        self.grid_c = labels[torch.randint(len(labels), [n], generator=gen)] if st.dataset.c_dim else None

    def start(self) -> None:
        if self.st.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            info = {
                "train": self.st.cfg.to_dict(),
                "G": self.st.G.config.to_dict(),
                "D": self.st.D.config.to_dict(),
                "dataset": {
                    "path": self.st.dataset.path,
                    "images": len(self.st.dataset.names),
                    "skipped": self.st.dataset.skipped,
                    "resolution": self.st.dataset.resolution,
                    "channels": self.st.dataset.channels,
                    "c_dim": self.st.dataset.c_dim,
                },
                "processes": self.st.dist.world,
                "start_time": time.time(),
                "torch": torch.__version__,
            }
            _write_json(self.run_dir / "config.json", info)
            if self.st.step == 0:
                self.write_fakes("fakes-init.png")
        distributed.barrier(self.st.dist)

    def accumulate(self, stats: dict) -> None:
        for k, v in stats.items():  # lazy regularisers report every few steps: count per key
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def last_snapshot(self) -> Path | None:
        return newest_snapshot(self.run_dir)

    def maybe_snapshot(self, force: bool = False) -> Path | None:
        st, every = self.st, self.st.cfg.snap * 1000
        prev = st.nimg - st.cfg.batch_size
        if not force and int(st.nimg // every) == int(prev // every):
            return None
        path = None
        if st.dist.main:
            path = self.run_dir / f"network-snapshot-{st.kimg:010.3f}.pkl"
            save_network(path, G=st.G, G_ema=st.G_ema, D=st.D, training=self.training_state())
            self.write_fakes(f"fakes-{st.kimg:010.3f}.png")
            self.write_stats()
            self.prune()
        distributed.barrier(st.dist)
        return path

    def training_state(self) -> dict:
        st = self.st
        return {
            "step": st.step,
            "kimg": st.kimg,
            "G_opt": st.G_opt.state_dict(),
            "D_opt": st.D_opt.state_dict(),
            "ada": st.ada.state_dict() if st.ada is not None else None,
            "pl_mean": st.loss.pl_mean.detach().cpu().clone(),
            "blur_init_sigma": st.loss.cfg.blur_init_sigma,
            "augment_p": float(st.augment.p) if st.augment is not None else None,
            "config": st.cfg.to_dict(),
        }

    @torch.no_grad()
    def write_fakes(self, name: str) -> None:
        G = self.st.G_ema
        dev = self.st.dist.device
        c = self.grid_c.to(dev) if self.grid_c is not None else None
        imgs = [
            G(self.grid_z[i : i + 16].to(dev), c[i : i + 16] if c is not None else None, noise_mode="const")
            for i in range(0, len(self.grid_z), 16)
        ]
        images = list(to_numpy_images(torch.cat(imgs)))
        save_png(self.run_dir / name, make_grid(images, cols=self.st.cfg.grid))

    def write_stats(self) -> None:
        st, now = self.st, time.time()
        dk = (st.nimg - self.nimg_last) / 1000
        line = {
            "kimg": round(st.kimg, 3),
            "step": st.step,
            "time": round(now, 3),
            "sec_per_kimg": round((now - self.t_last) / dk, 3) if dk else None,
            "augment_p": float(st.augment.p) if st.augment is not None else None,
            "pl_mean": float(st.loss.pl_mean),
            "mem_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        line.update({k: round(v / self.counts[k], 6) for k, v in sorted(self.sums.items())})
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.sums, self.counts, self.t_last, self.nimg_last = {}, {}, now, st.nimg

    def prune(self) -> None:
        keep = self.st.cfg.keep
        snaps = sorted(self.run_dir.glob("network-snapshot-*.pkl"))
        for old in snaps[:-keep] if keep > 0 else []:
            old.unlink()
