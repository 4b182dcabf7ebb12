"""Headless Chromium for browser tests: the system's ``chromium`` driven through
``/usr/bin/chromedriver`` (Debian's ``chromium`` and ``chromium-driver``, which
``infra/install.sh`` installs), never a browser downloaded at test time.

Use the context manager or the fixture; both give a ``Browser``: a WebDriver with a
1400 x 1000 window, a download directory of its own, and the browser's console errors::

    from support.browser import Browser, browser_fixture, screenshot, serve  # noqa: F401

    def test_page(browser: Browser) -> None:
        with serve(lambda: server.create_app(settings)) as url:   # or the stack's :8088
            browser.driver.get(url + "/")
            element = browser.wait_for(lambda driver: driver.find_element(By.ID, "x"), "x")
            screenshot(browser.driver, "dashboard-x")        # .data/screenshots/dashboard-x.png
            path = browser.wait_for_download("report-*.json")  # after clicking a download
            assert browser.console_errors() == []

    with chromium() as browser: ...                       # outside pytest fixtures

Waits are ``WebDriverWait`` polls on a condition with a deadline (``Browser.wait_for``), never
sleeps. Selenium is synchronous, so write browser tests as plain functions; ``serve`` runs an
aiohttp application (the dashboard with the code under test, not the one ``ledger up`` started)
on a free port in a thread with its own event loop, where the browser can reach it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from ledger.settings import REPO_ROOT

T = TypeVar("T")

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_DIRECTORY = REPO_ROOT / ".data" / "screenshots"

window_width_px = 1400
window_height_px = 1000
page_height_max_px = 8_000
"""A full-page screenshot stops here: a long table is not worth a 50 MB image."""
page_load_timeout_s = 30.0
wait_timeout_s = 20.0
"""Default deadline of ``Browser.wait_for``: a page that reads a live stack may wait for it."""
poll_interval_s = 0.1
download_timeout_s = 20.0
serve_start_timeout_s = 30.0
serve_stop_timeout_s = 10.0


@dataclass
class Browser:
    """A headless Chromium session and the directory its downloads land in."""

    driver: webdriver.Chrome
    download_directory: Path

    def wait_for(
        self,
        condition: Callable[[webdriver.Chrome], T],
        what: str,
        timeout_s: float = wait_timeout_s,
    ) -> T:
        """The first truthy ``condition(driver)`` (exceptions count as not yet); a
        TimeoutException naming ``what`` after ``timeout_s``."""
        wait: WebDriverWait[webdriver.Chrome] = WebDriverWait(
            self.driver,
            timeout_s,
            poll_frequency=poll_interval_s,
            ignored_exceptions=(WebDriverException,),
        )
        return wait.until(condition, f"not within {timeout_s} s: {what}")

    def wait_for_download(self, pattern: str, timeout_s: float = download_timeout_s) -> Path:
        """The downloaded file matching ``pattern`` (glob), once Chromium finished writing it."""
        deadline = time.monotonic() + timeout_s
        while True:
            done = [
                path
                for path in self.download_directory.glob(pattern)
                if not path.name.endswith(".crdownload")
            ]
            partial = list(self.download_directory.glob("*.crdownload"))
            if done and not partial:
                return done[0]
            if time.monotonic() > deadline:
                found = sorted(path.name for path in self.download_directory.iterdir())
                raise TimeoutException(
                    f"not within {timeout_s} s: a download matching {pattern!r} (found {found})"
                )
            time.sleep(poll_interval_s)

    def console_errors(self) -> list[str]:
        """Messages the page logged at level SEVERE (uncaught exceptions, failed loads) since
        the last call, except the favicon Chromium asks every server for."""
        entries = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [
            str(entry["message"]) for entry in entries if "/favicon.ico" not in entry["message"]
        ]


def _options(download_directory: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        # Tests run as root in containers, where Chromium's sandbox cannot start.
        "--no-sandbox",
        # /dev/shm is small in containers; Chromium falls back to /tmp.
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={window_width_px},{window_height_px}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download_directory),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    return options


@contextlib.contextmanager
def chromium(download_directory: Path | None = None) -> Iterator[Browser]:
    """A headless Chromium, quit afterwards; downloads go to ``download_directory`` (a fresh
    temporary directory, removed afterwards, when not given). Fails the test, saying how to
    install them, when Chromium or chromedriver is missing."""
    for program, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not program.exists():
            pytest.fail(
                f"{program} is missing: run infra/install.sh (or apt-get install {package})",
                pytrace=False,
            )
    owned = download_directory is None
    directory = Path(tempfile.mkdtemp(prefix="ledger-downloads-")) if owned else download_directory
    assert directory is not None
    directory.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(
        service=Service(executable_path=str(CHROMEDRIVER)), options=_options(directory)
    )
    try:
        driver.set_window_size(window_width_px, window_height_px)
        driver.set_page_load_timeout(page_load_timeout_s)
        # Headless Chromium downloads only where it is told to, through the DevTools protocol.
        driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(directory)}
        )
        yield Browser(driver, directory)
    finally:
        driver.quit()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(name="browser")
def browser_fixture(tmp_path: Path) -> Iterator[Browser]:
    """The fixture ``browser``: a headless Chromium for one test, downloading into the test's
    ``tmp_path``. Import ``browser_fixture`` into a test module to use it (pytest finds it by
    its name, ``browser``)."""
    with chromium(tmp_path / "downloads") as session:
        yield session


def screenshot(driver: webdriver.Chrome, name: str, full_page: bool = False) -> Path:
    """Save the window as ``.data/screenshots/<name>.png`` (the directory is created if
    missing; an older file of that name is replaced) and return its path. ``full_page``: the
    whole document instead of the window, up to ``page_height_max_px`` (through the DevTools
    protocol, since Chromium's WebDriver screenshot stops at the window)."""
    SCREENSHOT_DIRECTORY.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIRECTORY / (name if name.endswith(".png") else f"{name}.png")
    if not full_page:
        if not driver.get_screenshot_as_file(str(path)):
            raise OSError(f"Chromium could not write the screenshot {path}")
        return path
    content = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {
        "x": 0,
        "y": 0,
        "width": content["width"],
        "height": min(content["height"], page_height_max_px),
        "scale": 1,
    }
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@contextlib.contextmanager
def serve(make_app: Callable[[], web.Application]) -> Iterator[str]:
    """Serve the application ``make_app()`` builds on 127.0.0.1 (a free port) from a thread with
    an event loop of its own; yields its base URL (``http://127.0.0.1:<port>``), and stops and
    cleans it up afterwards. The app is built in that thread, on that loop."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def start() -> web.AppRunner:
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            runner = loop.run_until_complete(start())
        except Exception as exc:  # reported in the test's thread
            state["error"] = exc
            started.set()
            loop.close()
            return
        state["port"] = runner.addresses[0][1]
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=run, name="browser-serve", daemon=True)
    thread.start()
    if not started.wait(serve_start_timeout_s):
        raise TimeoutError(f"the application did not start within {serve_start_timeout_s} s")
    if "error" in state:
        raise RuntimeError(f"the application did not start: {state['error']!r}")
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(serve_stop_timeout_s)
