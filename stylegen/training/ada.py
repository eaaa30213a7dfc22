"""Adaptive discriminator augmentation: the controller of the augmentation probability p.

Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", sec. 3.
"""

from __future__ import annotations

import math

import torch


class AdaptiveP:
    """The ADA controller (sec. 3): nudge p so that r_t = E[sign(D(real))] tracks the target.

    Call `update(real_logits)` once per minibatch with D's logits on the reals (all processes'
    logits in a multi-process run, so that every process computes the same p). Every `interval`
    minibatches r_t is their mean sign and p moves by sign(r_t - target) * batch_size * interval
    / (speed_kimg * 1000), clamped to [0, 1]: p can cross [0, 1] in speed_kimg thousand images.
    Signs accumulate on the logits' device: one host sync per interval.
    """

    def __init__(
        self,
        batch_size: int,  # images per minibatch (the global batch)
        target: float = 0.6,  # target of r_t
        interval: int = 4,  # minibatches between adjustments
        speed_kimg: float = 500.0,  # thousands of images for p to traverse [0, 1]
        p: float = 0.0,  # initial p
    ):
        if batch_size < 1 or interval < 1 or speed_kimg <= 0:
            got = f"batch_size={batch_size}, interval={interval}, speed_kimg={speed_kimg}"
            raise ValueError(f"AdaptiveP: need batch_size >= 1, interval >= 1, speed_kimg > 0; got {got}")
        self.batch_size, self.target, self.interval, self.speed_kimg = batch_size, target, interval, speed_kimg
        self.p = float(p)
        self.r_t: float | None = None  # the last interval's estimate
        self._sum: torch.Tensor | float = 0.0
        self._count = 0  # logits accumulated
        self._batches = 0  # minibatches accumulated

    def update(self, real_logits: torch.Tensor) -> float:
        """Accumulate sign(real_logits) (any shape, one per real image); returns p after this call."""
        return self.observe(real_logits.detach().sign().sum().to(torch.float64), real_logits.numel())

    def observe(self, sign_sum: torch.Tensor | float, count: int) -> float:
        """Accumulate one minibatch given as the sum of sign(D(real)) over `count` images."""
        self._sum = self._sum + sign_sum
        self._count += count
        self._batches += 1
        if self._batches >= self.interval:
            self.r_t = float(self._sum) / max(self._count, 1)
            step = self.batch_size * self.interval / (self.speed_kimg * 1000)
            delta = math.copysign(step, self.r_t - self.target) if self.r_t != self.target else 0.0
            self.p = min(max(self.p + delta, 0.0), 1.0)
            self._sum, self._count, self._batches = 0.0, 0, 0
        return self.p

    def state_dict(self) -> dict:
        return {"p": self.p, "r_t": self.r_t, "sum": float(self._sum), "count": self._count, "batches": self._batches}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.r_t = float(state["p"]), state["r_t"]
        self._sum, self._count, self._batches = float(state["sum"]), int(state["count"]), int(state["batches"])
