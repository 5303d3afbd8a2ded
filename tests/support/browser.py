"""A real headless browser for the dashboard tests: Selenium driving Debian's Chromium.

Missing pieces FAIL the test with the command that installs them — never a skip: ``apt-get install -y
chromium chromium-driver`` (the system browser and its matching driver) and the ``selenium`` package.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

CHROMIUM = os.environ.get("TRADER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TRADER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


def chromium_driver() -> Any:
    """A headless Chromium WebDriver that keeps the page's console log."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(
            "the browser tests need the Python package selenium: .venv/bin/pip install selenium",
            pytrace=False,
        )
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        found = shutil.which("chromium") or shutil.which("chromedriver")
        pytest.fail(
            f"the browser tests need Debian's Chromium and its driver ({', '.join(missing)} missing"
            f"{'; found ' + found if found else ''}): apt-get install -y chromium chromium-driver",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """The console entries of level SEVERE since the last call (errors, failed loads, uncaught exceptions)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
