"""Style mixing and layer swapping: which ws and synthesis blocks come from which network.

Style mixing (Karras et al. 2019, "A Style-Based Generator Architecture for GANs", Sec. 3.1 and
Fig. 3): a destination image keeps its own ws except at the selected levels, where it takes a
source's. Layer swapping (Pinkney & Adler 2020, "Resolution Dependent GAN Interpolation for
Controllable Image Synthesis Between Domains"): the synthesis blocks at the selected
resolutions come from one network, the others from a second network of the same architecture.

Levels are named by resolution, never by the StyleGAN paper's "0-3 / 4-7 / 8-17" numbers (those
count the older two-ws-per-resolution layout and are off by one here). ws index i drives the
convolutions at resolution `ws_resolution(i) = 2 ** ((i + 5) // 2)`, except the last one, which
only drives the final toRGB at `img_resolution`; we count it at `img_resolution`, so selecting
the top resolution selects every ws that shapes it.

StyleGAN3 (Karras et al. 2021, "Alias-Free Generative Adversarial Networks") has no blocks: ws[0]
drives the Fourier input, ws[i + 1] synthesis layer i. Its sampling rates do not say how coarse a
layer is (they start at 16 in every network, are oversampled, and reach img_resolution well before
the last layer); its cutoffs do: layer i's output holds detail up to `out_cutoff` cycles per image,
which StyleGAN2 first holds at the resolution whose Nyquist frequency reaches it. So a StyleGAN3 ws
counts at `band_resolution(cutoff)` = the smallest power of two >= 2 * cutoff (the input: its
bandwidth), and every split above applies unchanged. A 1024x1024 stylegan3-t/-r network then has
coarse = ws 0-2 as in StyleGAN2, middle = ws 3-5, fine = ws 6-15.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stylegen.editing.mixing_sg3 import (  # noqa: F401 -- StyleGAN3's half, re-exported here
    LayerLevel,
    band_resolution,
    check_same_layers,
    layer_levels,
    layer_swap3,
    sg3_parts,
    sg3_ws_resolutions,
)
from stylegen.errors import InputError, WsFileError
from stylegen.formats.ws_file import read_ws_file
from stylegen.networks.generator import ws_resolution
from stylegen.networks.sg3_generator import is_stylegan3

# Level name -> inclusive range of resolutions (None = no upper limit).
LEVELS: dict[str, tuple[int, int | None]] = {
    "coarse": (4, 8),
    "middle": (16, 32),
    "fine": (64, None),
}


def level_name(resolution: int) -> str:
    """The LEVELS name a resolution belongs to."""
    return next(n for n, (lo, hi) in LEVELS.items() if lo <= resolution and (hi is None or resolution <= hi))


@dataclass(frozen=True)
class Selection:
    """The part of a network taken from the source: block resolutions and the ws they use."""

    resolutions: tuple[int, ...]  # synthesis block resolutions, ascending
    ws_indices: tuple[int, ...]  # ws indices whose (clamped) resolution is in `resolutions`

    def describe(self) -> str:
        res = ", ".join(f"{r}x{r}" for r in self.resolutions) or "none"
        return f"ws {list(self.ws_indices)} (resolutions {res})"


def block_resolutions(img_resolution: int) -> list[int]:
    """[4, 8, ..., img_resolution]: one synthesis block per resolution."""
    return [2**k for k in range(2, img_resolution.bit_length())]


def ws_resolutions(num_ws: int, img_resolution: int) -> list[int]:
    """Resolution of each ws index; the last (final toRGB only) counts at img_resolution."""
    return [min(ws_resolution(i), img_resolution) for i in range(num_ws)]


def resolve_split(split: str | int, img_resolution: int, num_ws: int, ws_res: list[int] | None = None) -> Selection:
    """Resolve `--split`: a resolution RES (everything at <= RES), a level name, or `ws:LIST`.

    ws_res: the resolution each ws counts at; None = StyleGAN2's `ws_resolutions`, a StyleGAN3
    network passes `sg3_ws_resolutions(G)`. `ws:LIST` names ws indices directly ('ws:0-4',
    'ws:0,8-15'). Raises ValueError for a RES that is not a power of two in [4, img_resolution],
    an unknown level name, a bad or out-of-range ws list, or a level the network does not have
    (e.g. 'fine' on a 32x32 network).
    """
    res_of = ws_resolutions(num_ws, img_resolution) if ws_res is None else list(ws_res)
    assert len(res_of) == num_ws, (len(res_of), num_ws)
    text = str(split).strip().lower()
    if text.startswith("ws:"):
        indices = _parse_ws_list(text[3:], num_ws)
    elif text in LEVELS:
        lo, hi = LEVELS[text]
        indices = tuple(i for i in range(num_ws) if lo <= res_of[i] and (hi is None or res_of[i] <= hi))
        if not indices:
            span = f"{lo}x{lo}" + (f"-{hi}x{hi}" if hi else " and up")
            raise ValueError(f"split {text!r} ({span}) does not exist in a {img_resolution}x{img_resolution} network")
    elif text.isdigit():
        res = int(text)
        if res not in block_resolutions(img_resolution):
            raise ValueError(
                f"split {res} must be a power of two from 4 to {img_resolution} "
                f"(the network's resolution), one of {', '.join(LEVELS)}, or ws:LIST"
            )
        indices = tuple(i for i in range(num_ws) if res_of[i] <= res)
        if not indices:  # StyleGAN3 only: StyleGAN2's ws 0 counts at 4x4
            raise ValueError(f"split {res} selects no ws of this network (its coarsest is {min(res_of)}x{min(res_of)})")
    else:
        raise ValueError(
            f"split {split!r} is neither a resolution, one of {', '.join(LEVELS)}, nor ws:LIST (e.g. ws:0-4)"
        )
    # Every StyleGAN2 block resolution has a ws, so these are the blocks a level or RES names.
    return Selection(resolutions=tuple(sorted({res_of[i] for i in indices})), ws_indices=indices)


def _parse_ws_list(text: str, num_ws: int) -> tuple[int, ...]:
    """'0-4' / '0,8-15' -> sorted distinct ws indices; ValueError naming the bad item."""
    indices: set[int] = set()
    for item in text.split(","):
        lo, sep, hi = item.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(
                f"split ws:{text}: {item.strip()!r} is not a ws index or range A-B (e.g. ws:0-4 or ws:0,8-15)"
            )
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a or b >= num_ws:
            raise ValueError(
                f"split ws:{text}: {item.strip()!r} must be indices from 0 to {num_ws - 1} (num_ws {num_ws}), ascending"
            )
        indices.update(range(a, b + 1))
    return tuple(sorted(indices))


def complement(selection: Selection, img_resolution: int, num_ws: int, ws_res: list[int] | None = None) -> Selection:
    """Everything `selection` leaves to the destination (ws_res as for `resolve_split`)."""
    idx = tuple(i for i in range(num_ws) if i not in selection.ws_indices)
    if ws_res is not None:
        return Selection(resolutions=tuple(sorted({ws_res[i] for i in idx})), ws_indices=idx)
    res = tuple(r for r in block_resolutions(img_resolution) if r not in selection.resolutions)
    return Selection(resolutions=res, ws_indices=idx)


def select(split: str | int, G: torch.nn.Module) -> Selection:
    """`resolve_split` for a generator of either family."""
    return resolve_split(split, G.img_resolution, G.num_ws, _ws_res(G))


def rest_of(selection: Selection, G: torch.nn.Module) -> Selection:
    """`complement` for a generator of either family."""
    return complement(selection, G.img_resolution, G.num_ws, _ws_res(G))


def _ws_res(G: torch.nn.Module) -> list[int] | None:
    return sg3_ws_resolutions(G) if is_stylegan3(G) else None


def mix_ws(dst_ws: torch.Tensor, src_ws: torch.Tensor, ws_indices: tuple[int, ...] | list[int]) -> torch.Tensor:
    """dst_ws with the ws at `ws_indices` replaced by src_ws's; shapes [N, num_ws, w_dim] (broadcast)."""
    assert dst_ws.ndim == 3 and src_ws.ndim == 3 and dst_ws.shape[1:] == src_ws.shape[1:], (
        dst_ws.shape,
        src_ws.shape,
    )
    src_ws, dst_ws = torch.broadcast_tensors(src_ws, dst_ws)
    ws = dst_ws.clone()
    idx = list(ws_indices)
    ws[:, idx] = src_ws[:, idx]
    return ws


# ---------------------------------------------------------------------------------------------
# Layer swapping


def _synthesis_shapes(G: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in G.synthesis.state_dict().items()}


def _channels(G: torch.nn.Module) -> dict[int, int]:
    """Feature channels per block resolution, from the conv1 weights [Cout, Cin, 3, 3]."""
    return {r: int(getattr(G.synthesis, f"b{r}").conv1.weight.shape[0]) for r in block_resolutions(G.img_resolution)}


def _architecture(G: torch.nn.Module) -> str:
    return getattr(getattr(G, "config", None), "architecture", "skip")


def _family(G: torch.nn.Module) -> str:
    return "StyleGAN3" if is_stylegan3(G) else "StyleGAN2"


def check_same_architecture(G_src: torch.nn.Module, G_dst: torch.nn.Module) -> None:
    """Raise InputError naming the first field in which two generators differ for layer swapping."""
    if is_stylegan3(G_src) != is_stylegan3(G_dst):
        raise InputError(
            f"SRC is a {_family(G_src)} network, DST a {_family(G_dst)} one; layer swapping needs two "
            "networks of one family"
        )
    for field in ("img_resolution", "img_channels", "w_dim", "num_ws", "c_dim"):
        a, b = int(getattr(G_src, field)), int(getattr(G_dst, field))
        if a != b:
            raise InputError(
                f"networks differ in {field}: SRC {a}, DST {b}; layer swapping needs the same architecture"
            )
    arch_src, arch_dst = _architecture(G_src), _architecture(G_dst)
    if arch_src != arch_dst:
        raise InputError(
            f"networks differ in architecture: SRC {arch_src!r}, DST {arch_dst!r}; layer swapping needs the same one"
        )
    if is_stylegan3(G_src):
        check_same_layers(G_src.config, G_dst.config)
    else:
        ch_src, ch_dst = _channels(G_src), _channels(G_dst)
        for r in ch_src:
            if ch_src[r] != ch_dst[r]:
                raise InputError(
                    f"networks differ in channels at {r}x{r}: SRC {ch_src[r]}, DST {ch_dst[r]}; "
                    "layer swapping needs the same architecture"
                )
    shapes_src, shapes_dst = _synthesis_shapes(G_src), _synthesis_shapes(G_dst)
    for name in sorted(set(shapes_src) | set(shapes_dst)):
        a, b = shapes_src.get(name), shapes_dst.get(name)
        if a != b:
            raise InputError(f"networks differ in synthesis.{name}: SRC {a}, DST {b}")


def layer_swap(
    G_src: torch.nn.Module,
    G_dst: torch.nn.Module,
    resolutions: tuple[int, ...] | list[int],
) -> torch.nn.Module:
    """A new generator: synthesis blocks at `resolutions` from G_src, other blocks from G_dst.

    Mapping, w_avg and config come from G_src. Both inputs are left untouched. StyleGAN2 only
    (StyleGAN3: `layer_swap3`, by ws index).
    """
    check_same_architecture(G_src, G_dst)
    if is_stylegan3(G_src):
        raise TypeError("layer_swap: StyleGAN3 has no blocks; use layer_swap3(G_src, G_dst, ws_indices)")
    G = copy.deepcopy(G_src)
    for r in block_resolutions(G.img_resolution):
        if r not in resolutions:
            getattr(G.synthesis, f"b{r}").load_state_dict(getattr(G_dst.synthesis, f"b{r}").state_dict())
    return G


# ---------------------------------------------------------------------------------------------
# Sources and the mixing grid


@dataclass
class StyleSource:
    """A network and the ws drawn through it: from seeds, or read from a ws file (.npz)."""

    G: torch.nn.Module
    ws: torch.Tensor  # [N, num_ws, w_dim], on G's device
    names: list[str]  # one label per row of ws, e.g. '0007' for seed 7

    def __post_init__(self) -> None:
        assert self.ws.ndim == 3 and self.ws.shape[1] == self.G.num_ws, self.ws.shape
        assert len(self.names) == self.ws.shape[0], (len(self.names), self.ws.shape)


def ws_from_seeds(
    G: torch.nn.Module,
    seeds: list[int],
    truncation_psi: float = 1,
    truncation_cutoff: int | None = None,
    c: torch.Tensor | None = None,
) -> torch.Tensor:
    """ws [len(seeds), num_ws, w_dim] of G for the given seeds (z by `stylegen.seed_to_z`).

    `c` is [1, c_dim] or [len(seeds), c_dim] for a conditional network.
    """
    from stylegen import seed_to_z

    device = next(G.parameters()).device
    z = torch.cat([torch.as_tensor(seed_to_z(s, G.z_dim)).reshape(1, -1) for s in seeds]).to(device)
    if c is not None:
        c = c.expand(len(seeds), -1)
    return G.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


def mixing_generator(src: StyleSource, dst: StyleSource, selection: Selection) -> torch.nn.Module:
    """The generator that renders the mixed cells: SRC's own when both sources share a network,
    else the layer swap (StyleGAN2: blocks at `selection.resolutions`; StyleGAN3: the parts of
    `selection.ws_indices`)."""
    if src.G is dst.G:
        return src.G
    if is_stylegan3(src.G):
        return layer_swap3(src.G, dst.G, selection.ws_indices)
    return layer_swap(src.G, dst.G, selection.resolutions)


def mix_rows(
    G_mix: torch.nn.Module,
    src: StyleSource,
    dst: StyleSource,
    selection: Selection,
    noise_mode: str = "const",
):
    """Yield, per destination row j, the cells img [len(src.names), C, R, R]: dst j with src i's
    ws at `selection.ws_indices`, rendered by G_mix.synthesis."""
    for j in range(dst.ws.shape[0]):
        ws = mix_ws(dst.ws[j : j + 1], src.ws, selection.ws_indices)  # [Ns, num_ws, w_dim]
        yield G_mix.synthesis(ws, noise_mode=noise_mode)


def load_ws_file(path, G: torch.nn.Module) -> StyleSource:
    """A StyleSource of G from a ws file: its ws [N, num_ws, w_dim] as stored (already truncated
    when they were sampled with --trunc). Rows are named by seed ('0007'), or '<file stem><row>'
    for rows without a seed (seed -1, e.g. projected images). WsFileError if it cannot be read or
    does not fit G."""
    ws, seeds = read_ws_file(path)
    expected = (G.num_ws, G.w_dim)
    if ws.ndim != 3 or tuple(ws.shape[1:]) != expected or len(ws) == 0:
        raise WsFileError(
            f"{path}: ws of shape {tuple(ws.shape)} do not fit the network "
            f"(need [N, num_ws={expected[0]}, w_dim={expected[1]}])"
        )
    stem = Path(path).stem
    names = [f"{int(s):04d}" if s >= 0 else f"{stem}{i}" for i, s in enumerate(seeds)]
    device = next(G.parameters()).device
    return StyleSource(G, torch.from_numpy(ws.astype(np.float32)).to(device), names)
