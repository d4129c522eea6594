"""A headless Chromium driven through chromedriver (Selenium), with screenshots.

Nothing is downloaded: the Debian ``chromium`` and ``chromium-driver`` binaries are named
explicitly, so Selenium Manager never runs (and ``SE_OFFLINE`` forbids it to fetch anything
should it run anyway).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["CHROMEDRIVER", "CHROMIUM", "WINDOW", "find_binaries", "start_chromium"]

#: the window every test sees (screenshots are this size)
WINDOW = (1280, 900)
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = (shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/lib/chromium"))
        if found:
            return found
    return None


def find_binaries() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or why they cannot be used."""
    browser = os.environ.get("SPAMWARDEN_CHROMIUM") or _which(CHROMIUM)
    driver = os.environ.get("SPAMWARDEN_CHROMEDRIVER") or _which(CHROMEDRIVER)
    missing = [n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p]
    if missing:
        return (f"{' and '.join(missing)} not installed (Debian packages chromium and "
                "chromium-driver; `make test` installs them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    assert browser and driver
    return browser, driver


def start_chromium(browser: str, driver: str, *, log: Path) -> Any:
    """A headless Chromium with a fixed window, driven through ``driver``.

    :param browser: the chromium binary.
    :param driver: the chromedriver binary (given explicitly: Selenium Manager never runs).
    :param log: chromedriver's log file.
    :returns: the ``selenium.webdriver.Chrome`` session (call ``quit()``).
    """
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, were it ever run, fetches nothing
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--lang=en-US", "--no-first-run",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--metrics-recording-only"):
        opts.add_argument(arg)
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_manager(self: Any, args: list[str]) -> dict[str, str]:
        raise RuntimeError(f"Selenium Manager must not run (it downloads): {args}")

    saved = SeleniumManager.binary_paths
    SeleniumManager.binary_paths = no_manager  # type: ignore[method-assign]
    try:
        chrome = webdriver.Chrome(service=Service(executable_path=driver, log_output=str(log)),
                                  options=opts)
    finally:
        SeleniumManager.binary_paths = saved  # type: ignore[method-assign]
    chrome.set_page_load_timeout(30)
    return chrome
