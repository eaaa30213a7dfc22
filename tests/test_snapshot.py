"""Our snapshot format: round trip, atomic writes, and one-line errors for every bad file."""

from __future__ import annotations

import pickle
import random

import pytest
import torch

from stylegen import NetworkLoadError, load_network, load_snapshot, save_network


@pytest.fixture
def pair(make_generator):
    """(G, G_ema): same architecture, different weights."""
    return make_generator(seed=1, c_dim=2), make_generator(seed=2, c_dim=2)


def _outputs(G):
    torch.manual_seed(0)
    z, c = torch.randn([3, G.z_dim]), torch.eye(G.c_dim)[[0, 1, 0]]
    with torch.no_grad():
        return G(z, c, truncation_psi=0.7)


def test_round_trip(tmp_path, pair):
    G, G_ema = pair
    G_ema.mapping.w_avg.copy_(torch.randn([G_ema.w_dim]))
    path = tmp_path / "net.pkl"
    training = {"kimg": 12, "augment_p": 0.25, "rng": torch.get_rng_state()}
    save_network(path, G=G, G_ema=G_ema, training=training, extra={"note": "hi"})
    for which, net in (("G", G), ("G_ema", G_ema)):
        loaded = load_network(path, which=which)
        assert loaded.config == net.config
        assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
        assert torch.equal(_outputs(loaded), _outputs(net))
        for k, v in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
    data = load_snapshot(path)
    assert data["format"] == "stylegen" and data["version"] == 1 and "D" not in data
    assert data["training"]["kimg"] == 12 and torch.equal(data["training"]["rng"], training["rng"])
    assert data["extra"] == {"note": "hi"}
    assert set(data["G"]) == {"config", "state"} and isinstance(data["G"]["config"], dict)
    assert torch.load(path, weights_only=True)["G_ema"]["config"] == G_ema.config.to_dict()


def test_default_is_g_ema_and_missing_networks(tmp_path, pair):
    _G, G_ema = pair
    path = tmp_path / "only_ema.pkl"
    save_network(path, G_ema=G_ema)
    assert torch.equal(_outputs(load_network(path)), _outputs(G_ema))
    with pytest.raises(NetworkLoadError, match="has no 'G' network \\(has: G_ema\\)"):
        load_network(path, which="G")
    with pytest.raises(NetworkLoadError, match="has no 'D' network"):
        load_network(path, which="D")
    with pytest.raises(NetworkLoadError, match="which='X'"):
        load_network(path, which="X")


def test_save_requires_a_config(tmp_path):
    with pytest.raises(TypeError, match="config"):
        save_network(tmp_path / "x.pkl", G=torch.nn.Linear(2, 2))


def test_atomic_write_survives_a_crash(tmp_path, pair, monkeypatch):
    G, G_ema = pair
    path = tmp_path / "net.pkl"
    save_network(path, G_ema=G)
    before = path.read_bytes()

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_network(path, G_ema=G_ema)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert torch.equal(_outputs(load_network(path)), _outputs(G))
    assert [p.name for p in tmp_path.iterdir()] == ["net.pkl"]


def _assert_one_line(e, path):
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg, msg


def test_truncated_snapshot(tmp_path, pair):
    path = tmp_path / "net.pkl"
    save_network(path, G_ema=pair[1])
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        path.write_bytes(data[:cut])
        with pytest.raises(NetworkLoadError) as e:
            load_network(path)
        _assert_one_line(e, path)


@pytest.mark.parametrize("head", [b"", b"\x80", b"PK\x03\x04"], ids=["random", "pickle-like", "zip-like"])
def test_random_bytes(tmp_path, head):
    rng = random.Random(0)
    path = tmp_path / "noise.pkl"
    body = bytes(rng.randrange(256) for _ in range(4096))
    path.write_bytes(head + (body if head or body[0] not in (0x80, 0x50) else b"x" + body))
    with pytest.raises(NetworkLoadError) as e:
        load_network(path)
    _assert_one_line(e, path)


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda p: p.write_bytes(pickle.dumps({"a": 1})), "not a network pickle"),
        (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "not a network pickle"),
        (lambda p: torch.save(torch.zeros(3), p), "not a stylegen snapshot"),
        (lambda p: torch.save({"a": 1}, p), "not a stylegen snapshot"),
        (lambda p: torch.save({"format": "stylegen", "version": 9}, p), "version 9"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("hello"), "not a network file"),
    ],
    ids=["dict-pickle", "list-pickle", "tensor", "dict", "version", "empty", "text"],
)
def test_not_a_network(tmp_path, write, match):
    path = tmp_path / "thing.pkl"
    write(path)
    with pytest.raises(NetworkLoadError, match=match) as e:
        load_network(path)
    _assert_one_line(e, path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pkl"
    with pytest.raises(NetworkLoadError, match="no such file") as e:
        load_network(path)
    _assert_one_line(e, path)
    with pytest.raises(NetworkLoadError):
        load_snapshot(path)


def test_bad_config_or_state(tmp_path, pair):
    path = tmp_path / "net.pkl"
    save_network(path, G_ema=pair[1])
    data = load_snapshot(path)
    data["G_ema"]["config"]["bogus"] = 1
    torch.save(data, path)
    with pytest.raises(NetworkLoadError, match="unknown keys bogus") as e:
        load_network(path)
    _assert_one_line(e, path)
    del data["G_ema"]["config"]["bogus"]
    data["G_ema"]["state"].pop("synthesis.b4.const")
    torch.save(data, path)
    with pytest.raises(NetworkLoadError, match="synthesis.b4.const") as e:
        load_network(path)
    _assert_one_line(e, path)


def test_plain_pickle_is_not_our_snapshot(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"G_ema": None}))
    with pytest.raises(NetworkLoadError, match="not a stylegen snapshot"):
        load_snapshot(path)
