"""StyleGAN2 losses: non-saturating logistic loss, R1, path-length regularisation, style mixing.

Karras et al. 2020 ("Analyzing and Improving the Image Quality of StyleGAN"): sec. 2.2 (R1 with
lazy regularisation), sec. 3.2 (path-length regularisation); Karras et al. 2019 sec. 3.1
(mixing regularisation). Each phase returns the loss to backpropagate, scaled by `gain`, and
the statistics to log; the training loop owns optimizers and gradient averaging.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossConfig:
    r1_gamma: float = 10.0  # R1 weight (gamma)
    pl_weight: float = 2.0  # path-length weight (0 = off)
    pl_batch_shrink: int = 2  # path-length minibatch = batch // shrink
    pl_decay: float = 0.01  # decay of the running mean path length
    style_mixing_prob: float = 0.9  # probability of mixing two latents per minibatch


class StyleGAN2Loss:
    """Phases 'Gmain', 'Greg', 'Dmain', 'Dreg' over G, D and an optional augmentation pipe."""

    def __init__(self, G, D, cfg: LossConfig, augment_pipe=None):
        self.G, self.D, self.cfg, self.augment_pipe = G, D, cfg, augment_pipe
        self.pl_mean = torch.zeros([])

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        # w_avg is updated by the training loop once per step from the whole (global) batch.
        ws = self.G.mapping(z, c, update_w_avg=False)
        if self.cfg.style_mixing_prob > 0 and ws.shape[1] > 1:
            # Mixing regularisation: from a random layer on, use the styles of a second latent.
            cutoff = int(torch.randint(1, ws.shape[1], []))
            if float(torch.rand([])) < self.cfg.style_mixing_prob:
                ws2 = self.G.mapping(torch.randn_like(z), c, update_w_avg=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return self.G.synthesis(ws, noise_mode="random"), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
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
        with torch.no_grad():
            fake, _ = self.run_G(z, c)
        fake_logits = self.run_D(fake, c)
        F.softplus(fake_logits).mean().mul(gain).backward()
        stats = self.d_real(real, real_c, gain, main=True, r1=r1)
        stats["loss_D"] = stats.pop("loss_Dreal") + F.softplus(fake_logits.detach()).mean()
        return stats

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
