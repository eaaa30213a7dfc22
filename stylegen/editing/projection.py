"""Projection of a real image into a generator's latent space (w, or ws with --w-plus).

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", Sec. 5 and
Appendix D, as NVIDIA's `projector.py` (stylegan2-ada-pytorch): start at w_avg estimated from
10k mapped samples, optimise w and the per-layer noise maps with Adam to minimise a perceptual
distance (LPIPS) plus a noise regulariser; Gaussian noise on w that ramps down, a learning rate
that ramps up then down (cosine), and noise maps renormalised to zero mean, unit variance after
every step.

StyleGAN3 generators have no noise inputs: for them only w (or ws) is optimised, and the noise
regulariser and renormalisation drop out; everything else is the same recipe.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylegen.errors import InputError
from stylegen.formats.atomic import atomic_path
from stylegen.formats.image_files import image_to_array, resize_image
from stylegen.formats.images import make_grid, save_png, to_numpy_images
from stylegen.formats.ws_file import save_ws_file
from stylegen.metrics.perceptual import PerceptualDistance
from stylegen.networks.sg3_generator import is_stylegan3


@dataclass(frozen=True)
class ProjectConfig:
    """Hyper-parameters of the projector (defaults: NVIDIA's)."""

    num_steps: int = 1000  # optimisation steps
    w_plus: bool = False  # optimise one w per ws index (W+) instead of one w for all
    seed: int = 303  # seeds the initial noise maps and the w noise
    w_avg_samples: int = 10000  # mapped z samples for w_avg and w_std
    initial_learning_rate: float = 0.1  # Adam learning rate at the top of the ramp
    initial_noise_factor: float = 0.05  # w noise at step 0, in units of w_std
    noise_ramp_length: float = 0.75  # fraction of the steps over which the w noise goes to 0
    lr_rampup_length: float = 0.05  # fraction of the steps of linear learning-rate ramp-up
    lr_rampdown_length: float = 0.25  # fraction of the steps of cosine ramp-down at the end
    regularize_noise_weight: float = 1e5  # weight of the noise regulariser
    max_distance_resolution: int = 256  # images larger than this are area-downsampled for the distance
    num_frames: int = 100  # frames kept for the video (evenly spaced steps)


@dataclass
class Projection:
    """Result of `project`."""

    ws: torch.Tensor  # [1, num_ws, w_dim] float32, CPU
    noise: dict[str, torch.Tensor]  # optimised noise_const buffers by synthesis buffer name ({} for StyleGAN3)
    image: np.ndarray  # uint8 [R, R, C]: ws rendered with the optimised noise
    image_stored_noise: np.ndarray  # uint8 [R, R, C]: ws rendered with the network's own noise (= image for StyleGAN3)
    psnr_start: float  # dB, the image at w_avg (step 0) vs the target
    psnr: float  # dB, `image` vs the target
    psnr_stored_noise: float  # dB, `image_stored_noise` vs the target
    distance_start: float  # perceptual distance of the step-0 image (w_avg) to the target
    distance: float  # perceptual distance of `image` to the target
    frames: list[np.ndarray] = field(default_factory=list)  # uint8 [R, 2R, C]: target | step image


def load_target(path: str | Path, resolution: int, channels: int) -> torch.Tensor:
    """An image file as uint8 [channels, R, R]: center-cropped to a square, resized (Lanczos).

    Grayscale images are replicated for 3-channel networks; colour images become luminance for
    1-channel networks; transparency is composited on white.
    """
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such file", str(path)) from None
    except Exception as e:  # PIL raises many types for corrupt data
        raise InputError(f"{path}: not a readable image ({type(e).__name__})") from None
    if channels not in (1, 3):
        raise InputError(f"projection supports 1- or 3-channel networks; this one has {channels}")
    square = resize_image(img, resolution, "center-crop")
    return torch.from_numpy(image_to_array(square, channels).copy())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images of the same shape."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def w_stats(G: torch.nn.Module, num_samples: int, seed: int = 123) -> tuple[torch.Tensor, float]:
    """(w_avg [1, 1, w_dim], w_std): mean of mapped z ~ N(0, I) and the RMS distance from it."""
    device = next(G.parameters()).device
    z = torch.from_numpy(np.random.RandomState(seed).randn(num_samples, G.z_dim)).float().to(device)
    with torch.no_grad():
        w = G.mapping(z, None)[:, :1, :]  # [N, 1, w_dim]
    w_avg = w.mean(dim=0, keepdim=True)
    w_std = float(((w - w_avg).square().sum() / num_samples).sqrt())
    return w_avg, w_std


def noise_regularization(noise_bufs: list[torch.Tensor]) -> torch.Tensor | int:
    """Sum over noise maps and pyramid scales (down to 8x8) of the squared autocorrelation at
    one-pixel shifts in x and y (paper Appendix D): pushes the maps towards white noise."""
    loss = 0
    for buf in noise_bufs:
        noise = buf[None, None]  # [1, 1, H, W]
        while True:
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=3)).mean().square()
            loss = loss + (noise * torch.roll(noise, shifts=1, dims=2)).mean().square()
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return loss


def learning_rate(step: int, cfg: ProjectConfig) -> float:
    """Linear ramp-up over the first lr_rampup_length, cosine ramp-down over the last lr_rampdown_length."""
    t = step / cfg.num_steps
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown_length)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return cfg.initial_learning_rate * ramp * min(1.0, t / cfg.lr_rampup_length)


def render(G: torch.nn.Module, ws: torch.Tensor) -> torch.Tensor:
    """G.synthesis(ws) with the noise buffers as they are, on a path that back-propagates into them.

    StyleGAN2: fused_modconv=True, the plain autograd path (the cached inference path ignores
    noise gradients). StyleGAN3 has neither noise nor that option.
    """
    if is_stylegan3(G):
        return G.synthesis(ws, noise_mode="const")
    return G.synthesis(ws, noise_mode="const", fused_modconv=True)


def _for_distance(img: torch.Tensor, cfg: ProjectConfig) -> torch.Tensor:
    if img.shape[-1] > cfg.max_distance_resolution:
        size = (cfg.max_distance_resolution, cfg.max_distance_resolution)
        img = F.interpolate(img, size=size, mode="area")
    return img


def project(
    G: torch.nn.Module,
    target: torch.Tensor,
    distance: PerceptualDistance | Callable,
    cfg: ProjectConfig = ProjectConfig(),
    progress: Callable[[int, float], None] | None = None,
    keep_frames: bool = False,
) -> Projection:
    """Find ws (and noise maps) whose image matches target uint8 [C, R, R] under `distance`.

    distance.embed(img) / distance.distance(e0, e1) (see `stylegen.metrics.perceptual`), or any callable
    distance(img0, img1) -> [N], on images in ~[-1, 1]. G is left unchanged (a copy's noise
    buffers are optimised; a StyleGAN3 G has none, and its input transform is used as it is).
    progress(step, loss) is called after each step.
    """
    if G.c_dim:
        raise InputError(f"projection of conditional networks (c_dim={G.c_dim}) is not supported")
    C, R = G.img_channels, G.img_resolution
    assert target.shape == (C, R, R) and target.dtype == torch.uint8, (target.shape, target.dtype, C, R)
    G_opt = copy.deepcopy(G).eval().requires_grad_(False)
    device = next(G_opt.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    w_avg, w_std = w_stats(G_opt, cfg.w_avg_samples)
    noise_bufs = {n: b for n, b in G_opt.synthesis.named_buffers() if n.endswith("noise_const")}
    for buf in noise_bufs.values():
        buf.copy_(torch.randn(buf.shape, generator=gen).to(device)).requires_grad_(True)

    embed = getattr(distance, "embed", None)
    target_img = _for_distance(target[None].to(device, torch.float32) / 127.5 - 1, cfg)
    target_emb = embed(target_img) if embed is not None else None
    target_np = target.permute(1, 2, 0).cpu().numpy()

    def measure(images: torch.Tensor) -> torch.Tensor:
        images = _for_distance(images, cfg)
        return distance.distance(embed(images), target_emb) if embed is not None else distance(images, target_img)

    w_opt = w_avg.repeat(1, G_opt.num_ws if cfg.w_plus else 1, 1).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w_opt, *noise_bufs.values()], betas=(0.9, 0.999), lr=cfg.initial_learning_rate)
    frame_every = max(1, cfg.num_steps // max(1, cfg.num_frames))
    frames, psnr_start, dist_start = [], None, None
    for step in range(cfg.num_steps):
        # Paper App. D: w noise ramps down quadratically, the learning rate up then down.
        t = step / cfg.num_steps
        w_noise_scale = w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        w_noise = torch.randn(w_opt.shape, generator=gen).to(device) * w_noise_scale
        ws = (w_opt + w_noise).expand(-1, G_opt.num_ws, -1)  # [1, num_ws, w_dim]
        synth = render(G_opt, ws)
        dist = measure(synth)
        loss = dist.sum()
        if noise_bufs:  # StyleGAN3: no noise maps, no regulariser
            loss = loss + cfg.regularize_noise_weight * noise_regularization(list(noise_bufs.values()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for buf in noise_bufs.values():  # renormalise: zero mean, unit variance
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        if step == 0 or (keep_frames and step % frame_every == 0):
            current = to_numpy_images(synth)[0]
            if psnr_start is None:
                psnr_start, dist_start = psnr(current, target_np), float(dist.detach().sum())
            if keep_frames:
                frames.append(make_grid([target_np, current], cols=2))
        if progress is not None:
            progress(step, float(loss.detach()))
    return _finish(G, G_opt, w_opt, noise_bufs, target_np, (psnr_start, dist_start), measure, frames, keep_frames)


def _finish(G, G_opt, w_opt, noise_bufs, target_np, start, measure, frames, keep_frames) -> Projection:
    psnr_start, dist_start = start
    ws = w_opt.detach().expand(-1, G.num_ws, -1).contiguous()
    with torch.no_grad():
        final = render(G_opt, ws)
        dist_end = float(measure(final).sum())
        image = to_numpy_images(final)[0]
        stored = to_numpy_images(G.synthesis(ws, noise_mode="const"))[0]
    if keep_frames:
        frames.append(make_grid([target_np, image], cols=2))
    return Projection(
        ws=ws.float().cpu(),
        noise={n: b.detach().float().cpu() for n, b in noise_bufs.items()},
        image=image,
        image_stored_noise=stored,
        psnr_start=float("nan") if psnr_start is None else psnr_start,
        psnr=psnr(image, target_np),
        psnr_stored_noise=psnr(stored, target_np),
        distance_start=float("nan") if dist_start is None else dist_start,
        distance=dist_end,
        frames=frames,
    )


def save_gif(path: str | Path, frames: list[np.ndarray], duration_ms: int = 40) -> None:
    """Animated GIF (looping) of uint8 [H, W, C] frames, C = 1 or 3, written atomically."""
    pics = [Image.fromarray(f[:, :, 0] if f.shape[2] == 1 else f) for f in frames]
    with atomic_path(path) as tmp:
        pics[0].save(tmp, format="gif", save_all=True, append_images=pics[1:], duration=duration_ms, loop=0)


def write_projection(
    outdir: str | Path, proj: Projection, target: torch.Tensor, video: bool, network: str | Path | None = None
) -> list[Path]:
    """OUTDIR/ws.npz, proj.png, target.png, target_vs_proj.png (and proj.gif); returns the paths.

    ws.npz is `sample --save-ws`'s format (`stylegen.formats.ws_file.save_ws_file`, naming `network` when given):
    one row without a seed, plus the optimised noise maps as `noise.<synthesis buffer name>`
    float32 [r, r] (readers of the ws format ignore them)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    target_np = target.permute(1, 2, 0).cpu().numpy()
    paths = {name: outdir / name for name in ("ws.npz", "proj.png", "target.png", "target_vs_proj.png")}
    noise = {f"noise.{name}": t.numpy().astype(np.float32) for name, t in proj.noise.items()}
    save_ws_file(paths["ws.npz"], proj.ws, network=network, extra=noise)
    save_png(paths["proj.png"], proj.image)
    save_png(paths["target.png"], target_np)
    save_png(paths["target_vs_proj.png"], make_grid([target_np, proj.image], cols=2))
    if video:
        paths["proj.gif"] = outdir / "proj.gif"
        save_gif(paths["proj.gif"], proj.frames)
    return list(paths.values())
