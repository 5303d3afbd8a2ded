"""The morning review (strategies.md I11): a typer sub-app and a small HTTP app over the PCIM store.

``review_app`` is meant to be mounted as ``trader pcim review``::

    trader pcim review list [--session D]
    trader pcim review approve 005930 000660 [--by NAME]     # or: approve --all
    trader pcim review reject 005930                        # or: reject --all

Time is the shared clock (``TRADER_CLOCK``: real, or the simulation's), the session defaults to today
(KST) and every decision after the deadline (08:30) is refused with ``PCIM_APPROVAL_LATE`` (exit 1).
:func:`approval_http_app` serves the same over HTTP for the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import typer

from broker_core.clock import KST, clock_from_env
from broker_core.config_errors import ConfigError
from strategies.pcim.approval import ApprovalResult, ApprovalStatus, decide
from strategies.pcim.config import load_pcim_config
from strategies.pcim.store import PcimStore, store_url

review_app = typer.Typer(
    help="PCIM morning review: approve or reject the watchlist (08:00–08:30 KST).", no_args_is_help=True
)


def review(
    store: PcimStore, session: date, symbol: str, approve: bool, now: datetime, deadline: time, by: str
) -> ApprovalResult:
    rows = {r.symbol: r for r in store.watchlist(session)}
    current = ApprovalStatus(rows[symbol].approval) if symbol in rows else None
    res = decide(session, symbol, current, approve, now, deadline)
    if res.ok:
        store.set_approval(session, symbol, res.status.value, by, now)
    return res


def listing(store: PcimStore, session: date) -> list[dict[str, Any]]:
    return [
        {
            "rank": r.rank,
            "symbol": r.symbol,
            "name": r.name,
            "conviction": r.conviction,
            "tier": r.tier,
            "adtv20": r.adtv20,
            "approval": r.approval,
            "approved_by": r.approved_by,
            "influencers": (r.item or {}).get("influencers", []),
        }
        for r in store.watchlist(session)
    ]


def _context(config: Path | None, session: str | None) -> tuple[PcimStore, date, datetime, time]:
    try:
        cfg = load_pcim_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    now = clock_from_env().now().astimezone(KST)
    day = date.fromisoformat(session) if session else now.date()
    return PcimStore(store_url(cfg.store)), day, now, cfg.approval.deadline


_CONFIG = typer.Option(None, "--config", help="config file (default config/pcim.yaml)")
_SESSION = typer.Option(None, "--session", help="session date YYYY-MM-DD (default: today, KST)")


@review_app.command("list")
def list_cmd(config: Path | None = _CONFIG, session: str | None = _SESSION) -> None:
    """Show the session's watchlist with each item's approval."""
    store, day, _, deadline = _context(config, session)
    rows = listing(store, day)
    typer.echo(f"PCIM watchlist {day} (decisions until {deadline:%H:%M} KST): {len(rows)} item(s)")
    for r in rows:
        typer.echo(
            f"{r['rank']:>3} {r['symbol']} {r['name']:<16} {r['conviction']:<6} {r['tier'] or '':<3} {r['approval']}"
        )


def _decide_cmd(
    symbols: list[str], all_items: bool, approve: bool, by: str, config: Path | None, session: str | None
) -> None:
    store, day, now, deadline = _context(config, session)
    targets = [r["symbol"] for r in listing(store, day)] if all_items else list(symbols)
    if not targets:
        typer.echo("nothing to decide: name symbols or use --all", err=True)
        raise typer.Exit(1)
    failed = False
    for sym in targets:
        res = review(store, day, sym, approve, now, deadline, by)
        typer.echo(f"{sym}: {res.code.value} {res.status.value} {res.message}")
        failed |= not res.ok
    if failed:
        raise typer.Exit(1)


@review_app.command("approve")
def approve_cmd(
    symbols: list[str] = typer.Argument(None, help="6-digit codes"),
    all_items: bool = typer.Option(False, "--all", help="every item of the session"),
    by: str = typer.Option("cli", "--by", help="who decides (stored)"),
    config: Path | None = _CONFIG,
    session: str | None = _SESSION,
) -> None:
    """Approve items (traded at the open if approved before 08:30)."""
    _decide_cmd(symbols or [], all_items, True, by, config, session)


@review_app.command("reject")
def reject_cmd(
    symbols: list[str] = typer.Argument(None, help="6-digit codes"),
    all_items: bool = typer.Option(False, "--all", help="every item of the session"),
    by: str = typer.Option("cli", "--by", help="who decides (stored)"),
    config: Path | None = _CONFIG,
    session: str | None = _SESSION,
) -> None:
    """Reject items (never traded)."""
    _decide_cmd(symbols or [], all_items, False, by, config, session)


def approval_http_app(store: PcimStore, deadline: time, now: Callable[[], datetime]) -> Any:
    """A Starlette app: ``GET /pcim/approvals?session=``, ``POST /pcim/approvals/{symbol}/approve|reject``,
    ``POST /pcim/approvals/approve-all`` (body optional ``{"by": "..."}``); 409 when refused."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def _session(request: Request) -> date:
        raw = request.query_params.get("session")
        return date.fromisoformat(raw) if raw else now().astimezone(KST).date()

    async def _by(request: Request) -> str:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        by = body.get("by") if isinstance(body, dict) else None
        return str(by)[:100] if by else "http"

    async def get_list(request: Request) -> JSONResponse:
        day = _session(request)
        return JSONResponse({"session": str(day), "deadline": deadline.strftime("%H:%M"), "items": listing(store, day)})

    async def one(request: Request) -> JSONResponse:
        action = request.path_params["action"]
        if action not in ("approve", "reject"):
            return JSONResponse({"detail": "action must be approve or reject"}, status_code=404)
        res = review(
            store,
            _session(request),
            request.path_params["symbol"],
            action == "approve",
            now(),
            deadline,
            await _by(request),
        )
        body = {
            "symbol": res.symbol,
            "ok": res.ok,
            "status": res.status.value,
            "code": res.code.value,
            "message": res.message,
        }
        return JSONResponse(body, status_code=200 if res.ok else 409)

    async def approve_all(request: Request) -> JSONResponse:
        day, by = _session(request), await _by(request)
        results = [review(store, day, r["symbol"], True, now(), deadline, by) for r in listing(store, day)]
        ok = all(r.ok for r in results)
        items = [{"symbol": r.symbol, "ok": r.ok, "code": r.code.value, "status": r.status.value} for r in results]
        return JSONResponse({"items": items}, status_code=200 if ok else 409)

    return Starlette(
        routes=[
            Route("/pcim/approvals", get_list, methods=["GET"]),
            Route("/pcim/approvals/approve-all", approve_all, methods=["POST"]),
            Route("/pcim/approvals/{symbol}/{action}", one, methods=["POST"]),
        ]
    )
