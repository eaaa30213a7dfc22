"""`stylegen ui` latency: from moving a slider to the new image on screen, in headless Chromium.

    python bench/ui_latency.py [--reps 21] [--out docs/benchmarks.md]

The page is served on 127.0.0.1 in this process, as `stylegen ui` serves it, and driven by
Debian's chromium (stylegen.ui.browser). One measurement: set the number box of a slider as typing
does, then wait until the image has a new src, has loaded and the frame that paints it begins
(browser clock). Each control is changed --reps times to new values (every seed new: no cached ws); the
first change of each is a warm-up and not counted. Networks:
  people     the bundled 64 px StyleGAN2 network
  sg3t       the StyleGAN3-T fixture, 64 px (../shared/compat/sg3t_small.pkl), when present
  sg2-256    a 256 px StyleGAN2 (z = w = 512, 8 mapping layers, channel_base 16384, channel_max
             512: NVIDIA's paper256 widths) with random weights, as a snapshot
Targets (the issue): 64 px under 0.1 s, 256 px StyleGAN2 under 1 s. No peer: NVIDIA's
visualizer.py needs OpenGL and a GPU build, so nothing runs side by side.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _peer
import torch

SECTION = "## The page (stylegen ui)"
TRUNCATIONS = [round(0.05 * k, 2) for k in range(31) if k != 20]  # the slider's values but the start (1.0)
CONTROLS = {  # control -> (its number box, values)
    "seed": ("#seed input[type=number]", lambda i: 1000 + i),
    "direction 0": ("#dir0 input[type=number]", lambda i: (i % 8) - 3.5),
    "truncation": ("#psi input[type=number]", lambda i: TRUNCATIONS[i]),
}


def sg2_256(path: Path) -> Path:
    import stylegen
    from stylegen import Generator, GeneratorConfig

    torch.manual_seed(0)
    cfg = GeneratorConfig(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3, channel_base=16384, channel_max=512
    )
    G = Generator(cfg)
    stylegen.save_network(path, G=G, G_ema=G)
    return path


def networks(tmp: Path) -> dict[str, str]:
    nets = {"people": "people"}
    sg3 = Path(__file__).resolve().parents[2] / "shared" / "compat" / "sg3t_small.pkl"
    if sg3.is_file():
        nets["sg3t"] = str(sg3)
    nets["sg2-256"] = str(sg2_256(tmp / "sg2-256.pkl"))
    return nets


def measure(driver, url: str, reps: int) -> dict[str, list[float]]:
    from selenium.webdriver.common.by import By

    from stylegen.ui.browser import SLIDER_TO_SCREEN_JS

    driver.get(url)
    end = time.monotonic() + 120
    while not driver.find_elements(By.CSS_SELECTOR, "#image img") and time.monotonic() < end:
        time.sleep(0.1)
    out = {}
    for name, (selector, value) in CONTROLS.items():
        times = [
            driver.execute_async_script(SLIDER_TO_SCREEN_JS, selector, value(i), "#image") for i in range(reps + 1)
        ]
        if min(times) < 0:
            _peer.fail(f"{name}: the image did not change within 30 s")
        out[name] = times[1:]
    return out


def run(reps: int) -> tuple[dict, dict]:
    from stylegen.ui import browser
    from stylegen.ui.app import build, launch
    from stylegen.ui.studio import Studio

    if not browser.available():
        _peer.fail("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    results, shapes = {}, {}
    with tempfile.TemporaryDirectory(prefix="stylegen-bench-") as tmp:
        driver = browser.chromium()
        driver.set_script_timeout(60)
        try:
            for name, ref in networks(Path(tmp)).items():
                studio = Studio("cpu")
                net = studio.network(ref)
                shapes[name] = f"{'StyleGAN3' if net.is_stylegan3 else 'StyleGAN2'} {net.G.img_resolution} px"
                page = build(studio, ref)
                _, url = launch(page, port=None, block=False)  # a free port from 7860 up
                try:
                    results[name] = measure(driver, url, reps)
                finally:
                    page.close()
        finally:
            driver.quit()
    return results, shapes


def table(results: dict, shapes: dict, reps: int, load_before: float) -> str:
    lines = [
        SECTION,
        "",
        f"`{_peer.command_line('bench/ui_latency.py')}`",
        "",
        f"{_peer.machine_line()}. {_peer.load_note(load_before)}",
        "",
        "Slider to screen: the page served on 127.0.0.1 (`stylegen ui`'s server, in the bench's process), "
        "headless Debian Chromium on the same 2 cores, one slider's number box set as typing does, until the "
        "new image is loaded and the frame that paints it begins (browser clock). Every seed and truncation is new (a fresh "
        f"mapping); direction moves re-use the cached ws. {reps} changes per control after one warm-up; ms. Targets: "
        "64 px under 100 ms, 256 px StyleGAN2 under 1000 ms. No peer runs here: NVIDIA's visualizer.py needs "
        "OpenGL and a GPU build.",
        "",
        "| network | control | median ms | p90 ms | max ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, per_control in results.items():
        for control, ts in per_control.items():
            p90 = statistics.quantiles(ts, n=10, method="inclusive")[-1] if len(ts) > 1 else ts[0]
            lines.append(
                f"| {name} ({shapes[name]}) | {control} | **{statistics.median(ts):.0f}** | {p90:.0f} | {max(ts):.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--reps",
        type=int,
        default=21,
        help="changes per control (at most 29: the truncation slider has 30 new values)",
    )
    ap.add_argument("--out", type=Path, help="markdown file whose section is replaced")
    args = ap.parse_args()
    if not 2 <= args.reps <= len(TRUNCATIONS) - 1:
        _peer.fail(f"--reps {args.reps}: must be in 2-{len(TRUNCATIONS) - 1}")
    from stylegen.cuda_ops import load_plugin

    load_plugin("cpu")  # a first build happens here, outside the timed runs
    load_before = _peer.load_average()
    results, shapes = run(args.reps)
    text = table(results, shapes, args.reps, load_before)
    print(text)
    if args.out:
        _peer.write_section(args.out, text)


if __name__ == "__main__":
    main()
