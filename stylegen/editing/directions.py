"""Editing directions in W by closed-form factorization (SeFa).

Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs", Sec. 3.2, Eq. 5: a
style affine maps w to y = A w + b, so moving w by n moves y by A n. The directions that move
the styles most, n* = argmax ||A n||^2 with ||n|| = 1, are the eigenvectors of A^T A by
descending eigenvalue. A stacks the affines of every selected layer; like the authors' code
(genforce/sefa `factorize_weight`), each row of A (one style channel) is normalised to unit length
first, so wide layers and large gains do not outweigh the others. The weight is taken as the
network applies it (equalized-lr gain, toRGB's extra 1/sqrt(fan_in)); these per-layer scalars
cancel in the row normalisation, so A depends only on the stored weights' directions.

Which affines: the convolution layers' (StyleGAN2 `b{r}.conv0/conv1.affine`, StyleGAN3 layer
`L*.affine`), as in SeFa and rosinality's `closed_form_factorization.py`; toRGB affines only on
request (`torgb=True`; both leave them out). StyleGAN3's input affine (ws[0]) is never used:
it maps w to a rotation and translation of the Fourier features, not to styles. A direction is
applied to exactly the ws indices whose affines were stacked (`Directions.ws_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stylegen.errors import InputError
from stylegen.networks.sg3_generator import is_stylegan3

FORMAT = "stylegen-directions"
VERSION = 1


@dataclass(frozen=True)
class Directions:
    """SeFa directions of one network, and the ws they apply to."""

    directions: np.ndarray  # [K, w_dim] float32, orthonormal rows, by descending eigenvalue
    eigenvalues: np.ndarray  # [K] float64, descending
    ws_indices: tuple[int, ...]  # ws the directions were computed from and are applied to
    layers: tuple[str, ...]  # the affines stacked, e.g. 'b8.conv0' / 'L3_36_64'
    levels: str  # the --levels text that selected them
    network_name: str  # file name of the network
    network_sha256: str  # hex sha256 of the network file ('' = unknown)

    def __post_init__(self) -> None:
        assert self.directions.ndim == 2 and self.eigenvalues.shape == (len(self.directions),), (
            self.directions.shape,
            self.eigenvalues.shape,
        )

    @property
    def w_dim(self) -> int:
        return int(self.directions.shape[1])

    def __len__(self) -> int:
        return int(self.directions.shape[0])


# ---------------------------------------------------------------------------------------------
# The stacked style affines


def style_affines(G: torch.nn.Module, torgb: bool = False) -> list[tuple[str, int, torch.Tensor]]:
    """(layer name, ws index, affine weight as applied [channels, w_dim] float64) for each style
    affine of G's synthesis network, in ws order; toRGB affines only when `torgb`.

    G is the trainable form (`stylegen.load_network`), not `G.freeze()`'s inference form.
    """
    if is_stylegan3(G):
        return _affines_sg3(G, torgb)
    return _affines_sg2(G, torgb)


def _applied(affine: torch.nn.Module, gain: float = 1.0) -> torch.Tensor:
    return affine.weight.detach().to(torch.float64).cpu() * (affine.weight_gain * gain)


def _affines_sg2(G: torch.nn.Module, torgb: bool) -> list[tuple[str, int, torch.Tensor]]:
    syn, out, w_idx = G.synthesis, [], 0
    for r in syn.block_resolutions:
        block = getattr(syn, f"b{r}")
        convs = ["conv1"] if block.num_conv == 1 else ["conv0", "conv1"]
        for j, name in enumerate(convs):
            out.append((f"b{r}.{name}", w_idx + j, _applied(_affine(block, name))))
        if torgb and block.num_torgb:
            layer = block.torgb
            out.append((f"b{r}.torgb", w_idx + block.num_conv, _applied(_affine(block, "torgb"), layer.weight_gain)))
        w_idx += block.num_conv
    return sorted(out, key=lambda item: item[1])


def _affines_sg3(G: torch.nn.Module, torgb: bool) -> list[tuple[str, int, torch.Tensor]]:
    out = []
    for i, name in enumerate(G.synthesis.layer_names):
        layer = getattr(G.synthesis, name)
        spec = layer.spec
        if spec.is_torgb and not torgb:
            continue
        gain = 1 / np.sqrt(spec.in_channels * spec.conv_kernel**2) if spec.is_torgb else 1.0
        out.append((name, i + 1, _applied(_affine(layer, None), gain)))  # ws[0] drives the input
    return out


def _affine(module: torch.nn.Module, child: str | None) -> torch.nn.Module:
    layer = module if child is None else getattr(module, child)
    affine = getattr(layer, "affine", None)
    if affine is None or not hasattr(affine, "weight_gain"):
        raise TypeError("SeFa needs the trainable generator (stylegen.load_network), not its frozen inference form")
    return affine


def stacked_weight(G: torch.nn.Module, ws_indices, torgb: bool = False):
    """A [rows, w_dim] float64 (unit rows, module docstring) of the affines driven by `ws_indices`,
    with the names and the ws indices of the affines used."""
    chosen = [a for a in style_affines(G, torgb) if a[1] in set(ws_indices)]
    if not chosen:
        hint = "" if torgb else "; only toRGB affines read them (add --torgb)"
        raise InputError(f"ws {list(ws_indices)} drive no style affine of this network{hint}")
    A = torch.cat([w for _, _, w in chosen])
    A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return A, tuple(n for n, _, _ in chosen), tuple(sorted({i for _, i, _ in chosen}))


# ---------------------------------------------------------------------------------------------
# Factorization


def select_ws(levels: str, G: torch.nn.Module) -> tuple[int, ...]:
    """ws indices of `--levels`: 'all', a level name, a resolution RES or ws:LIST (mixing.select)."""
    from stylegen.editing.mixing import select

    text = str(levels).strip().lower()
    if text == "all":
        return tuple(range(G.num_ws))
    try:
        return select(text, G).ws_indices
    except ValueError as e:
        raise InputError(f"--levels {levels}: {e}") from None


def factorize(
    G: torch.nn.Module,
    levels: str = "all",
    top: int = 10,
    torgb: bool = False,
    network=None,
) -> Directions:
    """The `top` SeFa directions of G's affines at `levels` (see `select_ws`), as `Directions`.

    Eigenvectors of A^T A (A = `stacked_weight`) by descending eigenvalue, in float64; each
    direction's sign makes its largest-magnitude entry positive (eigenvectors have no sign of their
    own). `network`: the file G was loaded from, recorded by name and sha256.
    """
    A, layers, ws_indices = stacked_weight(G, select_ws(levels, G), torgb)
    eigenvalues, vectors = torch.linalg.eigh(A.T @ A)  # ascending
    order = torch.argsort(eigenvalues, descending=True)[: min(int(top), A.shape[1])]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order].T  # [K], [K, w_dim]
    peak = vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True))
    vectors = vectors * torch.sign(peak)
    name, digest = "", ""
    if network is not None:
        from stylegen.metrics.weights import file_sha256

        name, digest = Path(network).name, file_sha256(Path(network))
    return Directions(
        directions=vectors.numpy().astype(np.float32),
        eigenvalues=eigenvalues.numpy(),
        ws_indices=ws_indices,
        layers=layers,
        levels=str(levels),
        network_name=name,
        network_sha256=digest,
    )


# ---------------------------------------------------------------------------------------------
# Files


def save_directions(path, d: Directions) -> None:
    """Write `d` as .npz (docs/cli.md "directions"), atomically."""
    from stylegen.formats.atomic import atomic_path

    arrays = {
        "format": np.asarray(FORMAT),
        "version": np.int64(VERSION),
        "directions": d.directions.astype(np.float32),
        "eigenvalues": d.eigenvalues.astype(np.float64),
        "ws_indices": np.asarray(d.ws_indices, dtype=np.int64),
        "layers": np.asarray(d.layers, dtype=str),
        "levels": np.asarray(d.levels),
        "network_name": np.asarray(d.network_name),
        "network_sha256": np.asarray(d.network_sha256),
    }
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def load_directions(path) -> Directions:
    """Read a file of `save_directions`; InputError naming the file if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != FORMAT:
                raise KeyError("format")
            d = Directions(
                directions=np.asarray(data["directions"], dtype=np.float32),
                eigenvalues=np.asarray(data["eigenvalues"], dtype=np.float64),
                ws_indices=tuple(int(i) for i in data["ws_indices"]),
                layers=tuple(str(n) for n in data["layers"]),
                levels=str(data["levels"]),
                network_name=str(data["network_name"]),
                network_sha256=str(data["network_sha256"]),
            )
    except (OSError, ValueError, KeyError, EOFError, AssertionError) as e:
        raise InputError(
            f"{path}: not a directions file of `stylegen directions` ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
        ) from None
    return d


def check_network(d: Directions, G: torch.nn.Module, network, source="directions file") -> None:
    """InputError unless `d` was computed for the network file `network` (by sha256) and fits G."""
    from stylegen.metrics.weights import file_sha256

    digest = file_sha256(Path(network))
    if d.network_sha256 != digest:
        raise InputError(
            f"{source} was made for {d.network_name or '?'} (sha256 {d.network_sha256[:12]}...), not for "
            f"{Path(network).name} (sha256 {digest[:12]}...); compute this network's with "
            f"`stylegen directions --network {network}`"
        )
    if d.w_dim != G.w_dim or not d.ws_indices or max(d.ws_indices) >= G.num_ws:
        raise InputError(f"{source}: directions of w_dim {d.w_dim} for ws {list(d.ws_indices)} do not fit the network")


# ---------------------------------------------------------------------------------------------
# Applying them


def apply_direction(ws: torch.Tensor, d: Directions, k: int, strength: float) -> torch.Tensor:
    """ws [N, num_ws, w_dim] moved by strength * direction k at d's ws indices (a new tensor).

    Strength 0 returns an exact copy.
    """
    assert ws.ndim == 3 and ws.shape[2] == d.w_dim, (tuple(ws.shape), d.w_dim)
    if not 0 <= k < len(d):
        raise InputError(f"direction {k} does not exist: the file holds directions 0-{len(d) - 1}")
    ws = ws.clone()
    if strength == 0:
        return ws
    n = torch.from_numpy(d.directions[k]).to(device=ws.device, dtype=ws.dtype)
    idx = list(d.ws_indices)
    ws[:, idx] = ws[:, idx] + float(strength) * n
    return ws


def apply_edits(ws: torch.Tensor, edits) -> torch.Tensor:
    """`apply_direction` for each (Directions, k, strength) of `edits`, in order (they commute)."""
    for d, k, strength in edits:
        ws = apply_direction(ws, d, k, strength)
    return ws


def sweep_images(G: torch.nn.Module, ws: torch.Tensor, d: Directions, strengths, noise_mode: str = "const"):
    """The figure's cells: per direction k, one uint8 [H, W, C] image per strength, from ws
    [1, num_ws, w_dim]; a list of rows."""
    from stylegen.formats.images import to_numpy_images

    rows = []
    with torch.inference_mode():
        for k in range(len(d)):
            batch = torch.cat([apply_direction(ws, d, k, s) for s in strengths])
            rows.append(list(to_numpy_images(G.synthesis(batch, noise_mode=noise_mode))))
    return rows
