"""Screenshots of `stylegen ui` for docs/ui.md and the README, from a real (headless) browser.

    python scripts/ui_screenshots.py [--outdir docs/img]

Serves the page for the bundled 'people' on 127.0.0.1 and drives Debian's chromium
(stylegen.ui.browser): Explore with direction 0 moved (ui_explore.png), and Mix with layer
swapping onto the bundled 'faces' (ui_mix.png).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outdir", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from stylegen.ui import browser
    from stylegen.ui.app import build, launch
    from stylegen.ui.studio import Studio

    page = build(Studio("cpu"), "people")
    _, url = launch(page, port=None, block=False)  # a free port from 7860 up
    driver = browser.chromium(1280, 1000)
    driver.set_script_timeout(60)

    def settle(elem_id: str, old: str | None = None) -> str:
        for _ in range(600):
            imgs = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
            src = imgs[0].get_attribute("src") if imgs else None
            if src and src != old:
                time.sleep(0.5)  # let it paint
                return src
            time.sleep(0.05)
        raise SystemExit(f"{elem_id}: no image")

    def type_into(elem_id: str, value) -> None:
        box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=number]")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(value), Keys.TAB)

    try:
        args.outdir.mkdir(parents=True, exist_ok=True)
        driver.get(url)
        first = settle("image")
        type_into("seed", 13)
        first = settle("image", first)
        type_into("dir0", 4)
        settle("image", first)
        driver.save_screenshot(str(args.outdir / "ui_explore.png"))
        tab = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == "Mix")
        tab.click()
        dst = driver.find_element(By.CSS_SELECTOR, "#dst_network input")
        dst.send_keys(Keys.CONTROL, "a")
        dst.send_keys("faces", Keys.ENTER)
        type_into("src_seed", 13)
        type_into("dst_seed", 5)
        driver.find_element(By.ID, "mix_btn").click()
        settle("mixed")
        driver.save_screenshot(str(args.outdir / "ui_mix.png"))
    finally:
        driver.quit()
        page.close()
    print(f"wrote {args.outdir / 'ui_explore.png'} {args.outdir / 'ui_mix.png'}")


if __name__ == "__main__":
    main()
