"""`stylegen ui`: the page as a real server on 127.0.0.1, driven by headless Chromium.

Needs the `[ui]` extra (Gradio), selenium and Debian's chromium + chromium-driver (.ci/run
installs them). What a person does on the page is checked against the commands: a seed shows
`stylegen sample`'s PNG, a mix shows `stylegen mix`'s cell, a bad network file shows the CLI's
error line. A screenshot of each page state goes to test-artifacts/ (STYLEGEN_TEST_ARTIFACTS).
"""

from __future__ import annotations

import io
import os
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


@pytest.fixture(scope="module")
def server():
    """The page for the bundled 'people', served on 127.0.0.1 in this process."""
    from stylegen.ui.app import build, launch
    from stylegen.ui.studio import Studio

    page = build(Studio("cpu"), "people")
    _, url = launch(page, port=None, block=False)  # Gradio takes a free port from 7860 up
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
    """The src of the image in `elem_id` (read in one script: Gradio re-renders its elements)."""
    return driver.execute_script(f"const i = document.querySelector('#{elem_id} img'); return i ? i.src : null;")


def _fetch_png(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:  # 127.0.0.1 only
        return np.asarray(Image.open(io.BytesIO(r.read())))


def _retry(action):
    """Run a selenium action once more (twice at most) if Gradio re-rendered its element meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException

    for attempt in range(3):
        try:
            return action()
        except StaleElementReferenceException:
            if attempt == 2:
                raise


def _type(driver, selector: str, text) -> None:
    """Select what the field `selector` holds and type `text` over it, as a person would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def action():
        box = driver.find_element(By.CSS_SELECTOR, selector)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(text))

    _retry(action)


def _press(driver, selector: str, key: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _retry(lambda: driver.find_element(By.CSS_SELECTOR, selector).send_keys(getattr(Keys, key)))


def _click(driver, elem_id: str) -> None:
    from selenium.webdriver.common.by import By

    _retry(lambda: driver.find_element(By.ID, elem_id).click())


def _set_number(driver, elem_id: str, value) -> None:
    """A slider's or number field's box: type the value, then Tab (the change event)."""
    _type(driver, f"#{elem_id} input[type=number]", value)
    _press(driver, f"#{elem_id} input[type=number]", "TAB")


def _status(driver) -> str:
    return _text(driver, "status")


def _text(driver, elem_id: str) -> str:
    """The visible text of `elem_id` (one script: no stale element between finding and reading)."""
    return (
        driver.execute_script(f"const e = document.getElementById('{elem_id}'); return e ? e.innerText : '';") or ""
    ).strip()


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

    tabs = lambda: driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")  # noqa: E731
    _retry(lambda: next(b for b in tabs() if b.text.strip() == name).click())


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

    _click(browser, "mix_btn")
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

    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"this is not a network")
    cli = run("sample", "--network", bad, "--seeds", 0, "--outdir", tmp_path / "o")
    assert cli.exit_code == 2
    cli_line = cli.output.strip()
    assert cli_line.startswith("Error: ") and "\n" not in cli_line

    browser.get(server)
    first = _wait(lambda: _img_src(browser, "image"), "the page")
    _type(browser, "#network input", str(bad))
    _press(browser, "#network input", "ENTER")
    shown = _wait(lambda: (t := _status(browser)).startswith("Error") and t, "the error line")
    assert " ".join(shown.split()) == cli_line
    assert _img_src(browser, "image") == first  # the image stays as it was
    _screenshot(browser, "ui-error")


def test_page_switches_to_a_stylegen3_file(server, browser, compat_dir, tmp_path):

    net = compat_dir / "sg3t_small.pkl"
    browser.get(server)
    first = _wait(lambda: _img_src(browser, "image"), "the page")
    _type(browser, "#network input", str(net))
    _press(browser, "#network input", "ENTER")
    src = _wait(lambda: (s := _img_src(browser, "image")) != first and s, "the StyleGAN3 image")
    assert np.array_equal(_fetch_png(src), _sample_png(tmp_path, 0, "--network", net))
    assert "StyleGAN3" in _status(browser)


def _download(driver, elem_id: str, name: str) -> bytes:
    """The file a Save button put into the File box `elem_id`, fetched by its link."""

    def link():
        hrefs = driver.execute_script(f"return Array.from(document.querySelectorAll('#{elem_id} a'), a => a.href);")
        return next((h for h in hrefs if name in h), None)

    with urllib.request.urlopen(_wait(link, f"the link to {name}"), timeout=TIMEOUT) as r:  # 127.0.0.1 only
        return r.read()


def test_page_saves_png_ws_and_the_swapped_network(server, browser, tmp_path):

    browser.get(server)
    _wait(lambda: _img_src(browser, "image"), "the page")
    _click(browser, "save_png")
    png = np.asarray(Image.open(io.BytesIO(_download(browser, "explore_file", "seed0000.png"))))
    assert np.array_equal(png, _sample_png(tmp_path, 0))
    _click(browser, "save_ws")
    (tmp_path / "ws.npz").write_bytes(_download(browser, "explore_file", "seed0000.npz"))
    r = run("sample", "--ws", tmp_path / "ws.npz", "--outdir", tmp_path / "again")
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again" / "seed0000.png")), png)

    _tab(browser, "Mix")
    _type(browser, "#dst_network input", "faces")
    _press(browser, "#dst_network input", "ENTER")
    _click(browser, "mix_btn")
    _wait(lambda: "layers swapped with emoji-faces-64.pkl" in _status(browser), "the layer swap")
    _click(browser, "mix_save_network")
    (tmp_path / "swap.pkl").write_bytes(_download(browser, "mix_file", "-swapped.pkl"))
    out = tmp_path / "cli"
    r = run("mix", "--coarse", "people", "--fine", "faces", "--coarse-seeds", 0, "--fine-seeds", 5, "--outdir", out,
            "--out", out / "g.png", "--save-network", tmp_path / "cli.pkl")  # fmt: skip
    assert r.exit_code == 0, r.output
    a, b = (
        _sample_png(tmp_path / "a", 9, "--network", tmp_path / "swap.pkl"),
        _sample_png(tmp_path / "b", 9, "--network", tmp_path / "cli.pkl"),
    )
    assert np.array_equal(a, b)  # the page's swapped network is `mix --save-network`'s


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
    _click(browser, "project_btn")
    progress = _wait(lambda: "Projecting" in (t := _text(browser, "projected")) and t, "the live progress")
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
