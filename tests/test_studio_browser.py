"""The studio end to end in a real headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium): upload two drawn images, run, watch the live picture change, stop,
continue, and download the picture. NST_SCREENSHOTS=folder keeps screenshots of each stage."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from drawing import draw_content, draw_style
from PIL import Image

CLI = Path(__file__).resolve().parents[1] / "cli.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="no Chromium and chromedriver here (apt-get install chromium chromium-driver; .ci/run does)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(workdir: Path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(CLI), "serve", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    address = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(address, timeout=1)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the studio did not start: {process.stdout.read()}") from None
            time.sleep(0.2)
    yield address
    process.terminate()
    process.wait(timeout=60)


@pytest.fixture
def browser(workdir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    downloads = workdir / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


def shoot(driver, name: str, at: str | None = None) -> None:
    folder = os.environ.get("NST_SCREENSHOTS")
    if folder:
        if at is not None:
            driver.execute_script(f"document.getElementById('{at}').scrollIntoView()")
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def until(condition, seconds: float = 60, what: str = "the page"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def click(driver, selector: str, what: str) -> None:
    """Click the element at ``selector``, found afresh: the gallery redraws itself when a job ends."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        try:
            found = driver.find_elements(By.CSS_SELECTOR, selector)
            if found:
                found[0].click()
            return bool(found)
        except StaleElementReferenceException:
            return False

    until(attempt, what=what)


def test_upload_run_watch_stop_continue_and_download_in_a_browser(server, browser, workdir):
    from selenium.webdriver.common.by import By

    draw_content().save(workdir / "photo.png")
    draw_style().save(workdir / "painting.png")
    find = browser.find_element
    browser.get(server)
    until(lambda: browser.find_elements(By.ID, "f-size"), what="the settings form")
    shoot(browser, "1-empty")

    find(By.ID, "file-content").send_keys(str(workdir / "photo.png"))
    find(By.ID, "file-style").send_keys(str(workdir / "painting.png"))
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "#content-thumbs img"), what="the photo's thumbnail")
    until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#style-thumbs img"), what="the painting's thumbnail"
    )

    def settle(**values: str) -> None:
        for name, value in values.items():
            field = find(By.ID, f"f-{name}")
            field.clear()
            field.send_keys(value)

    settle(size="32", steps="5", weights="random")
    find(By.ID, "start").click()
    live = find(By.ID, "live")
    first = until(lambda: live.get_attribute("data-version"), what="a live picture")
    until(lambda: "finished" in find(By.ID, "job-status").text, what="the 5-step run to finish")
    assert int(live.get_attribute("data-version")) > int(first)  # the picture changed as it ran
    assert "step 5 / 5" in find(By.ID, "step").text

    settle(steps="5000")  # long enough to stop by hand
    find(By.ID, "start").click()
    until(
        lambda: "running" in find(By.ID, "job-status").text and " 0 /" not in find(By.ID, "step").text,
        what="the run",
    )
    shoot(browser, "2-running", at="watch")
    find(By.ID, "stop").click()
    until(lambda: "stopped" in find(By.ID, "job-status").text, what="the stop")
    stopped_at = int(find(By.ID, "step").text.split()[1])
    assert 0 < stopped_at < 5000

    until(
        lambda: browser.find_elements(By.CSS_SELECTOR, "[data-run='studio~1'] button.continue"),
        what="Continue",
    )
    shoot(browser, "3-gallery", at="gallery-panel")
    click(browser, "[data-run='studio~1'] button.continue", "Continue")
    until(lambda: "running" in find(By.ID, "job-status").text and int(find(By.ID, "step").text.split()[1]) > stopped_at,
          what="the continued run to go past where it stopped")  # fmt: skip
    find(By.ID, "stop").click()
    until(lambda: "stopped" in find(By.ID, "job-status").text, what="the second stop")

    click(browser, "[data-run='studio~0'] a[href$='picture.png']", "the PNG link")
    picture = until(lambda: [p for p in browser.downloads.glob("*.png")], what="the download")[0]
    assert Image.open(picture).size == (32, 24)

    browser.set_window_size(390, 844)
    browser.execute_script("window.scrollTo(0, 0)")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, "the page is wider than a phone's window"
    shoot(browser, "4-phone")
