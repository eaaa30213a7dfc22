"""StyleGAN2 losses: non-saturating logistic loss, R1, path-length regularisation, style mixing.

Karras et al. 2020 ("Analyzing and Improving the Image Quality of StyleGAN"): sec. 2.2 (R1 with
lazy regularisation), sec. 3.2 (path-length regularisation); Karras et al. 2019 sec. 3.1
(mixing regularisation). StyleGAN3 (Karras et al. 2021) trains with the same loss, without
path-length and mixing regularisation, plus a blur of D's inputs early on (-R) and the
layers' input-magnitude EMAs. Each phase returns the loss to backpropagate, scaled by `gain`,
and the statistics to log; the training loop owns optimizers and gradient averaging.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stylegen.ops import filter2d


@dataclass(frozen=True)
class LossConfig:
    r1_gamma: float = 10.0  # R1 weight (gamma)
    pl_weight: float = 2.0  # path-length weight (0 = off)
    pl_batch_shrink: int = 2  # path-length minibatch = batch // shrink
    pl_decay: float = 0.01  # decay of the running mean path length
    style_mixing_prob: float = 0.9  # probability of mixing two latents per minibatch
    blur_init_sigma: float = 0.0  # Gaussian blur of D's inputs at nimg 0 (px; 0 = off) ...
    blur_fade_kimg: float = 0.0  # ... fading linearly to 0 over this many kimg


def blur_sigma(cfg: LossConfig, nimg: int) -> float:
    """The blur of D's inputs after `nimg` images: init_sigma * max(1 - nimg / fade, 0)."""
    if cfg.blur_fade_kimg <= 0:
        return 0.0
    return max(1 - nimg / (cfg.blur_fade_kimg * 1e3), 0) * cfg.blur_init_sigma


def blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """img [N, C, H, W] filtered with a separable Gaussian of floor(3 sigma) taps each side.

    NVIDIA's form (stylegan3 training/loss.py): taps 2 ** -(x / sigma) ** 2 (base 2, so the
    standard deviation is sigma / sqrt(2 ln 2)), normalised to sum 1, zero padding, same size.
    """
    radius = int(np.floor(sigma * 3))
    if radius <= 0:
        return img
    f = torch.arange(-radius, radius + 1, device=img.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    return filter2d(img, f / f.sum())


def magnitude_emas(G) -> list[torch.Tensor]:
    """The `magnitude_ema` buffers of a StyleGAN3 generator in layer order (none for StyleGAN2)."""
    return [b for name, b in G.named_buffers() if name.endswith(".magnitude_ema")]


class StyleGAN2Loss:
    """Phases 'Gmain', 'Greg', 'Dmain', 'Dreg' over G, D and an optional augmentation pipe."""

    def __init__(self, G, D, cfg: LossConfig, augment_pipe=None):
        self.G, self.D, self.cfg, self.augment_pipe = G, D, cfg, augment_pipe
        self.pl_mean = torch.zeros([])
        self.blur_sigma = 0.0  # set by the training loop each step (`blur_sigma`)

    def run_G(
        self, z: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # w_avg is updated by the training loop once per step from the whole (global) batch.
        ws = self.G.mapping(z, c, update_w_avg=False)
        if self.cfg.style_mixing_prob > 0 and ws.shape[1] > 1:
            # Mixing regularisation: from a random layer on, use the styles of a second latent.
            cutoff = int(torch.randint(1, ws.shape[1], []))
            if float(torch.rand([])) < self.cfg.style_mixing_prob:
                ws2 = self.G.mapping(torch.randn_like(z), c, update_w_avg=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        if update_emas:  # StyleGAN3: each layer tracks the magnitude of its input
            return self.G.synthesis(ws, noise_mode="random", update_emas=True), ws
        return self.G.synthesis(ws, noise_mode="random"), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        img = blur(img, self.blur_sigma)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    def g_main(self, z, c, gain: float) -> dict:
        """Non-saturating loss: maximise log sigmoid(D(G(z)))."""
        img, ws = self.run_G(z, c)
        logits = self.run_D(img, c)
        loss = F.softplus(-logits)
        loss.mean().mul(gain).backward()
        return {"loss_G": loss.detach().mean(), "w_mean": ws[:, 0].detach().mean(0)}

    def g_reg(self, z, c, gain: float) -> dict:
        """Path-length penalty around pl_mean; the loop updates pl_mean from the global batch."""
        n = max(z.shape[0] // self.cfg.pl_batch_shrink, 1)
        img, ws = self.run_G(z[:n], c[:n] if c is not None else None)
        noise = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad(outputs=[(img * noise).sum()], inputs=[ws], create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()
        penalty = (lengths - self.pl_mean).square()
        (img[:, 0, 0, 0] * 0 + penalty * self.cfg.pl_weight).mean().mul(gain).backward()
        return {"pl_penalty": penalty.detach().mean(), "pl_len_mean": lengths.detach().mean()}

    def d_main(self, real, real_c, z, c, gain: float, r1: bool = False) -> dict:
        """Minimise D(G(z)), maximise D(real); with r1, add the R1 penalty on the reals."""
        fake, magnitudes = self._fakes_for_d(z, c)
        fake_logits = self.run_D(fake, c)
        F.softplus(fake_logits).mean().mul(gain).backward()
        stats = self.d_real(real, real_c, gain, main=True, r1=r1)
        stats["loss_D"] = stats.pop("loss_Dreal") + F.softplus(fake_logits.detach()).mean()
        if magnitudes is not None:
            stats["magnitude_ema"] = magnitudes
        return stats

    @torch.no_grad()
    def _fakes_for_d(self, z, c) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G(z) as NVIDIA's D phase makes it: a StyleGAN3 G updates each layer's magnitude_ema
        (update_emas=True) before the layer uses it. The updated values come back as a statistic
        [num_layers] and G's buffers are put back, so every chunk of the batch starts from the
        same values; the loop sets the buffers to the batch average once per step (one chunk:
        exactly NVIDIA's update; the half-life 0.5 ** (batch / 20000) assumes one per step)."""
        emas = magnitude_emas(self.G)
        if not emas:
            return self.run_G(z, c)[0], None
        before = [b.clone() for b in emas]
        fake, _ = self.run_G(z, c, update_emas=True)
        after = torch.stack([b.clone() for b in emas])
        for b, old in zip(emas, before):
            b.copy_(old)
        return fake, after

    def d_real(self, real, real_c, gain: float, main: bool, r1: bool) -> dict:
        real = real.detach().requires_grad_(r1)
        logits = self.run_D(real, real_c)
        loss = F.softplus(-logits) if main else logits * 0
        stats = {"loss_Dreal": loss.detach().mean(), "real_sign": logits.detach().sign().mean()}
        if r1:
            (grads,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[real], create_graph=True)
            penalty = grads.square().sum([1, 2, 3])
            loss = loss + penalty * (self.cfg.r1_gamma / 2)
            stats["r1_penalty"] = penalty.detach().mean()
        (logits * 0 + loss).mean().mul(gain).backward()
        return stats

    def d_reg(self, real, real_c, gain: float) -> dict:
        """R1 alone (lazy regularisation phase)."""
        stats = self.d_real(real, real_c, gain, main=False, r1=True)
        stats.pop("loss_Dreal")
        return stats
