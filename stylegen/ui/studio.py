"""What `stylegen ui` computes, without the web page: networks, ws and images, cached.

The page (`stylegen.ui.app`) is a thin Gradio layer over one `Studio`. Every image it shows
comes from here, through the same functions as the commands: `ws_from_seeds` + the frozen
generator's synthesis for `sample`, `mix_ws` + `mixing_generator` for `mix`, `factorize` +
`apply_direction` for `directions` / `sample --edit`, `project` for `project`. So a seed shown
on the page is bit for bit `stylegen sample --seeds SEED`'s PNG.

It must feel immediate on a CPU, so everything that does not change with a slider is kept:
loaded networks and their inference forms (a few, least recently used first out), the ws of
recent seeds, the SeFa directions per network and levels, and swapped generators per pair of
networks and levels. Errors a user can act on are `StylegenError`s, as in the library; the page
shows them as the CLI does (`error_line`).
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stylegen.errors import InputError

NETWORKS_KEPT = 4  # loaded networks (each with its inference form)
WS_KEPT = 256  # (network, seed, truncation) -> ws
SWAPS_KEPT = 4  # swapped generators


@dataclass
class LoadedNetwork:
    """One network file: its trainable form (directions, projection, swaps) and inference form."""

    path: Path
    G: torch.nn.Module  # trainable form, eval, on the studio's device
    frozen: torch.nn.Module  # G.freeze(): what renders
    sha256: str
    directions: dict = field(default_factory=dict)  # levels -> Directions

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_stylegan3(self) -> bool:
        from stylegen.networks.sg3_generator import is_stylegan3

        return is_stylegan3(self.G)


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or_make(self, key, make: Callable):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        while len(self) > self.size:
            self.popitem(last=False)
        return value


def _image(frozen: torch.nn.Module, ws: torch.Tensor) -> np.ndarray:
    """uint8 [H, W, C] of ws [1, num_ws, w_dim] through an inference form, noise 'const' (as `sample`)."""
    from stylegen.formats.images import to_numpy_images

    with torch.inference_mode():
        return to_numpy_images(frozen.synthesis(ws, noise_mode="const"))[0]


def error_line(e: BaseException) -> str:
    """The `Error: ...` line the CLI prints for a user error (`stylegen.cli.common`)."""
    from stylegen.cli.common import describe_error

    return f"Error: {describe_error(e)}"


def is_user_error(e: BaseException) -> bool:
    from stylegen.cli.common import is_user_error as cli_is_user_error

    return cli_is_user_error(e)


class Studio:
    """Cached rendering for the page; thread-safe (Gradio calls handlers from worker threads)."""

    def __init__(self, device: torch.device | str = "cpu", workdir: str | Path | None = None) -> None:
        self.device = torch.device(device)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="stylegen-ui-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._networks = _LRU(NETWORKS_KEPT)
        self._ws = _LRU(WS_KEPT)
        self._swaps = _LRU(SWAPS_KEPT)
        self.photos: dict[str, torch.Tensor] = {}  # name -> ws [1, num_ws, w_dim] (projected / uploaded)

    # -----------------------------------------------------------------------------------------
    # Networks

    def network(self, ref: str | None) -> LoadedNetwork:
        """A bundled name or a file (as `--network`), loaded once; BundledNetworkError /
        NetworkLoadError (one line, naming the file) for anything else."""
        import stylegen
        from stylegen.formats import bundled
        from stylegen.metrics.weights import file_sha256

        ref = (ref or "").strip() or bundled.DEFAULT
        path = bundled.resolve(ref).resolve()
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)

        def load() -> LoadedNetwork:
            G = stylegen.load_network(path).to(self.device).eval().requires_grad_(False)
            if G.c_dim:
                raise InputError(f"{path}: conditional networks (c_dim={G.c_dim}) are not supported by the page yet")
            return LoadedNetwork(path=path, G=G, frozen=G.freeze(), sha256=file_sha256(path))

        with self._lock:
            return self._networks.get_or_make(key, load)

    def seed_ws(self, net: LoadedNetwork, seed: int, truncation_psi: float = 1.0) -> torch.Tensor:
        """ws [1, num_ws, w_dim] of `seed`, as `stylegen sample --seeds SEED --trunc PSI`."""
        from stylegen.cli.common import MAX_SEED
        from stylegen.editing.mixing import ws_from_seeds

        seed = int(seed)
        if not 0 <= seed <= MAX_SEED:
            raise InputError(f"seed {seed}: seeds are integers in 0-{MAX_SEED}")
        key = (net.sha256, seed, float(truncation_psi))

        def make() -> torch.Tensor:
            with torch.inference_mode():
                return ws_from_seeds(net.frozen, [seed], float(truncation_psi))

        with self._lock:
            return self._ws.get_or_make(key, make)

    def base_ws(self, net: LoadedNetwork, seed: int, truncation_psi: float, photo: str | None) -> torch.Tensor:
        """The ws of a stored photo (projected or from a ws file) when `photo` names one, else the seed's."""
        if photo:
            ws = self.photos.get(photo)
            if ws is None:
                raise InputError(f"{photo}: no such photo; project one or load a ws file first")
            if tuple(ws.shape[1:]) != (net.G.num_ws, net.G.w_dim):
                raise InputError(f"{photo}: its ws {tuple(ws.shape)} do not fit {net.name}")
            return ws.to(self.device)
        return self.seed_ws(net, seed, truncation_psi)

    # -----------------------------------------------------------------------------------------
    # Images

    def render(self, net: LoadedNetwork, ws: torch.Tensor, translate=(0.0, 0.0), rotate: float = 0.0) -> np.ndarray:
        """uint8 [H, W, C] of ws [1, num_ws, w_dim] through the inference form (noise 'const');
        a StyleGAN3 network's input is turned and moved as `sample --translate/--rotate`."""
        with self._lock:
            G = net.frozen
            moved = net.is_stylegan3 and (tuple(translate) != (0.0, 0.0) or rotate != 0.0)
            if moved:
                G.synthesis.set_input_transform(tuple(translate), float(rotate))
            try:
                return _image(G, ws)
            finally:
                if moved:
                    G.synthesis.set_input_transform((0.0, 0.0), 0.0)

    def directions(self, net: LoadedNetwork, levels: str = "all", top: int = 8):
        """SeFa directions of `net` at `levels` (`stylegen directions --levels`), computed once."""
        from stylegen.editing.directions import Directions, factorize

        with self._lock:
            if levels not in net.directions:
                d = factorize(net.G, levels=levels, top=top)
                net.directions[levels] = Directions(
                    **{**d.__dict__, "network_name": net.name, "network_sha256": net.sha256}
                )
            return net.directions[levels]

    def edited_ws(self, net: LoadedNetwork, ws: torch.Tensor, levels: str, strengths) -> torch.Tensor:
        """ws moved by strengths[k] along direction k (0 = unchanged), as `sample --edit`."""
        from stylegen.editing.directions import apply_direction

        if not any(float(s) for s in strengths):
            return ws
        d = self.directions(net, levels, top=max(len(strengths), 1))
        for k, s in enumerate(strengths):
            ws = apply_direction(ws, d, k, float(s))
        return ws

    def mix(
        self,
        src: LoadedNetwork,
        dst: LoadedNetwork,
        src_ws: torch.Tensor,
        dst_ws: torch.Tensor,
        split: str,
    ) -> tuple[np.ndarray, torch.nn.Module, torch.Tensor]:
        """`stylegen mix`'s cell: DST's ws with SRC's at `split`, rendered by SRC's network when
        both are the same, else by the layer swap. Returns (image, generator (trainable), ws)."""
        from stylegen.editing import mixing

        try:
            selection = mixing.select(split, src.G)
        except ValueError as e:
            raise InputError(f"split {split!r}: {e}") from None
        ws = mixing.mix_ws(dst_ws, src_ws, selection.ws_indices)
        if src is dst:
            return self.render(src, ws), src.G, ws

        def swap():
            G = mixing.mixing_generator(
                mixing.StyleSource(src.G, src_ws, ["src"]), mixing.StyleSource(dst.G, dst_ws, ["dst"]), selection
            )
            return G, G.freeze()

        with self._lock:
            G, frozen = self._swaps.get_or_make((src.sha256, dst.sha256, selection.ws_indices), swap)
            return _image(frozen, ws), G, ws

    # -----------------------------------------------------------------------------------------
    # Photos

    def load_ws_photo(self, net: LoadedNetwork, path: str | Path) -> list[str]:
        """Every row of a ws file (`sample --save-ws`, `project`) becomes a photo; their names."""
        from stylegen.editing.mixing import load_ws_file

        source = load_ws_file(path, net.G)
        names = []
        for i, name in enumerate(source.names):
            names.append(f"{Path(path).stem}:{name}")
            self.photos[names[-1]] = source.ws[i : i + 1].detach().cpu()
        return names

    def project(self, net: LoadedNetwork, image: np.ndarray, steps: int, distance: str, w_plus: bool, progress=None):
        """`stylegen project` of an uploaded image (uint8 [H, W, C]); stores the result as a
        photo named 'projected N'. Returns (name, Projection)."""
        from PIL import Image

        from stylegen.editing import projection
        from stylegen.metrics import perceptual

        perceptual.check_distance(distance, None)
        path = self.workdir / f"upload-{len(self.photos)}.png"  # load_target crops and resizes, as the CLI's
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
        target = projection.load_target(path, net.G.img_resolution, net.G.img_channels)
        dist = perceptual.load_distance(distance, None).to(self.device)
        cfg = projection.ProjectConfig(num_steps=int(steps), w_plus=bool(w_plus))
        result = projection.project(net.G, target, dist, cfg, progress=progress)
        name = f"projected {sum(n.startswith('projected') for n in self.photos) + 1}"
        self.photos[name] = result.ws
        return name, result

    # -----------------------------------------------------------------------------------------
    # Downloads

    def write_png(self, image: np.ndarray, name: str) -> Path:
        from stylegen.formats.images import save_png

        path = self.workdir / f"{name}.png"
        save_png(path, image)
        return path

    def write_ws(
        self, net: LoadedNetwork, ws: torch.Tensor, name: str, seed: int | None, truncation_psi: float
    ) -> Path:
        from stylegen.formats.ws_file import save_ws_file

        path = self.workdir / f"{name}.npz"
        seeds = None if seed is None else [int(seed)]
        save_ws_file(path, ws, seeds, truncation_psi=truncation_psi, network=net.path)
        return path

    def write_network(self, G: torch.nn.Module, name: str) -> Path:
        import stylegen

        path = self.workdir / f"{name}.pkl"
        stylegen.save_network(path, G=G, G_ema=G)
        return path
