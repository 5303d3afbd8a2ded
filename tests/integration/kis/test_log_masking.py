"""No secret in any log line: the OMS on the KIS adapter against the fake KIS server, every logger at
DEBUG (httpx and httpcore log full URLs with ``CANO=…``, websockets logs frames with the approval key
and handshake headers with bearer keys) through the real handler and filter of ``configure()``.

The captured text must not contain the account number, the app key or secret, an access token, an
approval key or an OMS key — and must show ``***`` where they were.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from broker_core.clock import Clock
from broker_core.logging_setup import configure
from broker_core.market_rules import up
from oms.settings import load_config
from tests.integration.kis.conftest import fake_kis, make_exchange
from tests.integration.marketdata.wsclient import WsClient
from tests.support.oms_server import ADMIN_KEY, READ_KEY, STRATEGY_KEYS, Oms, oms_settings, running_oms, sim_clock
from tests.support.wait import until

LOUD = ("httpx", "httpcore", "websockets", "uvicorn", "broker_core", "oms", "trader", "strategies")


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG, written by the handler ``configure()`` installs (with its filter)."""
    buf = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logging.getLogger(name).level for name in LOUD}
    configure("DEBUG")
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler) and handler.filters, "configure() installs a masked handler"
    handler.setStream(buf)
    for name in LOUD:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield buf
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


async def _filled(oms: Oms, order_id: str) -> bool:
    return (await oms.get(f"/api/v1/orders/{order_id}"))["state"] == "FILLED"


async def _enter(oms: Oms, clock: Clock, limit: float, tries: int = 3) -> dict[str, Any]:
    """A limit buy of 10 shares. At 30× a few ms of transit jitter on a loaded machine is a fraction of a fake
    second, enough for the fake's 2-requests-a-second window to refuse one call (EGW00201): the OMS then answers
    DEFERRED (nothing working), as it should, and the intent is sent again under a new key."""
    reply: dict[str, Any] = {}
    for n in range(tries):
        reply = (
            await oms.intent(
                STRATEGY_KEYS["KMP"],
                intent_type="ENTER",
                strategy_id="KMP",
                symbol="005930",
                desired_qty=10,
                constraints={"order_type": "LIMIT", "limit_price": limit},
                idempotency_key=f"mask-{n + 1}",
            )
        ).json()
        if reply["status"] != "DEFERRED" or "BROKER_RATE_LIMITED" not in reply.get("message", ""):
            break
        await clock.sleep(1.5)  # on the fake's clock: its one-second window has moved on
    return reply


async def test_no_secret_reaches_a_log_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = sim_clock(9, 30, speed=30)
    exchange = make_exchange(clock, ["005930", "000660"], participation=0.02)
    async with fake_kis(clock=clock, exchange=exchange, run_exchange=True) as fake:
        for key, value in fake.client_env().items():
            monkeypatch.setenv(key, value)
        config = load_config()
        config.reconcile = config.reconcile.model_copy(update={"min_interval_s": 5, "max_interval_s": 10})
        with captured_logs() as buf:
            async with running_oms(oms_settings(tmp_path, oms_broker="kis"), config, clock=clock) as oms:
                broker: Any = oms.runtime.broker
                # orders: REST with the token and app key in headers, the account in the query and body
                last = (await broker.get_quote("005930")).last
                reply = await _enter(oms, clock, float(up(last, 5)))
                assert reply["status"] == "ACCEPTED", reply
                await until(lambda: _filled(oms, reply["order_id"]), timeout=90, what="limit buy filled")
                # market data over the OMS stream: KIS WebSocket registrations carry the approval key
                kmp = await WsClient.open(oms.url, STRATEGY_KEYS["KMP"], "kmp")
                try:
                    answer = await kmp.subscribe(["000660"])
                    assert answer["granted"] == ["000660"], answer
                    await until(lambda: kmp.trades("000660"), timeout=60, what="a tick through the KIS WebSocket")
                finally:
                    await kmp.close()
                # REST market data and the reconciler's balance queries (CANO in the query string)
                assert (await oms.http.get("/api/v1/marketdata/quote/000660", headers=_auth(READ_KEY))).is_success
                cycles = oms.runtime.reconciler.cycles  # type: ignore[union-attr]
                await until(
                    lambda: oms.runtime.reconciler.cycles >= cycles + 1,  # type: ignore[union-attr]
                    timeout=60,
                    what="a reconciliation cycle",
                )
                tokens = set(fake.state.auth.tokens_by_value)
                approval_keys = set(fake.state.auth.approval_keys)
        text = buf.getvalue()

    assert tokens and approval_keys, "the session issued a token and an approval key"
    assert len(text.splitlines()) > 200, "DEBUG capture of httpx/httpcore/websockets/our loggers"
    prof = fake.profile
    secrets = {
        "account number": prof.account_no,
        "app key": prof.app_key,
        "app secret": prof.app_secret,
        **{f"access token {i}": t for i, t in enumerate(sorted(tokens))},
        **{f"approval key {i}": k for i, k in enumerate(sorted(approval_keys))},
        "admin key": ADMIN_KEY,
        "read key": READ_KEY,
        **{f"{sid} key": k for sid, k in STRATEGY_KEYS.items()},
    }
    leaked = {}
    for name, value in secrets.items():
        lines = [line for line in text.splitlines() if value in line]
        if lines:
            leaked[name] = lines[:2]
    assert not leaked, leaked
    # the lines that used to carry them are there, masked
    assert "CANO=***" in text, "httpx request lines with the account in the query"
    assert '"approval_key": "***' in text, "KIS WebSocket registrations"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
