"""Latent-interpolation videos: a grid of cells, each sweeping through its own key seeds.

The layout is NVIDIA's stylegan3 `gen_video.py`: with `cols x rows` cells and K = len(seeds) /
(cols * rows) key frames, cell k (row-major) takes seeds[k * K : (k + 1) * K] as its keys, and
frame f sits at time t = f / frames_per_seed, in key frames: frame i * frames_per_seed shows
key i exactly (the image `stylegen sample` draws for that seed). A loop has K * frames_per_seed
frames and its frame after the last would be frame 0; an open path ends on the last key, with
(K - 1) * frames_per_seed + 1 frames.

Interpolation, of the ws (after truncation, as NVIDIA) or of z (then mapped, frame by frame):
- 'linear': straight segments between keys.
- 'cubic': the interpolating C2 cubic spline through the keys at unit spacing. Looping, the
  periodic spline (the same curve as scipy's CubicSpline(bc_type='periodic') over the keys and
  the first key again); NVIDIA's interp1d(kind='cubic') over 5 tiled copies of the keys is a
  not-a-knot spline whose middle copy approaches this one. Open, the natural spline (zero second
  derivative at both ends).

Style-mixing video (Karras et al. 2019, Sec. 3.1): with `fine_seeds`, a cell's ws at the `split`
levels follow the path while all others stay those of its fine seed, so e.g. the coarse styles
(pose, face shape) sweep while the fine ones (colours) stay; a key frame equals the
`stylegen mix` cell of that coarse seed and fine seed.

Editing sweep (`EditSweep`): instead of a path between keys, every cell holds one base ws (a
seed's, after truncation, or a ws file's row) and moves it along one SeFa direction
(stylegen.editing.directions) with strength s_i = S sin(2 pi i / N) at frame i of N = 4 F:
0 -> +S -> 0 -> -S -> back to 0, so frame 0 is the unedited image (`stylegen sample`'s) and
frame F is `sample --edit FILE:K:S`'s. A loop has N frames; an open sweep N + 1, ending on 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from stylegen.editing.directions import Directions, apply_direction
from stylegen.editing.mixing import mix_ws, select, ws_from_seeds
from stylegen.errors import InputError
from stylegen.formats.images import make_grid, to_numpy_images

KINDS = ("cubic", "linear")
SPACES = ("w", "z")


@dataclass(frozen=True)
class VideoConfig:
    """What a video shows; the frame count and timing follow from it (module docstring)."""

    seeds: tuple[int, ...]  # key seeds, cols * rows * K of them (cell k: seeds[k*K:(k+1)*K])
    cols: int = 1  # grid columns
    rows: int = 1  # grid rows
    frames_per_seed: int = 60  # frames from one key to the next
    kind: str = "cubic"  # 'cubic' | 'linear'
    space: str = "w"  # interpolate ws (after truncation) or z (mapped per frame)
    loop: bool = True  # wrap from the last key back to the first
    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None
    noise_mode: str = "const"
    fine_seeds: tuple[int, ...] | None = None  # style mixing: one per cell, or one for all
    split: str = "coarse"  # with fine_seeds: the levels that follow the path (mixing.resolve_split)

    def __post_init__(self) -> None:
        cells = self.cols * self.rows
        if self.cols < 1 or self.rows < 1:
            raise InputError(f"grid {self.cols}x{self.rows}: needs at least one column and one row")
        if len(self.seeds) % cells or len(self.seeds) < 2 * cells:
            raise InputError(
                f"{len(self.seeds)} seed(s) for a {self.cols}x{self.rows} grid: give a multiple of {cells} "
                f"and at least {2 * cells} (each cell sweeps through len(seeds) / {cells} key seeds)"
            )
        if self.frames_per_seed < 1:
            raise InputError(f"frames per seed must be at least 1, got {self.frames_per_seed}")
        if self.kind not in KINDS or self.space not in SPACES:
            raise InputError(f"kind {self.kind!r} / space {self.space!r}: expected one of {KINDS} / {SPACES}")
        if self.fine_seeds is not None and len(self.fine_seeds) not in (1, cells):
            raise InputError(
                f"{len(self.fine_seeds)} fine seed(s) for a {self.cols}x{self.rows} grid: give 1 (all cells) or {cells}"
            )

    @property
    def num_keys(self) -> int:
        """K: key seeds per cell."""
        return len(self.seeds) // (self.cols * self.rows)

    @property
    def num_frames(self) -> int:
        k, f = self.num_keys, self.frames_per_seed
        return k * f if self.loop else (k - 1) * f + 1

    def frame_times(self) -> np.ndarray:
        """t of every frame, in key frames: f / frames_per_seed, float64 [num_frames]."""
        return np.arange(self.num_frames, dtype=np.float64) / self.frames_per_seed

    def cell_seeds(self) -> np.ndarray:
        """int64 [cols * rows, K]: the key seeds of each cell, row-major."""
        return np.asarray(self.seeds, dtype=np.int64).reshape(self.cols * self.rows, self.num_keys)


# ---------------------------------------------------------------------------------------------
# Interpolation through K keys at t = 0, 1, ..., K - 1 (and t = K = key 0 again when looping)


def spline_second_derivatives(keys: np.ndarray, loop: bool) -> np.ndarray:
    """M [K, ...] of the interpolating cubic spline through keys [K, ...] at unit spacing.

    C2 continuity at every key gives M[i-1] + 4 M[i] + M[i+1] = 6 (y[i-1] - 2 y[i] + y[i+1]);
    periodic: indices modulo K; natural: M[0] = M[K-1] = 0. Solved in float64.
    """
    y = np.asarray(keys, dtype=np.float64).reshape(len(keys), -1)  # [K, D]
    k = len(y)
    A = np.zeros([k, k])
    rhs = np.zeros_like(y)
    rows = range(k) if loop else range(1, k - 1)
    for i in rows:
        for j, a, b in ((i - 1, 1.0, 6.0), (i, 4.0, -12.0), (i + 1, 1.0, 6.0)):
            A[i, j % k] += a
            rhs[i] += b * y[j % k]
    if not loop:
        A[0, 0] = A[k - 1, k - 1] = 1.0  # natural ends (rhs 0)
    return np.linalg.solve(A, rhs).reshape(keys.shape)


def interpolate(
    keys: np.ndarray, t: np.ndarray | float, kind: str, loop: bool, M: np.ndarray | None = None
) -> np.ndarray:
    """Values [T, ...] at times t [T] (in [0, K] looping, [0, K - 1] open) through keys [K, ...].

    kind: 'linear' | 'cubic'; M: `spline_second_derivatives(keys, loop)`, to reuse across calls.
    Float64; at integer t the result is that key exactly.
    """
    y = np.asarray(keys, dtype=np.float64)
    k = len(y)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    last = k if loop else k - 1
    assert np.all((t >= 0) & (t <= last)), (t.min(), t.max(), last)
    i = np.minimum(np.floor(t).astype(np.int64), max(last - 1, 0))  # segment [i, i + 1]
    s = (t - i).reshape(-1, *([1] * (y.ndim - 1)))
    a, b = y[i % k], y[(i + 1) % k]
    out = (1 - s) * a + s * b
    if kind == "cubic":
        M = spline_second_derivatives(y, loop) if M is None else M
        out = out + ((1 - s) ** 3 - (1 - s)) * M[i % k] / 6 + (s**3 - s) * M[(i + 1) % k] / 6
    return out


# ---------------------------------------------------------------------------------------------
# Frames


class _Paths:
    """Every cell's keys and spline, evaluated one frame at a time: keys [cells, K, ...]."""

    def __init__(self, keys: torch.Tensor, cfg: VideoConfig):
        self.keys = keys.double().cpu().numpy().swapaxes(0, 1)  # [K, cells, ...]
        self.cfg = cfg
        self.M = spline_second_derivatives(self.keys, cfg.loop) if cfg.kind == "cubic" else None

    def at(self, t: float) -> torch.Tensor:
        v = interpolate(self.keys, t, self.cfg.kind, self.cfg.loop, self.M)[0]  # [cells, ...]
        return torch.from_numpy(v).float()


def frame_ws(G: torch.nn.Module, cfg: VideoConfig, c: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Yield, per frame, the ws [cols * rows, num_ws, w_dim] of the cells, on G's device.

    G: a generator (or its frozen form); c: [1, c_dim] labels of a conditional network.
    """
    from stylegen import seed_to_z

    device = next(G.parameters()).device
    seeds = cfg.cell_seeds()  # [cells, K]
    cells, k = seeds.shape
    if cfg.space == "w":
        flat = ws_from_seeds(G, [int(s) for s in seeds.ravel()], cfg.truncation_psi, cfg.truncation_cutoff, c)
        paths = _Paths(flat.reshape(cells, k, *flat.shape[1:]), cfg)  # [cells, K, num_ws, w_dim]
    else:
        z = torch.stack([torch.stack([seed_to_z(int(s), G.z_dim)[0] for s in row]) for row in seeds])
        paths = _Paths(z, cfg)  # [cells, K, z_dim]
    c_cells = None if c is None else c.expand(cells, -1)
    fine = None
    if cfg.fine_seeds is not None:
        selection = select(cfg.split, G)
        fine = ws_from_seeds(G, list(cfg.fine_seeds), cfg.truncation_psi, cfg.truncation_cutoff, c)
    for t in cfg.frame_times():
        v = paths.at(float(t)).to(device)
        if cfg.space == "z":
            v = G.mapping(v, c_cells, truncation_psi=cfg.truncation_psi, truncation_cutoff=cfg.truncation_cutoff)
        if fine is not None:
            v = mix_ws(fine, v, selection.ws_indices)  # the split levels from the path
        yield v


def render_frames(G: torch.nn.Module, cfg: VideoConfig, c: torch.Tensor | None = None) -> Iterator[np.ndarray]:
    """Yield the video's frames one at a time: uint8 [rows * H, cols * W, 3] grids (grayscale
    networks repeated to RGB), each rendered only when asked for."""
    return _render(G, frame_ws(G, cfg, c), cfg.cols, cfg.noise_mode)


def _render(G: torch.nn.Module, frames: Iterator[torch.Tensor], cols: int, noise_mode: str) -> Iterator[np.ndarray]:
    """Synthesize each frame's ws [cells, num_ws, w_dim] into one grid, as it is asked for."""
    with torch.inference_mode():
        for ws in frames:
            images = to_numpy_images(G.synthesis(ws, noise_mode=noise_mode))  # [cells, H, W, C]
            if images.shape[-1] == 1:
                images = images.repeat(3, axis=-1)
            elif images.shape[-1] != 3:
                raise InputError(f"cannot make a video of {images.shape[-1]}-channel images (1 or 3 channels)")
            yield make_grid(list(images), cols=cols)


# ---------------------------------------------------------------------------------------------
# Editing sweeps


@dataclass(frozen=True)
class EditSweep:
    """An editing video: each cell's base ws moves along direction k, s_i = S sin(2 pi i / N)."""

    k: int  # direction index in the directions file
    strength: float = 3.0  # S: the largest move, finite and > 0
    frames_per_seed: int = 60  # F: frames from strength 0 to S; one period is N = 4 F frames
    cols: int = 1  # grid columns
    rows: int = 1  # grid rows; one base ws per cell, row-major
    loop: bool = True  # N frames (the next would be frame 0), or N + 1 ending on strength 0
    noise_mode: str = "const"

    def __post_init__(self) -> None:
        if self.cols < 1 or self.rows < 1:
            raise InputError(f"grid {self.cols}x{self.rows}: needs at least one column and one row")
        if self.k < 0 or self.frames_per_seed < 1:
            raise InputError(f"direction {self.k} / {self.frames_per_seed} frames: need K >= 0 and at least 1 frame")
        if not (math.isfinite(self.strength) and self.strength > 0):
            raise InputError(f"edit strength {self.strength}: expected a finite number > 0")

    @property
    def num_cells(self) -> int:
        return self.cols * self.rows

    @property
    def num_frames(self) -> int:
        return 4 * self.frames_per_seed + (0 if self.loop else 1)

    def check_bases(self, n: int, what: str) -> None:
        """InputError unless n (the count of `what`, e.g. 'seed(s)') fills the grid, one per cell."""
        if n != self.num_cells:
            raise InputError(
                f"{n} {what} for a {self.cols}x{self.rows} grid: an editing video takes one per cell ({self.num_cells})"
            )

    def strengths(self) -> np.ndarray:
        """s_i = S sin(2 pi i / (4 F)) of every frame, float64 [num_frames].

        Taken by quadrant, as sin of an angle in [0, pi/2], so s is exactly 0 at i = 0, 2F, 4F,
        exactly +S / -S at i = F / 3F, and s_(N - i) = -s_i exactly.
        """
        f = self.frames_per_seed
        i = np.arange(self.num_frames)
        quadrant, r = (i // f) % 4, i % f
        m = np.where(quadrant % 2 == 0, r, f - r)  # rising quadrants count up, falling ones down
        sign = np.where(quadrant < 2, 1.0, -1.0)
        return self.strength * sign * np.sin(0.5 * np.pi * m / f)


def sweep_ws(base_ws: torch.Tensor, d: Directions, sweep: EditSweep) -> Iterator[torch.Tensor]:
    """Yield, per frame, base_ws [cells, num_ws, w_dim] moved by s_i * direction `sweep.k` of d at
    d's ws indices (`apply_direction`; frames of strength 0 are exact copies of base_ws)."""
    assert base_ws.ndim == 3, tuple(base_ws.shape)
    sweep.check_bases(base_ws.shape[0], "base ws")
    for s in sweep.strengths():
        yield apply_direction(base_ws, d, sweep.k, float(s))


def render_sweep(G: torch.nn.Module, base_ws: torch.Tensor, d: Directions, sweep: EditSweep) -> Iterator[np.ndarray]:
    """The editing video's frames one at a time, as `render_frames`: base_ws [cells, num_ws,
    w_dim] on G's device (truncated seeds' ws, or a ws file's rows)."""
    return _render(G, sweep_ws(base_ws, d, sweep), sweep.cols, sweep.noise_mode)
