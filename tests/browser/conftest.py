"""Browser tests: the page in a real headless Chromium (Debian's chromium and chromedriver, driven by Selenium).

Each module gets one browser; each test a real service, simulated servers (real sshd, stand-in
package tools: root) and ``serverprep web`` as its own process. Screenshots go to
tests/browser/screenshots/ (made by the run, not kept in git).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.gateway import WebGateway, web_gateway

HERE = Path(__file__).parent
SCREENSHOTS = HERE / "screenshots"
CHROMIUM = os.environ.get("SERVERPREP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SERVERPREP_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
# As root, headless, and quiet: without the background-networking flags Chromium keeps trying
# hosts this machine cannot reach.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--window-size=1440,1050", "--force-device-scale-factor=1",
         "--lang=en-US")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real headless Chromium (Debian's chromium and chromium-driver, Selenium)")


def _missing() -> list[str]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [i for i in items if HERE in Path(str(i.fspath)).parents]
    missing = _missing() if mine else []
    for item in mine:
        item.add_marker(pytest.mark.browser)
        if missing:
            if os.environ.get("CI"):
                raise pytest.UsageError(f"missing for the browser tests: {', '.join(missing)}")
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sp-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.sp_profile = profile  # to find this browser's processes (test_fleet_scale measures their CPU time)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def web(service, tmp_path) -> Iterator[WebGateway]:  # type: ignore[no-untyped-def]
    with web_gateway(service.address, "--refresh", "1", workdir=tmp_path) as gw:
        yield gw


@pytest.fixture
def page(browser, web) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The browser on the gateway's page, with no console errors at the end of the test."""
    browser.get(web.url)
    yield browser
    # Script errors fail the test; an HTTP error answer the page showed as a message (a 409 on purpose) does not.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
    assert not errors, errors


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "condition", interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # a stale element between two renders: look again
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what}: not reached after {timeout}s (last: {last!r})")


def screenshot(driver: Any, name: str) -> Path:
    """The page as it is, without the passing notices (errors stay)."""
    driver.execute_script("document.querySelectorAll('#messages .msg:not(.error)').forEach(m => m.remove())")
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
