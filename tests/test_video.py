"""`stylegen video` and stylegen.editing.video: interpolation, frame counts, key frames, files.

Oracles: scipy's CubicSpline (periodic / natural) and NVIDIA's gen_video.py construction
(interp1d kind='cubic' over the keys tiled 5 times) for the curves; `stylegen sample`'s and
`stylegen mix`'s PNGs for the key frames; imageio and Pillow decoding the files. Editing sweeps:
S sin(2 pi i / N) for the strengths, `apply_direction` for the ws, `sample` / `sample --edit` PNGs
(same ws, same batch: bit for bit) for the frames at strength 0 and S.
"""

from __future__ import annotations

import cli_helpers
import numpy as np
import pytest
import scipy.interpolate
import torch
from cli_helpers import SHARED, ok, png, tiny, usage_error

import stylegen
from stylegen.editing import directions as sefa
from stylegen.editing import video as video_lib
from stylegen.editing.mixing import ws_from_seeds
from stylegen.editing.video import EditSweep, VideoConfig, frame_ws, interpolate, render_frames, sweep_ws
from stylegen.errors import InputError
from stylegen.formats import bundled, video_files
from stylegen.formats.ws_file import save_ws_file

SG3T = SHARED / "compat" / "sg3t_small.pkl"
nets = cli_helpers.nets  # fixture


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


class _Recorder:
    """Stands in for a video writer: keeps the frames (small tests only) and checks streaming."""

    def __init__(self, rendered):
        self.frames, self.rendered = [], rendered

    def append(self, frame):
        assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
        self.frames.append(frame.copy())
        assert len(self.rendered) == len(self.frames)  # written as soon as rendered


@pytest.fixture
def record(monkeypatch):
    """Run `stylegen video` in-process with its writer replaced; returns the recorder."""
    import contextlib

    rendered = []
    recorder = _Recorder(rendered)
    to_numpy = video_lib.to_numpy_images
    monkeypatch.setattr(video_lib, "to_numpy_images", lambda img: rendered.append(1) or to_numpy(img))

    @contextlib.contextmanager
    def fake_open(path, fps):
        video_files.video_format(path)
        yield recorder

    monkeypatch.setattr(video_files, "open_video", fake_open)
    return recorder


def _cells(frame, cols, size):
    return [frame[:, i * size : (i + 1) * size] for i in range(cols)]


def _close(a, b):
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_key_frames_equal_sample_people(record, tmp_path):
    ok("sample", "--seeds", "0-3", "--trunc", "0.8", "--outdir", tmp_path)
    ok("video", *"--seeds 0-3 --grid 2x1 --frames-per-seed 2 --trunc 0.8".split(), "--out", tmp_path / "v.mp4")
    frames = record.frames
    assert len(frames) == 4 and frames[0].shape == (64, 128, 3)
    for f, seeds in ((0, (0, 2)), (2, (1, 3))):  # cell 0 sweeps seeds 0-1, cell 1 seeds 2-3
        for cell, seed in zip(_cells(frames[f], 2, 64), seeds):
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


# ---------------------------------------------------------------------------------------------
# Editing sweeps (--edit)


@pytest.mark.parametrize("f", [1, 3, 5])
def test_sweep_strengths_are_a_sine_with_exact_quarters(f):
    sweep = EditSweep(k=0, strength=2.5, frames_per_seed=f)
    s, n = sweep.strengths(), 4 * f
    assert len(s) == sweep.num_frames == n
    np.testing.assert_allclose(s, 2.5 * np.sin(2 * np.pi * np.arange(n) / n), rtol=0, atol=1e-14)
    assert s[0] == s[2 * f] == 0 and s[f] == 2.5 and s[3 * f] == -2.5
    assert np.array_equal(s[1:], -s[1:][::-1])  # s_(N - i) = -s_i: symmetric about the middle
    open_ = EditSweep(k=0, strength=2.5, frames_per_seed=f, loop=False).strengths()
    assert len(open_) == n + 1 and np.array_equal(open_[:n], s) and open_[n] == 0


@pytest.mark.parametrize("kw", [{"strength": 0.0}, {"strength": -1.0}, {"strength": float("nan")},
                                {"frames_per_seed": 0}, {"k": -1}, {"cols": 0}])  # fmt: skip
def test_sweep_config_refuses_bad_values(kw):
    with pytest.raises(InputError):
        EditSweep(**{"k": 0, **kw})


def test_sweep_ws_is_apply_direction_and_strength_0_is_the_base():
    G = tiny(2)
    d = sefa.factorize(G, "all", top=3)
    base = ws_from_seeds(G, [1, 2], 0.7).detach()
    sweep = EditSweep(k=2, strength=1.5, frames_per_seed=2, cols=2, loop=False)
    frames = sweep_ws(base, d, sweep)
    assert not isinstance(frames, (list, tuple))  # a generator: one frame's ws at a time
    frames = list(frames)
    assert len(frames) == 9
    for ws, s in zip(frames, sweep.strengths()):
        assert torch.equal(ws, sefa.apply_direction(base, d, 2, float(s)))
    for i in (0, 4, 8):  # strength 0: exactly the base
        assert torch.equal(frames[i], base)
    assert not torch.equal(frames[1], base)
    with pytest.raises(InputError, match="one per cell"):
        next(sweep_ws(base[:1], d, sweep))


@pytest.fixture(scope="module")
def people_dirs(tmp_path_factory):
    """(the bundled 'people', a directions file of its middle levels, a projected-style ws file)."""
    root = tmp_path_factory.mktemp("people_dirs")
    people = str(bundled.resolve("people"))
    G = stylegen.load_network(people)
    sefa.save_directions(root / "d.npz", sefa.factorize(G, "middle", top=3, network=people))
    with torch.no_grad():
        ws = ws_from_seeds(G, [3], 0.8) + 0.2 * torch.randn(
            [1, G.num_ws, G.w_dim], generator=torch.Generator().manual_seed(0)
        )
    save_ws_file(root / "proj.npz", ws, network=people)  # seeds -1, as `project` writes
    return people, root / "d.npz", root / "proj.npz"


def test_edit_video_frames_equal_sample_and_sample_edit(record, tmp_path, people_dirs):
    people, d, _ = people_dirs
    seeds = ["--network", people, "--seeds", "0,7", "--trunc", "0.7"]
    ok("sample", *seeds, "--outdir", tmp_path / "plain")
    ok("sample", *seeds, "--edit", f"{d}:1:2.5", "--outdir", tmp_path / "plus")
    ok("sample", *seeds, "--edit", f"{d}:1:-2.5", "--outdir", tmp_path / "minus")
    ok("video", *seeds, "--edit", f"{d}:1", "--edit-strength", "2.5", "--grid", "2x1", "--frames-per-seed", "2",
       "--out", tmp_path / "v.mp4")  # fmt: skip
    frames = record.frames
    assert len(frames) == 8 and frames[0].shape == (64, 128, 3)
    for f, kind in ((0, "plain"), (2, "plus"), (4, "plain"), (6, "minus")):  # s = 0, S, 0, -S
        for cell, seed in zip(_cells(frames[f], 2, 64), (0, 7)):
            assert np.array_equal(cell, png(tmp_path / kind / f"seed{seed:04d}.png")), (f, kind)
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[2])
    ok("video", *seeds, "--edit", f"{d}:1", "--edit-strength", "2.5", "--grid", "2x1", "--frames-per-seed", "2",
       "--no-loop", "--out", tmp_path / "v.mp4")  # fmt: skip
    assert len(frames) == 8 + 9 and np.array_equal(frames[-1], frames[0])  # ends back on strength 0


def test_edit_video_gif_frame_counts(tmp_path, people_dirs):
    from PIL import Image

    people, d, _ = people_dirs
    for loop, n in (("--loop", 8), ("--no-loop", 9)):
        out = tmp_path / f"v{loop}.gif"
        ok(
            "video",
            "--network",
            people,
            "--seeds",
            "4",
            "--edit",
            f"{d}:0",
            "--frames-per-seed",
            "2",
            loop,
            "--out",
            out,
        )
        with Image.open(out) as im:
            assert im.n_frames == n and im.size == (64, 64)


def test_edit_video_on_a_projected_ws_file(record, tmp_path, people_dirs):
    people, d, proj = people_dirs
    ok("sample", "--network", people, "--ws", proj, "--outdir", tmp_path / "plain")
    ok("sample", "--network", people, "--ws", proj, "--edit", f"{d}:0:3", "--outdir", tmp_path / "plus")
    ok(
        "video",
        "--network",
        people,
        "--ws",
        proj,
        "--edit",
        f"{d}:0",
        "--frames-per-seed",
        "1",
        "--out",
        tmp_path / "v.gif",
    )
    assert len(record.frames) == 4
    assert np.array_equal(record.frames[0], png(tmp_path / "plain" / "proj0.png"))
    assert np.array_equal(record.frames[1], png(tmp_path / "plus" / "proj0.png"))
    assert np.array_equal(record.frames[2], record.frames[0])


def test_edit_video_sg3(record, tmp_path, sg3):
    net = ["--network", sg3["path"]]
    ok("directions", *net, "--levels", "coarse", "--top", "2", "--out", tmp_path / "d.npz")
    args = [*net, "--seeds", "5", "--trunc", "0.8"]
    if sg3["name"] == "sg3t_small":  # and the input transform, as sample's
        args += ["--rotate", "10", "--translate", "0.1,0"]
    ok("sample", *args, "--outdir", tmp_path / "plain")
    ok("sample", *args, "--edit", f"{tmp_path / 'd.npz'}:0:3", "--outdir", tmp_path / "plus")
    ok("video", *args, "--edit", f"{tmp_path / 'd.npz'}:0", "--frames-per-seed", "1", "--out", tmp_path / "v.gif")
    frames = record.frames
    assert len(frames) == 4
    assert np.array_equal(frames[0], png(tmp_path / "plain" / "seed0005.png"))
    assert np.array_equal(frames[1], png(tmp_path / "plus" / "seed0005.png"))
    assert np.array_equal(frames[2], frames[0]) and not np.array_equal(frames[1], frames[0])


@pytest.mark.parametrize(
    "args, match",
    [
        (["--seeds", "0,1", "--edit", "{d}:0"], "2 seed(s) in --seeds for a 1x1 grid"),
        (["--seeds", "0-3", "--grid", "2x1", "--edit", "{d}:0"], "one per cell (2)"),
        (["--ws", "{proj}", "--grid", "2x1", "--edit", "{d}:0"], "1 ws row(s) in"),
        (["--seeds", "0", "--fine-seeds", "1", "--edit", "{d}:0"], "--fine-seeds"),
        (["--seeds", "0", "--split", "fine", "--edit", "{d}:0"], "--split"),
        (["--seeds", "0", "--kind", "linear", "--edit", "{d}:0"], "--kind"),
        (["--seeds", "0", "--space", "z", "--edit", "{d}:0"], "--space"),
        (["--seeds", "0", "--edit", "{d}:3"], "directions 0-2"),
        (["--seeds", "0", "--edit", "{d}"], "FILE:K"),
        (["--seeds", "0", "--edit", "{d}:0", "--edit-strength", "0"], "--edit-strength"),
        (["--seeds", "0", "--edit", "{d}:0", "--edit-strength", "nan"], "--edit-strength"),
        (["--seeds", "0-3", "--edit-strength", "2"], "add --edit"),
        (["--ws", "{proj}"], "add --edit"),
        (["--seeds", "0", "--ws", "{proj}", "--edit", "{d}:0"], "--seeds and --ws"),
        (["--edit", "{d}:0"], "--ws"),
        (["--ws", "{proj}", "--trunc", "0.7", "--edit", "{d}:0"], "leave --trunc out"),
        (["--network", "{a}", "--seeds", "0", "--edit", "{d}:0"], "was made for emoji-people-64.pkl"),
        (["--network", "{a}", "--ws", "{proj}", "--edit", "{a_d}:0"], "do not fit the network"),
    ],
)
def test_edit_video_bad_options_are_one_line_errors(args, match, tmp_path, people_dirs, nets):
    people, d, proj = people_dirs
    if "{a_d}:0" in args:
        ok("directions", "--network", nets["a"], "--top", "2", "--out", tmp_path / "a_d.npz")
    subst = {"{d}": str(d), "{proj}": str(proj), "{a}": str(nets["a"]), "{a_d}": str(tmp_path / "a_d.npz")}
    for key, value in subst.items():
        args = [a.replace(key, value) for a in args]
    if "--network" not in args:
        args = ["--network", people, *args]
    usage_error("video", *args, "--out", tmp_path / "v.gif", match=match)
    assert not (tmp_path / "v.gif").exists()
