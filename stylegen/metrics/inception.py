"""Inception-v3 with the pooling of the TF graph that defines FID (the 2015-12-05 network).

torchvision's `Inception3` has the same layers and parameter names, but its average pools count
the zero padding and its last block averages where the TF graph takes a max; pytorch-fid's
`FIDInception*` blocks fix that, and so do these (Mixed_5b-5d, 6b-6e: average pools excluding
padding; Mixed_7b: the same; Mixed_7c: max pool).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models import inception as tvi


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _FIDInceptionA(tvi.InceptionA):
    def _forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [b1, b5, b3, self.branch_pool(_avg_pool_no_pad(x))]


class _FIDInceptionC(tvi.InceptionC):
    def _forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        return [b1, b7, bd, self.branch_pool(_avg_pool_no_pad(x))]


class _FIDInceptionE(tvi.InceptionE):
    max_pool = False  # Mixed_7c pools with max, Mixed_7b with an average excluding padding

    def _forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_no_pad(x)
        return [b1, b3, bd, self.branch_pool(pooled)]


class _FIDInceptionEMax(_FIDInceptionE):
    max_pool = True


def fid_inception_trunk() -> tvi.Inception3:
    """torchvision Inception3 (untrained, no fc, no aux head) with FID's pooling in the Mixed blocks."""
    net = tvi.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = _FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = _FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = _FIDInceptionA(288, pool_features=64)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        setattr(net, name, _FIDInceptionC(768, channels_7x7=c7))
    net.Mixed_7b = _FIDInceptionE(1280)
    net.Mixed_7c = _FIDInceptionEMax(2048)
    net.fc = torch.nn.Identity()
    return net
