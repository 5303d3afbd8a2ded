"""GET /dashboard in a real headless Chromium (Selenium, Debian's ``chromium`` + ``chromium-driver``).

The page refuses without the read key, loads with no console error once signed in through its form, and
shows a position after a fill without being reloaded (its polling of the API redraws it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import chromium_driver, console_errors
from tests.support.oms_server import READ_KEY, STRATEGY_KEYS, auth, oms_settings, running_oms
from tests.support.trading import enter, heartbeat, holds
from tests.support.wait import until

SYMBOL = "005930"


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    d = chromium_driver()
    try:
        yield d
    finally:
        d.quit()


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking WebDriver call off the event loop (the OMS under test serves on this loop)."""
    return await asyncio.to_thread(fn, *args)


async def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """``predicate`` (a blocking WebDriver call) polled off the event loop until truthy."""
    return await until(lambda: asyncio.to_thread(predicate), timeout=timeout, interval=0.2, what=what)


def _by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


async def test_refuses_without_a_key(driver: Any, tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        plain = await oms.http.get("/dashboard")
        assert plain.status_code == 401 and 'id="login"' in plain.text and "data-symbol" not in plain.text
        strategy = await oms.http.post("/dashboard/login", data={"key": STRATEGY_KEYS["KMP"]})
        assert strategy.status_code == 401 and "oms_dashboard_key" not in strategy.headers.get("set-cookie", "")
        wrong = await oms.http.get("/dashboard", headers=auth("not-a-key"))
        assert wrong.status_code == 401
        assert (await oms.http.get("/dashboard/equity")).status_code == 401
        async with httpx.AsyncClient(base_url=oms.url, cookies={"oms_dashboard_key": READ_KEY}) as browserish:
            refused = await browserish.post("/api/v1/risk/safe-mode", json={"enabled": True})
            assert refused.status_code == 401, "the cookie stands for the key on GET requests only"

        await call(driver.get, f"{oms.url}/dashboard")
        form = await call(driver.find_elements, _by("ID"), "login")
        assert form, "the login form is shown"
        assert not await call(driver.find_elements, _by("ID"), "positions"), "no data without the key"
        await call(driver.get, f"{oms.url}/dashboard")  # the 401 itself is logged as a failed load: drop it
        await call(console_errors, driver)


async def test_live_page_shows_a_position_after_a_fill(driver: Any, tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        await heartbeat(oms, "KMP")
        await call(driver.get, f"{oms.url}/dashboard")
        key = await call(driver.find_element, _by("ID"), "key")
        await call(key.send_keys, READ_KEY)
        await call(key.submit)
        await wait_for(lambda: driver.find_elements(_by("ID"), "positions"), 20, "the dashboard after signing in")
        await call(console_errors, driver)  # the login page's 401 load precedes the signed-in page

        await call(driver.execute_script, "window.__notReloaded = true;")
        polls = int(await call(lambda: driver.find_element(_by("ID"), "polls").text))
        await wait_for(lambda: int(driver.find_element(_by("ID"), "polls").text) > polls, 20, "a poll of the API")
        assert not await call(driver.find_elements, _by("CSS_SELECTOR"), f'#positions [data-symbol="{SYMBOL}"]')
        strategies = await call(lambda: driver.find_element(_by("ID"), "strategies").text)
        assert "KMP" in strategies and "running" in strategies

        reply = await enter(oms, "KMP", SYMBOL, 3, "browser-enter")
        assert reply["status"] in ("ACCEPTED", "EXECUTED"), reply
        await until(lambda: holds(oms, "KMP", SYMBOL, 3), timeout=60, interval=0.1, what="the entry's fill")

        await wait_for(
            lambda: driver.find_elements(_by("CSS_SELECTOR"), f'#positions [data-symbol="{SYMBOL}"]'),
            20,
            "the new position on the page",
        )
        row = await call(lambda: driver.find_element(_by("CSS_SELECTOR"), "#positions tbody tr").text)
        assert SYMBOL in row and "KMP:3" in row, row
        fills = await call(lambda: driver.find_element(_by("ID"), "fills").text)
        assert SYMBOL in fills and "BUY" in fills, fills
        assert await call(driver.execute_script, "return window.__notReloaded === true;"), "the page was reloaded"
        assert await call(driver.execute_script, "return document.querySelectorAll('#curve canvas').length") >= 1
        status = await call(lambda: driver.find_element(_by("ID"), "status").text)
        assert status == "ok", status
        errors = await call(console_errors, driver)
        assert errors == [], f"console errors: {errors}"
