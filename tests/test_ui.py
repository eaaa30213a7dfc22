"""`stylegen ui`: the page as a real server on 127.0.0.1, driven by headless Chromium.

Needs the `[ui]` extra (Gradio), selenium and Debian's chromium + chromium-driver (.ci/run
installs them). What a person does on the page is checked against the commands: a seed shows
`stylegen sample`'s PNG, a mix shows `stylegen mix`'s cell, a bad network file shows the CLI's
error line. A screenshot of each page state goes to test-artifacts/ (STYLEGEN_TEST_ARTIFACTS).
"""

from __future__ import annotations

import io
import os
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run
from PIL import Image

from conftest import skip_or_fail

gr = pytest.importorskip("gradio", reason="needs the [ui] extra: pip install '.[ui]'")

ARTIFACTS = Path(os.environ.get("STYLEGEN_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
TIMEOUT = 60.0  # s, for the page to react (the first render builds the plugins when they are not cached)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """The page for the bundled 'people', served on 127.0.0.1 in this process."""
    from stylegen.ui.app import build, launch
    from stylegen.ui.studio import Studio

    page = build(Studio("cpu"), "people")
    _, url = launch(page, port=_free_port(), block=False)
    assert url.startswith("http://127.0.0.1:"), url
    yield url
    page.close()


@pytest.fixture(scope="module")
def browser():
    from stylegen.ui import browser as chromium

    if not chromium.available():
        skip_or_fail("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="needs selenium: pip install '.[test]'")
    driver = chromium.chromium()
    driver.set_script_timeout(TIMEOUT)
    yield driver
    driver.quit()


def _wait(predicate, what: str):
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _img_src(driver, elem_id: str) -> str | None:
    from selenium.webdriver.common.by import By

    imgs = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
    return imgs[0].get_attribute("src") if imgs else None


def _fetch_png(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:  # 127.0.0.1 only
        return np.asarray(Image.open(io.BytesIO(r.read())))


def _set_number(driver, elem_id: str, value) -> None:
    """Type a value into the number box of a slider / number field, as a person would (then Tab)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=number]")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(value), Keys.TAB)


def _status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "status").text.strip()


def _screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _sample_png(tmp_path: Path, seed: int, *extra) -> np.ndarray:
    out = tmp_path / f"sample{seed}"
    r = run("sample", "--seeds", seed, "--outdir", out, *extra)
    assert r.exit_code == 0, r.output
    return np.asarray(Image.open(out / f"seed{seed:04d}.png"))


def _tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    tab = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name)
    tab.click()


# ---------------------------------------------------------------------------------------------
# The page in a browser


def test_page_shows_sample_pixels_for_each_seed(server, browser, tmp_path):
    browser.get(server)
    first = _wait(lambda: _img_src(browser, "image"), "the first image")
    assert np.array_equal(_fetch_png(first), _sample_png(tmp_path, 0))
    _set_number(browser, "seed", 7)
    src = _wait(lambda: (s := _img_src(browser, "image")) != first and s, "the image of seed 7")
    shown = _fetch_png(src)
    assert not np.array_equal(shown, _fetch_png(first))
    assert np.array_equal(shown, _sample_png(tmp_path, 7))
    assert "emoji-people-64.pkl" in _status(browser)
    _screenshot(browser, "ui-explore")


def test_page_direction_slider_moves_the_image(server, browser, tmp_path):
    """Direction 0 at strength 2 = `stylegen directions` + `sample --edit FILE:0:2`."""
    browser.get(server)
    before = _wait(lambda: _img_src(browser, "image"), "the first image")
    _set_number(browser, "dir0", 2)
    src = _wait(lambda: (s := _img_src(browser, "image")) != before and s, "the edited image")
    dirs = tmp_path / "dirs.npz"
    assert run("directions", "--out", dirs, "--top", 5).exit_code == 0
    expected = _sample_png(tmp_path, 0, "--edit", f"{dirs}:0:2")
    assert np.array_equal(_fetch_png(src), expected)
    assert not np.array_equal(expected, _sample_png(tmp_path, 0))


def test_page_mix_equals_the_mix_command(server, browser, tmp_path):
    browser.get(server)
    _wait(lambda: _img_src(browser, "image"), "the page")
    _tab(browser, "Mix")
    _set_number(browser, "src_seed", 3)
    _set_number(browser, "dst_seed", 4)
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "mix_btn").click()
    src = _wait(lambda: _img_src(browser, "mixed"), "the mixed image")
    out = tmp_path / "mix"
    r = run("mix", "--coarse-seeds", 3, "--fine-seeds", 4, "--split", "coarse", "--outdir", out, "--out", out / "g.png")
    assert r.exit_code == 0, r.output
    expected = np.asarray(Image.open(out / "mix-c0003-f0004.png"))
    shown = _fetch_png(src)
    assert np.array_equal(shown, expected)
    assert not np.array_equal(shown, _fetch_png(_img_src(browser, "dst_image")))
    assert "coarse styles of seed 3" in _status(browser)
    _screenshot(browser, "ui-mix")


def test_page_shows_the_cli_error_for_a_bad_network(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"this is not a network")
    cli = run("sample", "--network", bad, "--seeds", 0, "--outdir", tmp_path / "o")
    assert cli.exit_code == 2
    cli_line = cli.output.strip()
    assert cli_line.startswith("Error: ") and "\n" not in cli_line

    browser.get(server)
    first = _wait(lambda: _img_src(browser, "image"), "the page")
    box = browser.find_element(By.CSS_SELECTOR, "#network input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(bad), Keys.ENTER)
    shown = _wait(lambda: (t := _status(browser)).startswith("Error") and t, "the error line")
    assert " ".join(shown.split()) == cli_line
    assert _img_src(browser, "image") == first  # the image stays as it was
    _screenshot(browser, "ui-error")


def test_page_switches_to_a_stylegen3_file(server, browser, compat_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    net = compat_dir / "sg3t_small.pkl"
    browser.get(server)
    first = _wait(lambda: _img_src(browser, "image"), "the page")
    box = browser.find_element(By.CSS_SELECTOR, "#network input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(net), Keys.ENTER)
    src = _wait(lambda: (s := _img_src(browser, "image")) != first and s, "the StyleGAN3 image")
    assert np.array_equal(_fetch_png(src), _sample_png(tmp_path, 0, "--network", net))
    assert "StyleGAN3" in _status(browser)


def test_page_projects_an_uploaded_photo(server, browser, tmp_path):
    """Upload `sample`'s image of seed 5, project it (a few steps), and get a photo to edit."""
    from selenium.webdriver.common.by import By

    photo = tmp_path / "photo.png"
    Image.fromarray(_sample_png(tmp_path, 5)).save(photo)
    browser.get(server)
    _wait(lambda: _img_src(browser, "image"), "the page")
    _tab(browser, "Project")
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(photo))
    _set_number(browser, "steps", 60)
    browser.find_element(By.ID, "project_btn").click()
    progress = _wait(
        lambda: "Projecting" in (t := browser.find_element(By.ID, "projected").text) and t, "the live progress"
    )
    assert "/60 steps" in progress, progress  # Gradio's bar: step / steps, elapsed
    _wait(lambda: _img_src(browser, "projected"), "the projected image")
    status = _wait(lambda: "projected 1" in (t := _status(browser)) and t, "the projection's result")
    assert "PSNR" in status and "60 steps" in status
    _screenshot(browser, "ui-project")


# ---------------------------------------------------------------------------------------------
# The command


def test_ui_serves_this_machine_only_unless_told(monkeypatch):
    import stylegen.ui.app as app

    calls = []
    monkeypatch.setattr(app, "launch", lambda page, **kw: calls.append(kw))
    assert run("ui").exit_code == 0
    assert calls == [{"host": "127.0.0.1", "port": 7860, "share": False, "block": True}]
    assert run("ui", "--host", "0.0.0.0", "--port", 9000, "--share").exit_code == 0
    assert calls[1] == {"host": "0.0.0.0", "port": 9000, "share": True, "block": True}


def test_ui_bad_network_is_one_line_before_serving(monkeypatch, tmp_path):
    import stylegen.ui.app as app

    monkeypatch.setattr(app, "launch", lambda page, **kw: pytest.fail("served a page for a bad network"))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"nope")
    for args in (["--network", bad], ["--network", tmp_path / "missing.pkl"], ["--port", 0]):
        r = run("ui", *args)
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), r.output


def test_ui_without_gradio_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    monkeypatch.delitem(sys.modules, "stylegen.ui.app", raising=False)
    r = run("ui")
    assert r.exit_code == 2, r.output
    assert r.output.strip() == "Error: stylegen ui needs the page's packages (gradio): pip install 'stylegen[ui]'"
