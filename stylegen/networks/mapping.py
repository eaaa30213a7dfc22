"""Mapping network: latent z (+ label c) -> intermediate latent w, broadcast to ws (StyleGAN sec. 2)."""

from __future__ import annotations

import torch

from stylegen.networks.layers import FullyConnectedLayer, normalize_2nd_moment


class MappingNetwork(torch.nn.Module):
    """z [N, z_dim] (+ c [N, c_dim]) -> ws [N, num_ws, w_dim], with truncation around w_avg."""

    def __init__(
        self,
        z_dim: int,  # input latent size (0 = no latent)
        c_dim: int,  # conditioning label size (0 = unconditional)
        w_dim: int,  # intermediate latent size
        num_ws: int,  # number of ws the synthesis network consumes
        num_layers: int = 8,  # number of fully connected layers
        lr_multiplier: float = 0.01,  # learning-rate multiplier of the layers
        w_avg_beta: float = 0.995,  # decay of the running average of w (used by truncation)
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, w_dim)
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for i in range(num_layers):
            layer = FullyConnectedLayer(features[i], features[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{i}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    @classmethod
    def from_config(cls, config, num_ws: int) -> MappingNetwork:
        """The mapping of a generator config (fields z_dim, c_dim, w_dim, mapping_layers,
        mapping_lr_multiplier, w_avg_beta: GeneratorConfig and Generator3Config alike)."""
        return cls(
            z_dim=config.z_dim,
            c_dim=config.c_dim,
            w_dim=config.w_dim,
            num_ws=num_ws,
            num_layers=config.mapping_layers,
            lr_multiplier=config.mapping_lr_multiplier,
            w_avg_beta=config.w_avg_beta,
        )

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> torch.Tensor:
        """Return ws [N, num_ws, w_dim] in float32.

        truncation_psi: ws = w_avg + psi * (w - w_avg) on ws[:, :truncation_cutoff] (all when
        None). update_w_avg: track the running mean of w; only ever done in training mode.
        """
        x = self._embed(z, c)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg and self.training:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def _embed(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Normalized z, concatenated with the normalized label embedding."""
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"mapping: z must be [N, {self.z_dim}]; got {_shape(z)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"mapping: conditional network needs c [N, {self.c_dim}]; got {_shape(c)}")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


def _shape(t) -> str:
    return "None" if t is None else str(tuple(t.shape))
