"""Headless Chromium for the page's tests, its latency bench and the docs' screenshots.

Debian's chromium + chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) driven by
selenium; nothing is downloaded. The flags keep the browser off the network (the machine may
have none) and let it run as root (CI).
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no calls out of a closed network
    "--disable-component-update",
    "--disable-sync",
)

# Slider -> screen: set the value of `selector` (an <input>) as typing would, then wait until the
# image inside `#target` has a new src, has loaded, and the next frame (the one that paints it) has begun. Calls back
# with the milliseconds (-1 after 30 s).
SLIDER_TO_SCREEN_JS = """
const [selector, value, target, done] = arguments;
const input = document.querySelector(selector);
const old = (document.querySelector(target + ' img') || {}).src;
const t0 = performance.now();
let finished = false;
const finish = (ms) => { if (!finished) { finished = true; observer.disconnect(); done(ms); } };
const painted = () => requestAnimationFrame(() => finish(performance.now() - t0));  // the frame that shows it
const check = () => {
  const img = document.querySelector(target + ' img');
  if (!img || img.src === old) return;
  if (img.complete && img.naturalWidth > 0) painted(); else img.addEventListener('load', painted, {once: true});
};
const observer = new MutationObserver(check);
observer.observe(document.querySelector(target), {subtree: true, attributes: true, childList: true});
Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(input, String(value));
input.dispatchEvent(new Event('input', {bubbles: true}));
input.dispatchEvent(new Event('change', {bubbles: true}));
setTimeout(() => finish(-1), 30000);
"""


def available() -> bool:
    return CHROMIUM.is_file() and CHROMEDRIVER.is_file()


def chromium(width: int = 1400, height: int = 1200):
    """A selenium WebDriver for headless Debian Chromium (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
