"""``POST /api/v1/intents`` through ``oms/api/fastpath.py``: a well-formed intent is answered by the fast path
itself, with the bytes the FastAPI route sends; every other request is handed to the FastAPI app and gets
exactly its answer (status, headers, body), with nothing decided or journaled on the way."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from oms.api.fastpath import IntentFastPath
from oms.app import OmsApp, create_app
from tests.support import oms_server
from tests.support.oms_server import (
    ADMIN_KEY,
    GOOD_ENTER,
    READ_KEY,
    STRATEGY_KEYS,
    Oms,
    oms_settings,
    running_oms,
    sim_clock,
)

KMP = STRATEGY_KEYS["KMP"]
GOOD = GOOD_ENTER


def _body(**over: Any) -> bytes:
    return json.dumps({**GOOD, **over}).encode()


def _headers(key: str | None = KMP, ctype: str | None = "application/json") -> list[tuple[str, str]]:
    out = []
    if key is not None:
        out.append(("Authorization", f"Bearer {key}"))
    if ctype is not None:
        out.append(("Content-Type", ctype))
    return out


REFUSED: list[tuple[str, list[tuple[str, str]], bytes]] = [
    ("no key", _headers(None), _body()),
    ("basic auth", [("Authorization", "Basic abc"), ("Content-Type", "application/json")], _body()),
    ("empty bearer", [("Authorization", "Bearer "), ("Content-Type", "application/json")], _body()),
    ("unknown key", _headers("nope-nope-nope"), _body()),
    ("read key", _headers(READ_KEY), _body()),
    ("another strategy", _headers(STRATEGY_KEYS["KPR"]), _body()),
    ("unknown key, bad json", _headers("nope-nope-nope"), b"{nope"),
    ("read key, bad body", _headers(READ_KEY), b'{"x": 1}'),
    ("bad json", _headers(), b'{"intent_type": "ENTER",'),
    ("trailing garbage", _headers(), _body() + b" x"),
    ("empty body", _headers(), b""),
    ("null", _headers(), b"null"),
    ("array", _headers(), b"[1, 2]"),
    ("invalid utf-8", _headers(), b'{"intent_type": "ENTER", "strategy_id": "KMP\xff"}'),
    ("text/plain", _headers(ctype="text/plain"), _body()),
    ("form, not json", _headers(ctype="application/x-www-form-urlencoded"), b"a=1&b=2"),
    ("extra field", _headers(), _body(foo=1)),
    ("lower-case enum", _headers(), _body(intent_type="enter")),
    ("no qty", _headers(), json.dumps({k: v for k, v in GOOD.items() if k != "desired_qty"}).encode()),
    ("qty as text", _headers(), _body(desired_qty="1")),
    ("qty true", _headers(), _body(desired_qty=True)),
    ("lone surrogate", _headers(), _body()[:-1] + b', "idempotency_key": "k\\ud800"}'),
    ("NaN literal", _headers(), _body()[:-1] + b', "risk_payload": {"entry_px": NaN}}'),
    ("1e309", _headers(), _body()[:-1] + b', "risk_payload": {"entry_px": 1e309}}'),
    ("naive expiry", _headers(), _body(constraints={"order_type": "LIMIT", "expiry_ts": "2026-02-27T15:00:00"})),
    ("star symbol", _headers(), _body(symbol="*")),
    ("control character", _headers(), _body(signal_hash="a\x00b")),
    ("too large", _headers(), _body(signal_hash="x" * 70_000)),
]


async def _raw(oms: Oms, headers: list[tuple[str, str]], body: bytes, path: str = "/api/v1/intents") -> tuple:
    """One request on its own connection: (status, headers without date/server, body bytes)."""
    host, port = oms.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{lines}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    kept = sorted(tuple(h.split(": ", 1)) for h in header_lines if not h.lower().startswith(("date:", "server:")))
    return int(status_line.split()[1]), kept, rest


@pytest.fixture
def apps(monkeypatch: pytest.MonkeyPatch) -> list[OmsApp]:
    """The apps ``running_oms`` builds (to switch their fast path off)."""
    built: list[OmsApp] = []

    def capture(*args: Any, **kwargs: Any) -> OmsApp:
        app = create_app(*args, **kwargs)
        assert isinstance(app, OmsApp)
        built.append(app)
        return app

    monkeypatch.setattr(oms_server, "create_app", capture)
    return built


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests the fast path handed to the FastAPI app."""
    handed: list[str] = []
    original = IntentFastPath.__call__

    async def counting(self: IntentFastPath, scope: Any, receive: Any, send: Any, fallback: Any) -> None:
        async def counted(s: Any, r: Any, se: Any) -> None:
            handed.append(s["path"])
            await fallback(s, r, se)

        await original(self, scope, receive, send, counted)

    monkeypatch.setattr(IntentFastPath, "__call__", counting)
    return handed


async def test_refused_requests_get_the_fastapi_answer(
    tmp_path: Path, apps: list[OmsApp], fallbacks: list[str]
) -> None:
    async with running_oms(oms_settings(tmp_path), clock=sim_clock(speed=1.0)) as oms:
        journal = oms.runtime.journal
        assert journal is not None
        before = journal.last_seq()
        fast_replies = [await _raw(oms, headers, body) for _, headers, body in REFUSED]
        assert len(fallbacks) == len(REFUSED), "every refused request is answered by the FastAPI route"
        assert journal.last_seq() == before, "refused requests write nothing"
        # The same requests with the fast path switched off: byte for byte the same answers.
        [server_app] = apps
        server_app.intent_fast_path, saved = None, server_app.intent_fast_path
        try:
            plain_replies = [await _raw(oms, headers, body) for _, headers, body in REFUSED]
        finally:
            server_app.intent_fast_path = saved
        for (name, _, _), fast, plain in zip(REFUSED, fast_replies, plain_replies, strict=True):
            assert fast == plain, name
            assert 400 <= fast[0] < 500, (name, fast)


async def test_well_formed_intents_take_the_fast_path(tmp_path: Path, apps: list[OmsApp], fallbacks: list[str]) -> None:
    async with running_oms(oms_settings(tmp_path), clock=sim_clock(speed=1.0)) as oms:
        [server_app] = apps
        accepted = await _raw(oms, _headers(), _body(idempotency_key="fast-1"))
        again = await _raw(oms, _headers(), _body(idempotency_key="fast-1"))  # a retry: the same decision
        admin = await _raw(oms, _headers(ADMIN_KEY, "application/json; charset=utf-8"), _body(symbol="000660"))
        assert fallbacks == []
        assert accepted[0] == 200 and json.loads(accepted[2])["status"] == "ACCEPTED", accepted
        assert again == accepted
        assert admin[0] == 200 and json.loads(admin[2])["status"] in ("ACCEPTED", "EXECUTED"), admin
        # The FastAPI route answers a retry of the same key with the same bytes (the reply's serialization).
        server_app.intent_fast_path, saved = None, server_app.intent_fast_path
        try:
            plain = await _raw(oms, _headers(), _body(idempotency_key="fast-1"))
        finally:
            server_app.intent_fast_path = saved
        assert plain == accepted
        assert json.loads(accepted[2]).keys() == {
            "intent_id",
            "status",
            "message",
            "modified_qty",
            "order_id",
            "cooldown_until",
            "reason_code",
            "idempotency_key",
        }


async def test_a_failure_inside_the_decision_is_a_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_oms(oms_settings(tmp_path), clock=sim_clock(speed=1.0)) as oms:
        intents = oms.runtime.intents
        assert intents is not None

        async def broken(_intent: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(intents, "handle", broken)
        status, headers, body = await _raw(oms, _headers(), _body())
        assert (status, body) == (500, b"Internal Server Error")
        assert ("content-type", "text/plain; charset=utf-8") in headers
        monkeypatch.undo()
        assert (await _raw(oms, _headers(), _body(symbol="000660")))[0] == 200, "the server still serves"
