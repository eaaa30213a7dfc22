"""`stylegen video` and stylegen.editing.video: interpolation, frame counts, key frames, files.

Oracles: scipy's CubicSpline (periodic / natural) and NVIDIA's gen_video.py construction
(interp1d kind='cubic' over the keys tiled 5 times) for the curves; `stylegen sample`'s and
`stylegen mix`'s PNGs for the key frames; imageio and Pillow decoding the files. Editing sweeps
(`video --edit`): tests/test_video_edit.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.interpolate
import torch
import video_helpers
from cli_helpers import SHARED, ok, png, tiny, usage_error

import stylegen
from stylegen.editing.video import VideoConfig, frame_ws, interpolate, render_frames
from stylegen.errors import InputError

SG3T = SHARED / "compat" / "sg3t_small.pkl"


# ---------------------------------------------------------------------------------------------
# Interpolation curves


@pytest.mark.parametrize("k", [3, 6])
def test_loop_cubic_is_the_periodic_spline_and_nvidias_curve(k):
    y = np.random.RandomState(k).randn(k, 2, 3)
    t = np.linspace(0, k, 97)
    ours = interpolate(y, t, "cubic", loop=True)
    periodic = scipy.interpolate.CubicSpline(np.arange(k + 1), np.concatenate([y, y[:1]]), bc_type="periodic")
    np.testing.assert_allclose(ours, periodic(t), rtol=0, atol=1e-12)
    # NVIDIA: interp1d(kind='cubic') over np.arange(-2k, 3k) and 5 copies of the keys (wraps=2)
    tiled = scipy.interpolate.interp1d(np.arange(-2 * k, 3 * k), np.tile(y, [5, 1, 1]), kind="cubic", axis=0)
    # their tiled not-a-knot ends reach into the middle copy less the more keys there are
    np.testing.assert_allclose(ours, tiled(t), rtol=0, atol=1e-2 if k == 3 else 1e-4)


def test_open_cubic_is_the_natural_spline_and_linear_is_np_interp():
    y = np.random.RandomState(0).randn(4, 5)
    t = np.linspace(0, 3, 61)
    natural = scipy.interpolate.CubicSpline(np.arange(4), y, bc_type="natural")
    np.testing.assert_allclose(interpolate(y, t, "cubic", loop=False), natural(t), rtol=0, atol=1e-12)
    lin = np.stack([np.interp(t, np.arange(4), y[:, d]) for d in range(5)], axis=1)
    np.testing.assert_allclose(interpolate(y, t, "linear", loop=False), lin, rtol=0, atol=1e-12)
    # looping linear: the last segment goes back to key 0
    np.testing.assert_allclose(interpolate(y, [3.5], "linear", loop=True)[0], (y[3] + y[0]) / 2, rtol=0, atol=1e-15)


def test_keys_are_hit_exactly():
    y = np.random.RandomState(1).randn(3, 4).astype(np.float32).astype(np.float64)
    for loop in (True, False):
        out = interpolate(y, [0.0, 1.0, 2.0], "cubic", loop)
        assert np.array_equal(out, y)


# ---------------------------------------------------------------------------------------------
# Layout and frame counts


def test_layout_and_frame_counts():
    cfg = VideoConfig(seeds=tuple(range(12)), cols=3, rows=2, frames_per_seed=7)
    assert cfg.num_keys == 2 and cfg.num_frames == 14
    # NVIDIA's ws.reshape(grid_h, grid_w, num_keyframes): consecutive seeds per cell, row-major
    assert cfg.cell_seeds().tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert VideoConfig(seeds=(4, 5, 6), frames_per_seed=5, loop=False).num_frames == 11
    assert np.allclose(VideoConfig(seeds=(4, 5, 6), frames_per_seed=4).frame_times(), np.arange(12) / 4)


@pytest.mark.parametrize(
    "kw",
    [
        {"seeds": tuple(range(7)), "cols": 2, "rows": 2},  # not a multiple of 4
        {"seeds": (0, 1, 2, 3), "cols": 4},  # one key per cell: a still
        {"seeds": (0, 1), "fine_seeds": (1, 2)},  # 2 fine seeds for 1 cell
    ],
)
def test_config_refuses_bad_counts(kw):
    with pytest.raises(InputError):
        VideoConfig(**kw)


@pytest.mark.parametrize("space", ["w", "z"])
def test_loop_frames_follow_the_periodic_spline_and_wrap_to_frame_0(space):
    G = tiny(0)
    cfg = VideoConfig(seeds=(3, 4, 5, 6), cols=2, frames_per_seed=3, space=space, truncation_psi=0.7)
    frames = [ws.clone() for ws in frame_ws(G, cfg)]
    assert len(frames) == cfg.num_frames == 6
    # oracle: scipy's periodic spline through each cell's keys, evaluated at t = f / F and t = K
    if space == "w":
        keys = torch.stack(
            [G.mapping(torch.cat([stylegen.seed_to_z(s, 16)]), None, truncation_psi=0.7)[0] for s in range(3, 7)]
        )
    else:
        keys = torch.cat([stylegen.seed_to_z(s, 16) for s in range(3, 7)])
    keys = keys.double().numpy().reshape(2, 2, *keys.shape[1:])  # [cells, K, ...]
    for cell in range(2):
        y = keys[cell]
        spline = scipy.interpolate.CubicSpline(np.arange(3), np.concatenate([y, y[:1]]), bc_type="periodic")
        for f, ws in enumerate(frames + [frames[0]]):  # the frame after the last is frame 0
            want = torch.from_numpy(spline(f / 3)).float()
            if space == "z":
                want = G.mapping(want[None], None, truncation_psi=0.7)[0]
            torch.testing.assert_close(ws[cell], want, rtol=1e-5, atol=1e-5)


def test_frames_are_rendered_one_at_a_time(monkeypatch):
    """Streaming: the k-th frame is synthesized only after frame k - 1 was taken; never a list."""
    G = tiny(1)
    calls = []
    synthesis = G.synthesis.forward
    monkeypatch.setattr(G.synthesis, "forward", lambda *a, **kw: calls.append(1) or synthesis(*a, **kw))
    cfg = VideoConfig(seeds=(0, 1, 2), frames_per_seed=10)
    frames = render_frames(G, cfg)
    assert not calls and not isinstance(frames, (list, tuple))
    taken = 0
    for frame in frames:
        taken += 1
        assert len(calls) == taken and frame.shape == (16, 16, 3) and frame.dtype == np.uint8
    assert taken == 30


# ---------------------------------------------------------------------------------------------
# The command


record = video_helpers.record  # fixture


def _close(a, b):
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_key_frames_equal_sample_people(record, tmp_path):
    ok("sample", "--seeds", "0-3", "--trunc", "0.8", "--outdir", tmp_path)
    ok("video", *"--seeds 0-3 --grid 2x1 --frames-per-seed 2 --trunc 0.8".split(), "--out", tmp_path / "v.mp4")
    frames = record.frames
    assert len(frames) == 4 and frames[0].shape == (64, 128, 3)
    for f, seeds in ((0, (0, 2)), (2, (1, 3))):  # cell 0 sweeps seeds 0-1, cell 1 seeds 2-3
        for cell, seed in zip(video_helpers.cells(frames[f], 2, 64), seeds):
            _close(cell, png(tmp_path / f"seed{seed:04d}.png"))
    assert not np.array_equal(frames[1], frames[0])


def test_key_frames_equal_sample_sg3_transformed(record, tmp_path):
    args = ["--network", SG3T, "--translate", "0.1,-0.2", "--rotate", "15"]
    ok("sample", "--seeds", "5,6", *args, "--outdir", tmp_path)
    ok("video", "--seeds", "5,6", *args, "--frames-per-seed", "2", "--no-loop", "--out", tmp_path / "v.gif")
    assert len(record.frames) == 3
    _close(record.frames[0], png(tmp_path / "seed0005.png"))
    _close(record.frames[2], png(tmp_path / "seed0006.png"))


def test_mixing_video_key_frames_equal_mix_cells(record, tmp_path):
    ok("mix", "--coarse-seeds", "0,1", "--fine-seeds", "7", "--split", "coarse", "--outdir", tmp_path)
    ok("video", *"--seeds 0,1 --fine-seeds 7 --split coarse --frames-per-seed 2".split(), "--out", tmp_path / "v.mp4")
    _close(record.frames[0], png(tmp_path / "mix-c0000-f0007.png"))
    _close(record.frames[2], png(tmp_path / "mix-c0001-f0007.png"))


def test_mp4_and_gif_decode(tmp_path):
    import imageio.v2 as imageio
    from PIL import Image

    ok("sample", "--seeds", "0", "--outdir", tmp_path)
    ok("video", "--seeds", "0-3", "--grid", "2x1", "--frames-per-seed", "3", "--out", tmp_path / "v.mp4")
    reader = imageio.get_reader(tmp_path / "v.mp4")
    frames = list(reader.iter_data())  # list(reader) trusts its len(), inf for ffmpeg
    assert len(frames) == 6 and frames[0].shape == (64, 128, 3)
    assert reader.get_meta_data()["fps"] == 30
    assert np.abs(frames[0][:, :64].astype(int) - png(tmp_path / "seed0000.png")).mean() < 8  # lossy H.264

    ok("video", "--seeds", "0-2", "--frames-per-seed", "2", "--fps", "20", "--no-loop", "--out", tmp_path / "v.gif")
    with Image.open(tmp_path / "v.gif") as im:
        assert im.n_frames == 5 and im.size == (64, 64)
        assert im.info["loop"] == 0 and im.info["duration"] == 50
        first = np.asarray(im.convert("RGB"))
    assert np.abs(first.astype(int) - png(tmp_path / "seed0000.png")).mean() < 4  # 256-colour palette


@pytest.mark.parametrize(
    "args, match",
    [
        (["--seeds", "0-6", "--grid", "2x2"], "7 seed(s) for a 2x2 grid"),
        (["--seeds", "0-3", "--grid", "4"], "--grid"),
        (["--seeds", "0-3", "--out", "{tmp}/v.avi"], "use a .mp4 or .gif"),
        (["--seeds", "0-3", "--translate", "0.1,0"], "only StyleGAN3 networks"),
        (["--seeds", "0-3", "--split", "fine"], "add --fine-seeds"),
        (["--seeds", "0-3", "--fine-seeds", "1,2"], "2 fine seed(s)"),
        (["--seeds", "0-3", "--fine-seeds", "1", "--split", "ws:0-99"], "--split"),
    ],
)
def test_bad_options_are_one_line_errors(args, match, tmp_path):
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args = [*args, "--out", tmp_path / "v.mp4"]
    usage_error("video", *args, match=match)
    assert not list(tmp_path.iterdir())  # nothing written
