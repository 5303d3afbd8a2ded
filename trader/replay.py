"""``trader replay``: one KRX session through the paper exchange, with a few sample orders.

It shows the exchange doing its job without a broker or a server: the real tape of the day is
replayed (or a synthetic one when no data is found), a small deterministic order script trades a
handful of names, and the summary lists ticks processed, orders, fills and the account.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from broker_core.clock import KST, ManualClock, VirtualClock
from broker_core.errors import OrderRejected
from broker_core.market_rules import down, marketable_limit
from broker_core.models import BrokerOrder, OrderRequest, OrderType, Side
from broker_core.paper.data import DataNotFound, KrxData
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.replay import ReplayFeed
from broker_core.paper.synthetic import SyntheticFeed

SAMPLE_SYMBOLS = 5
SAMPLE_NOTIONAL = 2_000_000


@dataclass
class SampleTrader:
    """Deterministic demo orders: buy at 09:05 (marketable), rest a dip bid at 09:30, sell at 14:30."""

    exchange: PaperExchange
    symbols: list[str]
    day: date
    orders: list[BrokerOrder] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)

    def _at(self, hh: int, mm: int) -> datetime:
        return datetime.combine(self.day, dtime(hh, mm), KST)

    def _submit(self, cid: str, symbol: str, side: Side, qty: int, price: float) -> None:
        if qty <= 0:
            return
        try:
            self.orders.append(self.exchange.submit(OrderRequest(cid, symbol, side, qty, OrderType.LIMIT, price)))
        except OrderRejected as exc:
            self.rejections.append(f"{cid} {symbol} {side.value} {qty}: {exc.code} {exc.message}")

    async def run(self) -> None:
        clock, engine = self.exchange.clock, self.exchange.engine
        await clock.sleep_until(self._at(9, 5))
        for i, sym in enumerate(self.symbols):
            last = engine.last_price(sym)
            if last:
                self._submit(f"demo-buy-{i}", sym, Side.BUY, int(SAMPLE_NOTIONAL // last), marketable_limit(last, True))
        await clock.sleep_until(self._at(9, 30))
        for i, sym in enumerate(self.symbols):
            last = engine.last_price(sym)
            if last:
                self._submit(f"demo-dip-{i}", sym, Side.BUY, int(SAMPLE_NOTIONAL // last // 2), down(last, 10))
        await clock.sleep_until(self._at(14, 30))
        for i, sym in enumerate(self.symbols):
            pos = engine.position(sym)
            last = engine.last_price(sym)
            if pos is not None and pos.qty > 0 and last:
                self._submit(f"demo-sell-{i}", sym, Side.SELL, pos.qty, marketable_limit(last, False))


def _feed(day: date | None, symbols: list[str] | None, data_dir: str | None, console: Console) -> tuple[Any, date]:
    try:
        data = KrxData(data_dir)
    except DataNotFound as exc:
        day = day or date.today()
        console.print(f"[yellow]No KRX data found ({exc}).\nUsing the synthetic feed for {day}.[/yellow]")
        return SyntheticFeed(day, symbols), day
    day = day or data.latest_session()
    if day not in set(data.sessions()):
        sessions = data.sessions()
        console.print(
            f"[yellow]No minute data on {day} (data covers {sessions[0]} … {sessions[-1]}); "
            f"using the synthetic feed.[/yellow]"
        )
        return SyntheticFeed(day, symbols), day
    return ReplayFeed(data, day, symbols), day


def run_replay(
    *,
    date: str | None,
    speed: float,
    symbols: list[str] | None,
    data_dir: str | None,
    until: str | None,
    json_report: str | None,
    console: Console,
) -> int:
    from datetime import date as date_cls

    day = date_cls.fromisoformat(date) if date else None
    try:
        feed, day = _feed(day, symbols, data_dir, console)
    except (DataNotFound, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    stop_at = None
    if until:
        try:
            hh, mm = (int(x) for x in until.split(":"))
            stop_at = datetime.combine(day, dtime(hh, mm), KST)
        except ValueError:
            console.print(f"[red]--until must be HH:MM, got {until!r}[/red]")
            return 2
    return asyncio.run(_run(feed, day, speed, stop_at, json_report, console))


async def _run(
    feed: Any, day: date, speed: float, stop_at: datetime | None, json_report: str | None, console: Console
) -> int:
    start = datetime.combine(day, dtime(8, 59), KST)
    clock: Any = ManualClock(start) if speed <= 0 else VirtualClock(start, speed)
    exchange = PaperExchange(feed, clock)
    trader = SampleTrader(exchange, list(feed.symbols)[:SAMPLE_SYMBOLS], day)
    estimated = max(1, feed.count_bars() * 8)
    console.print(
        f"Replaying KRX session [bold]{day}[/bold]: {len(feed.symbols)} symbols, {feed.count_bars():,} "
        f"minute bars, speed {'max' if speed <= 0 else f'{speed:g}x'}" + (f", until {stop_at:%H:%M}" if stop_at else "")
    )
    wall = time.perf_counter()
    runner = asyncio.create_task(exchange.run())
    script = asyncio.create_task(trader.run())
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} ticks"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task("virtual 08:59", total=estimated)
        while not runner.done():
            now = clock.now()
            progress.update(bar, completed=exchange.ticks_processed, description=f"virtual {now:%H:%M:%S}")
            if stop_at is not None and now >= stop_at:
                runner.cancel()
                break
            await asyncio.wait({runner}, timeout=0.1)
        progress.update(bar, completed=exchange.ticks_processed, total=exchange.ticks_processed)
    script.cancel()
    for task in (runner, script):
        try:
            await task
        except asyncio.CancelledError:
            pass
    if not exchange.engine.closed:
        exchange.expire_day(clock.now())
    elapsed = time.perf_counter() - wall
    report = _report(exchange, trader, day, elapsed)
    _print(report, console)
    if json_report:
        Path(json_report).write_text(json.dumps(report, indent=2, default=str))
        console.print(f"JSON report written to {json_report}")
    return 0


def _report(exchange: PaperExchange, trader: SampleTrader, day: date, elapsed: float) -> dict[str, Any]:
    engine = exchange.engine
    orders = [engine.get_order(o.client_order_id) or o for o in trader.orders]
    account = engine.account()
    return {
        "session": str(day),
        "symbols": len(exchange.feed.symbols),
        "ticks_processed": exchange.ticks_processed,
        "wall_seconds": round(elapsed, 2),
        "ticks_per_second": round(exchange.ticks_processed / elapsed) if elapsed else None,
        "orders": [
            {
                "client_order_id": o.client_order_id,
                "symbol": o.symbol,
                "side": o.side.value,
                "qty": o.qty,
                "limit_price": o.limit_price,
                "status": o.status.value,
                "filled_qty": o.filled_qty,
                "avg_fill_price": round(o.avg_fill_price, 2),
                "reason": o.reason,
            }
            for o in orders
        ],
        "rejections": trader.rejections,
        "fills": len(engine.fills()),
        "account": {"cash": account.cash, "equity": account.equity, "realized_pnl": account.realized_pnl},
        "vi_events": len(engine.vi_events),
    }


def _print(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"Sample orders on {report['session']}")
    for col in ("order", "symbol", "side", "qty", "limit", "status", "filled", "avg px"):
        table.add_column(col, justify="right" if col in ("qty", "limit", "filled", "avg px") else "left")
    for o in report["orders"]:
        table.add_row(
            o["client_order_id"],
            o["symbol"],
            o["side"],
            f"{o['qty']:,}",
            f"{o['limit_price']:,.0f}",
            o["status"],
            f"{o['filled_qty']:,}",
            f"{o['avg_fill_price']:,.0f}",
        )
    console.print(table)
    for r in report["rejections"]:
        console.print(f"[yellow]rejected: {r}[/yellow]")
    acct = report["account"]
    console.print(
        f"ticks processed {report['ticks_processed']:,} in {report['wall_seconds']} s "
        f"({report['ticks_per_second']:,} ticks/s) · fills {report['fills']} · VI events {report['vi_events']}"
    )
    console.print(
        f"account: cash {acct['cash']:,.0f} KRW · equity {acct['equity']:,.0f} KRW · "
        f"realized P&L {acct['realized_pnl']:,.0f} KRW"
    )


__all__ = ["run_replay"]
