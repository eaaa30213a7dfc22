"""Metric maths against known values (KID, precision/recall, FID, PPL), the dataset feature cache,
the metric registry and the offline metric end to end (library and `stylegen metrics`)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import stylegen
from stylegen.cli.main import main
from stylegen.metrics import METRICS, dataset_stats, fid, kid, parse_metric_names, ppl, pr, runner
from stylegen.metrics.features import FeatureNet
from stylegen.metrics.frechet import feature_stats, frechet_distance


@pytest.fixture(autouse=True)
def _ref_ops(monkeypatch):
    monkeypatch.setenv("STYLEGEN_OPS", os.environ.get("STYLEGEN_OPS", "ref"))


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="stylegen")


# ---------------------------------------------------------------------------------------------
# KID


def test_mmd2_of_constant_sets_is_the_kernel_formula():
    u, v = np.full([6, 4], 0.5), np.full([6, 4], -1.0)

    def k(a, b):
        return (a @ b / 4 + 1) ** 3

    expected = k(u[0], u[0]) + k(v[0], v[0]) - 2 * k(u[0], v[0])
    assert kid.mmd2_unbiased(u, v) == pytest.approx(expected, rel=1e-12)
    assert kid.kid(u, v, num_subsets=3, max_subset_size=4) == pytest.approx(expected, rel=1e-12)


def test_mmd2_is_unbiased_for_one_distribution():
    # E[MMD^2_u] = 0 for two samples of one distribution (small samples, where bias would show).
    rng = np.random.RandomState(0)
    vals = np.array([kid.mmd2_unbiased(rng.randn(8, 2), rng.randn(8, 2)) for _ in range(3000)])
    assert abs(vals.mean()) < 3 * vals.std() / np.sqrt(len(vals))
    # Including the diagonal (the V-statistic) is biased upwards, clearly so at this size.
    biased = []
    for _ in range(300):
        x, y = rng.randn(8, 2), rng.randn(8, 2)
        k = kid.polynomial_kernel
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    assert np.mean(biased) > 10 * vals.std() / np.sqrt(len(vals))


def test_kid_matches_the_population_mmd_in_1d():
    # D = 1: k(x, y) = (xy + 1)^3 = x^3 y^3 + 3 x^2 y^2 + 3 x y + 1, so MMD^2 between P and Q is
    # (m3P - m3Q)^2 + 3 (m2P - m2Q)^2 + 3 (m1P - m1Q)^2 with raw moments m_j. P = U(-1, 1):
    # m1 = 0, m2 = 1/3, m3 = 0; Q = P + mu: m1 = mu, m2 = 1/3 + mu^2, m3 = mu + mu^3.
    mu = 0.5
    exact = (mu + mu**3) ** 2 + 3 * (mu**2) ** 2 + 3 * mu**2
    rng = np.random.RandomState(1)
    gen, real = rng.uniform(-1, 1, [20000, 1]) + mu, rng.uniform(-1, 1, [20000, 1])
    assert kid.kid(gen, real, num_subsets=100, max_subset_size=500) == pytest.approx(exact, rel=0.08)


def test_kid_refuses_bad_shapes():
    with pytest.raises(ValueError, match="features"):
        kid.kid(np.zeros([4, 3]), np.zeros([4, 2]))


# ---------------------------------------------------------------------------------------------
# Precision / recall


def test_precision_recall_identical_sets():
    x = np.random.RandomState(0).randn(50, 8)
    assert pr.precision_recall(x, x.copy(), k=3) == (1.0, 1.0)


def test_precision_recall_disjoint_far_sets():
    rng = np.random.RandomState(0)
    real, gen = rng.randn(40, 8), rng.randn(40, 8) + 100
    assert pr.precision_recall(real, gen, k=3) == (0.0, 0.0)


def test_precision_recall_half_covered():
    # Half the generated samples are real samples, half are far away: precision 1/2. The
    # generated manifold then has radii reaching the real points it contains, and the real
    # points are 10 spread clusters of which the generator covers 5: recall 1/2.
    rng = np.random.RandomState(0)
    centers = np.arange(10)[:, None] * np.eye(1, 4) * 1000  # [10, 4]
    real = (centers[:, None] + rng.randn(10, 8, 4)).reshape(-1, 4)  # 8 points per cluster
    gen = np.concatenate([real[:40], real[:40] + 1e6])  # clusters 0-4 exactly, and far copies
    precision, recall = pr.precision_recall(real, gen, k=3)
    assert precision == 0.5 and recall == 0.5


def test_kth_radii_is_the_kth_neighbour():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert pr.kth_radii(x, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert pr.kth_radii(x, k=3).tolist() == [7.0, 6.0, 4.0, 7.0]


# ---------------------------------------------------------------------------------------------
# FID


def test_fid_is_the_frechet_distance_of_feature_stats():
    rng = np.random.RandomState(0)
    g, r = rng.randn(300, 5) * 1.5, rng.randn(200, 5) + 0.3
    expected = frechet_distance(*feature_stats(g), *feature_stats(r))
    assert fid.frechet_of_features(g, r) == expected
    assert fid.frechet_of_features(g, g) == pytest.approx(0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0.5, 0, 3])  # same covariance: FD = |shift|^2
    assert fid.frechet_of_features(g + shift, g) == pytest.approx(np.square(shift).sum(), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# PPL


def pixel_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).square().mean(dim=[1, 2, 3])


def test_ppl_is_zero_when_synthesis_ignores_w(make_generator):
    G = make_generator(0)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("affine.weight"):
                p.zero_()  # styles = affine bias, whatever w is
    lengths = ppl.path_lengths(G, pixel_distance, num_samples=6, batch_size=4)
    assert lengths.shape == (6,) and np.all(lengths == 0)
    assert ppl.ppl_from_lengths(lengths) == 0


def test_ppl_is_finite_positive_and_leaves_g_alone(make_generator):
    G = make_generator(0)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    lengths = ppl.path_lengths(G, pixel_distance, num_samples=5, batch_size=2, seed=3)
    assert lengths.shape == (5,) and np.all(np.isfinite(lengths)) and np.all(lengths > 0)
    again = ppl.path_lengths(G, pixel_distance, num_samples=5, batch_size=2, seed=3)
    np.testing.assert_array_equal(lengths, again)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    full = ppl.path_lengths(G, pixel_distance, num_samples=3, sampling="full")
    assert np.all(np.isfinite(full))


def test_ppl_trims_percentiles():
    # NVIDIA: keep lo <= x <= hi with lo = 1st percentile ('lower'), hi = 99th ('higher').
    lengths = np.concatenate([np.full(990, 1.0), np.full(5, 1e9), np.full(5, -1e9)])
    assert ppl.ppl_from_lengths(lengths) == 1.0


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_names():
    assert {"fid50k_full", "kid50k_full", "pr50k3_full", "ppl2_wend", "fd_effnet_lite0"} <= set(METRICS)
    assert parse_metric_names("fid50k_full, kid50k_full,fid50k_full") == ["fid50k_full", "kid50k_full"]
    with pytest.raises(ValueError, match="fid_bogus"):
        parse_metric_names("fid50k_full,fid_bogus")
    assert not METRICS["fd_effnet_lite0"].published and METRICS["fid50k_full"].published


def test_pr_results_are_named_as_nvidia():
    x = np.random.RandomState(0).randn(20, 3)
    res = runner._results(METRICS["pr50k3_full"], x, x)
    assert res == {"pr50k3_full_precision": 1.0, "pr50k3_full_recall": 1.0}


# ---------------------------------------------------------------------------------------------
# Dataset features and their cache


class CountingNet(FeatureNet):
    """Mean colour as a 3-D feature; counts the images it saw."""

    def __init__(self):
        super().__init__("counting", 3, "counting:v1", False, "test")
        self.seen = 0

    def features(self, x):
        self.seen += len(x)
        return x.float().mean(dim=[2, 3])


def write_images(folder, n, size=16, seed=0, gray=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(n):
        shape = [size, size] if gray else [size, size, 3]
        Image.fromarray(rng.randint(0, 256, shape, dtype=np.uint8)).save(folder / f"img{i:03d}.png")
    return folder


def test_dataset_features_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGEN_CACHE", str(tmp_path / "cache"))
    data = write_images(tmp_path / "data", 5)
    net = CountingNet()
    a = dataset_stats.dataset_features(data, net, 16, batch=2)
    assert a.shape == (5, 3) and net.seen == 5
    b = dataset_stats.dataset_features(data, net, 16, batch=2)
    np.testing.assert_array_equal(a, b)
    assert net.seen == 5  # served from the cache
    assert len(list((tmp_path / "cache" / "dataset-features").glob("*.npz"))) == 1
    first3 = dataset_stats.dataset_features(data, net, 16, max_items=3)
    np.testing.assert_array_equal(first3, a[:3])
    h = dataset_stats.content_hash(data)
    Image.fromarray(np.zeros([16, 16, 3], np.uint8)).save(data / "img002.png")  # same name, new bytes
    assert dataset_stats.content_hash(data) != h
    c = dataset_stats.dataset_features(data, net, 16)
    assert net.seen == 5 + 3 + 5 and np.all(c[2] == 0)


def test_dataset_features_gray_images_and_wrong_size(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGEN_CACHE", str(tmp_path / "cache"))
    data = write_images(tmp_path / "gray", 2, gray=True)
    feats = dataset_stats.dataset_features(data, CountingNet(), 16, use_cache=False)
    assert np.allclose(feats[:, 0], feats[:, 1])  # grayscale replicated to RGB
    with pytest.raises(ValueError, match="img000.png is 16x16.*makes 32x32.*stylegen dataset"):
        dataset_stats.dataset_features(data, CountingNet(), 32, use_cache=False)


# ---------------------------------------------------------------------------------------------
# The offline metric, end to end


@pytest.fixture
def network_file(tmp_path, make_generator):
    path = tmp_path / "G.pkl"
    G = make_generator(0)
    stylegen.save_network(path, G=G, G_ema=G)
    return path


def test_fd_effnet_lite0_library(tmp_path, monkeypatch, make_generator):
    monkeypatch.setenv("STYLEGEN_CACHE", str(tmp_path / "cache"))
    data = write_images(tmp_path / "data", 4)
    opts = runner.MetricOptions(num=4, batch=4)
    (rec,) = runner.run_metrics(make_generator(0), data, ["fd_effnet_lite0"], opts)
    assert rec["metric"] == "fd_effnet_lite0" and rec["num_gen"] == 4 and rec["num_real"] == 4
    assert np.isfinite(rec["results"]["fd_effnet_lite0"]) and rec["results"]["fd_effnet_lite0"] > 0
    assert rec["comparable"] is False and "NOT comparable" in rec["weights"]


def test_metrics_cli_offline_writes_jsonl(tmp_path, monkeypatch, network_file):
    monkeypatch.setenv("STYLEGEN_CACHE", str(tmp_path / "cache"))
    data = write_images(tmp_path / "data", 3)
    args = ["metrics", "--network", network_file, "--data", data, "--metrics", "fd_effnet_lite0"]
    r = run(*args, "--num", 3, "--outdir", tmp_path / "out", "--device", "cpu")
    assert r.exit_code == 0, r.output
    r = run(*args, "--num", 3, "--outdir", tmp_path / "out", "--device", "cpu")  # appends
    lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert len(recs) == 2 and recs[0]["results"] == recs[1]["results"]
    assert recs[0]["network"] == str(network_file) and recs[0]["data"] == str(data)
    r = run(*args, "--num", 3, "--device", "cpu")  # stdout: exactly one JSON line
    assert r.exit_code == 0
    (line,) = [s for s in r.stdout.splitlines() if s.startswith("{")]
    assert json.loads(line)["results"] == recs[0]["results"]


def test_metrics_cli_usage_errors(tmp_path, network_file):
    r = run("metrics", "--network", network_file, "--data", tmp_path, "--metrics", "fid_bogus")
    assert r.exit_code == 2 and "fid_bogus" in r.output and len(r.output.strip().splitlines()) == 1
    r = run("metrics", "--network", network_file, "--metrics", "fd_effnet_lite0")
    assert r.exit_code == 2 and "--data is required" in r.output
