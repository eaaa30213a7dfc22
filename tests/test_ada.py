"""The ADA controller (stylegen.training.ada.AdaptiveP): step size and clamping, convergence on a toy
discriminator, exact resume from its state dict."""

import pytest
import torch

from stylegen.training.ada import AdaptiveP


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_adaptive_p_rises_when_d_overfits_and_falls_to_zero_otherwise():
    ada = AdaptiveP(batch_size=64, p=0.5)
    step = 64 * 4 / 500_000
    ps = [ada.update(torch.full([64, 1], 3.0)) for _ in range(40)]
    assert ps[2] == 0.5 and ps[3] == pytest.approx(0.5 + step) and ps[-1] == pytest.approx(0.5 + 10 * step)
    assert ada.r_t == 1.0
    ada = AdaptiveP(batch_size=64, p=2.5 * step)
    ps = [ada.update(-torch.rand([64])) for _ in range(16)]
    assert ps[3] == pytest.approx(1.5 * step) and ps[-1] == 0.0 and ada.r_t == -1.0
    ada = AdaptiveP(batch_size=64, p=1 - step / 2)
    assert [ada.update(torch.ones(64)) for _ in range(4)][-1] == 1.0


def test_adaptive_p_settles_where_a_toy_discriminator_meets_the_target():
    # Toy D: the more augmentation, the less it overfits: real logits ~ N(2 - 4 p, 1), so
    # E[sign] = erf((2 - 4 p) / sqrt(2)) = 0.6 at p* = (2 - 0.8416) / 4 = 0.2896.
    ada = AdaptiveP(batch_size=256, speed_kimg=20)
    g = gen(13)
    for _ in range(400):
        ada.update(torch.randn([256], generator=g) + 2 - 4 * ada.p)
    assert abs(ada.p - 0.2896) < 0.03


def test_adaptive_p_state_dict_resumes_exactly():
    logits = [torch.randn([32], generator=gen(i)) + 0.5 for i in range(22)]
    full = AdaptiveP(batch_size=32, speed_kimg=1)
    expected = [full.update(t) for t in logits]
    first = AdaptiveP(batch_size=32, speed_kimg=1)
    for t in logits[:10]:  # stop mid-interval: the partial sums must survive
        first.update(t)
    state = first.state_dict()
    assert all(isinstance(v, (int, float, type(None))) for v in state.values())
    resumed = AdaptiveP(batch_size=32, speed_kimg=1)
    resumed.load_state_dict(state)
    assert [resumed.update(t) for t in logits[10:]] == expected[10:]
