"""`stylegen video --edit` and stylegen.editing.video's sweeps: a direction swept over the frames.

Oracles: S sin(2 pi i / N) for the strengths, `apply_direction` for the ws, `sample` /
`sample --edit` PNGs (same ws, same batch: bit for bit) for the frames at strength 0 and S.
"""

from __future__ import annotations

import cli_helpers
import numpy as np
import pytest
import torch
import video_helpers
from cli_helpers import SHARED, ok, png, tiny, usage_error

import stylegen
from stylegen.editing import directions as sefa
from stylegen.editing.mixing import ws_from_seeds
from stylegen.editing.video import EditSweep, sweep_ws
from stylegen.errors import InputError
from stylegen.formats import bundled
from stylegen.formats.ws_file import save_ws_file

SG3T = SHARED / "compat" / "sg3t_small.pkl"
nets = cli_helpers.nets  # fixture
record = video_helpers.record  # fixture


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
        for cell, seed in zip(video_helpers.cells(frames[f], 2, 64), (0, 7)):
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
