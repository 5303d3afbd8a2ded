"""The fake's market-data REST API (``/v2/stocks/...``): bars, latest trade/quote/bar, snapshots.

Nothing is served from after the fake's ``now``. The replayed session comes from the exchange's tape;
earlier days come from the US data (daily bars as recorded; intraday bars of past days are the same
derived paths the exchange replays, labelled by the module that derives them). A symbol with no data
is left out of the answer, as the real API does.

Bars honour ``adjustment``: ``raw`` (the default) serves the recorded prices on the tick grid; ``all``
scales a past day's OHLC by that day's ``adj_close / close`` from the US data (so close = adj_close, off
the grid as real adjusted prices are; volume unchanged), for daily bars and the derived intraday bars of
past days alike; the replayed session day has factor 1. ``split`` and ``dividend`` are refused (422): the
data's one adjustment factor cannot tell the two apart.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from broker_core.alpaca.fake.wire import iso
from broker_core.clock import Clock
from broker_core.markets import us
from broker_core.models import Bar, Tick
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.us_daily import derive_day
from broker_core.paper.us_data import UsData

TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D)$")
MAX_INTRADAY_HISTORY_DAYS = 31
DEFAULT_LIMIT = 1000
ADJUSTMENTS = ("raw", "split", "dividend", "all")
SERVED_ADJUSTMENTS = ("raw", "all")
MAX_LIMIT = 10_000
QUOTE_SIZE = 100
TAPE = "C"
VENUE = "V"


class DataRequestError(ValueError):
    """A bad data request; the message names the parameter (answered 400/422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def parse_time(value: str, name: str) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), us.TZ)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DataRequestError(f"{name}: {value!r} is not an RFC 3339 time or a date", 400) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_timeframe(value: str) -> int:
    """Minutes of a timeframe (``1Min``, ``15Min``, ``1Hour``); 0 for ``1Day``."""
    match = TIMEFRAME.match(value or "")
    if not match:
        raise DataRequestError(f"timeframe: invalid timeframe {value!r} (e.g. 1Min, 15Min, 1Hour, 1Day)", 400)
    amount, unit = int(match.group(1)), match.group(2)
    if unit in ("Day", "D"):
        if amount != 1:
            raise DataRequestError("timeframe: only 1Day is served for daily bars", 400)
        return 0
    minutes = amount * (60 if unit in ("Hour", "H") else 1)
    if not (unit in ("Min", "T") and 1 <= amount <= 59 or unit in ("Hour", "H") and 1 <= amount <= 23):
        raise DataRequestError(f"timeframe: {value!r} out of range (1-59Min, 1-23Hour)", 400)
    return minutes


def parse_adjustment(value: str | None) -> str:
    """``raw`` (default) or ``all``; ``split``/``dividend`` and unknown values are refused (422)."""
    text = (value or "raw").strip()
    if text not in ADJUSTMENTS:
        raise DataRequestError(f"adjustment: invalid value {value!r} (raw, split, dividend, all)")
    if text not in SERVED_ADJUSTMENTS:
        raise DataRequestError(
            f"adjustment: {text!r} is not supported by the fake Alpaca (only raw and all; its data carries one "
            "combined adjustment factor)"
        )
    return text


def _scaled(bar: Bar, factor: float, close: float | None = None) -> Bar:
    """``bar`` with its prices times ``factor`` (``close`` given: that close exactly); volume unchanged."""
    return Bar(
        bar.symbol,
        bar.ts,
        bar.open * factor,
        bar.high * factor,
        bar.low * factor,
        bar.close * factor if close is None else close,
        bar.volume,
        bar.interval,
        bar.extra,
    )


def _adjusted(recorded: Bar) -> Bar:
    """A recorded daily bar (``extra["adj_close"]``) adjusted for splits and dividends: close = adj_close."""
    adj = recorded.extra.get("adj_close")
    if adj is None or not recorded.close:
        return recorded
    return _scaled(recorded, adj / recorded.close, close=adj)


def bar_json(bar: Bar, trades: int | None = None) -> dict[str, Any]:
    return {
        "t": iso(bar.ts),
        "o": bar.open,
        "h": bar.high,
        "l": bar.low,
        "c": bar.close,
        "v": int(bar.volume),
        "n": trades if trades is not None else max(1, int(bar.volume) // 100),
        "vw": round((bar.high + bar.low + 2 * bar.close) / 4, 4),
    }


def trade_json(tick: Tick, trade_id: int) -> dict[str, Any]:
    return {"t": iso(tick.ts), "x": VENUE, "p": tick.price, "s": tick.qty, "c": ["@"], "i": trade_id, "z": TAPE}


def _aggregate(bars: list[Bar], minutes: int) -> list[Bar]:
    """1-minute bars into ``minutes`` bars aligned on the hour."""
    if minutes == 1:
        return bars
    out: list[Bar] = []
    for b in bars:
        local = b.ts.astimezone(us.TZ)
        of_day = local.hour * 60 + local.minute
        start = local.replace(hour=(of_day - of_day % minutes) // 60, minute=(of_day - of_day % minutes) % 60)
        if out and out[-1].ts == start:
            last = out[-1]
            out[-1] = Bar(
                b.symbol,
                start,
                last.open,
                max(last.high, b.high),
                min(last.low, b.low),
                b.close,
                last.volume + b.volume,
                b.interval,
                last.extra,
            )
        else:
            out.append(Bar(b.symbol, start, b.open, b.high, b.low, b.close, b.volume, f"{minutes}m", b.extra))
    return out


@dataclass(slots=True)
class LastTrade:
    tick: Tick
    trade_id: int


class FakeMarketData:
    def __init__(self, exchange: PaperExchange, data: UsData | None, clock: Clock, seed: int = 0) -> None:
        self.exchange = exchange
        self.data = data
        self.clock = clock
        self.seed = seed
        self.last_trades: dict[str, LastTrade] = {}
        self._trade_seq = 0
        self._data_symbols = frozenset(data.symbols()) if data is not None else frozenset()

    # -- fed by the fake's tick pump -----------------------------------------------------------

    def on_tick(self, tick: Tick) -> int:
        """Record a print (latest trade); returns its trade id."""
        self._trade_seq += 1
        self.last_trades[tick.symbol] = LastTrade(tick, self._trade_seq)
        return self._trade_seq

    # -- helpers -------------------------------------------------------------------------------

    @property
    def session_day(self) -> date:
        return self.exchange.feed.session_date

    def _symbols(self, params: Mapping[str, str]) -> list[str]:
        raw = params.get("symbols", "")
        symbols = [s.strip() for s in raw.split(",") if s.strip()]
        if not symbols:
            raise DataRequestError("symbols: at least one symbol is required", 400)
        return list(dict.fromkeys(symbols))

    def _known(self, symbol: str) -> bool:
        return self.exchange.engine.has_symbol(symbol) or symbol in self._data_symbols

    def _history_days(self, start: date, end: date) -> list[date]:
        if self.data is None:
            return []
        sessions = self.data.sessions()
        return [d for d in sessions if start <= d <= end and d < self.session_day]

    def _intraday(
        self, symbol: str, start: datetime, end: datetime, minutes: int, now: datetime, adjustment: str = "raw"
    ) -> list[Bar]:
        first = start.astimezone(us.TZ).date()
        last = end.astimezone(us.TZ).date()
        past = self._history_days(first, last)
        if len(past) > MAX_INTRADAY_HISTORY_DAYS:
            raise DataRequestError(
                f"start: intraday bars are served for at most {MAX_INTRADAY_HISTORY_DAYS} past days by the fake"
            )
        bars: list[Bar] = []
        for day in past:
            assert self.data is not None
            row = self.data.row(symbol, day)
            if row is None:
                continue
            path = derive_day(symbol, day, row.open, row.high, row.low, row.close, row.volume, seed=self.seed)
            found = [b for b in _aggregate(path.bars(), minutes) if start <= b.ts <= end]
            if adjustment == "all" and row.close:
                found = [_scaled(b, row.adj_close / row.close) for b in found]
            bars += found
        if first <= self.session_day <= last and self.exchange.engine.has_symbol(symbol):
            bars += self.exchange.tape.bars(symbol, start, end, f"{minutes}m", now=now)
        return bars

    def _today_bar(self, symbol: str, now: datetime) -> Bar | None:
        sess = us.session(self.session_day)
        if sess is None or now < sess.open or not self.exchange.engine.has_symbol(symbol):
            return None
        bars = self.exchange.tape.bars(symbol, sess.open, sess.close, "1m", now=now)
        if not bars:
            return None
        return Bar(
            symbol,
            datetime.combine(self.session_day, time(), us.TZ),
            bars[0].open,
            max(b.high for b in bars),
            min(b.low for b in bars),
            bars[-1].close,
            sum(b.volume for b in bars),
            "1d",
        )

    def _daily(self, symbol: str, start: datetime, end: datetime, now: datetime, adjustment: str = "raw") -> list[Bar]:
        first, last = start.astimezone(us.TZ).date(), end.astimezone(us.TZ).date()
        bars: list[Bar] = []
        if self.data is not None:
            upto = min(last, self.session_day - timedelta(days=1))
            recorded = self.data.daily_bars(symbol, first, upto) if first <= upto else []
            bars = [_adjusted(b) if adjustment == "all" else _on_grid(b) for b in recorded]
        if first <= self.session_day <= last:
            today = self._today_bar(symbol, now)
            if today is not None:
                bars.append(today)
        return bars

    # -- endpoints -----------------------------------------------------------------------------

    def bars(self, params: Mapping[str, str]) -> dict[str, Any]:
        symbols = self._symbols(params)
        minutes = parse_timeframe(params.get("timeframe", ""))
        adjustment = parse_adjustment(params.get("adjustment"))
        now = self.clock.now()
        start = parse_time(params["start"], "start") if params.get("start") else None
        end = parse_time(params["end"], "end") if params.get("end") else now
        end = min(end, now)
        if start is None:
            start = datetime.combine(end.astimezone(us.TZ).date(), time(), us.TZ)
        if start > end:
            return {"bars": {}, "next_page_token": None}
        limit = _int(params.get("limit"), DEFAULT_LIMIT, "limit", 1, MAX_LIMIT)
        offset = _token(params.get("page_token"))
        descending = params.get("sort", "asc") == "desc"
        rows: list[tuple[str, dict[str, Any]]] = []
        for symbol in sorted(symbols):
            if not self._known(symbol):
                continue
            found = (
                self._daily(symbol, start, end, now, adjustment)
                if minutes == 0
                else self._intraday(symbol, start, end, minutes, now, adjustment)
            )
            if descending:
                found.reverse()
            rows += [(symbol, bar_json(b)) for b in found]
        page = rows[offset : offset + limit]
        out: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            out.setdefault(symbol, []).append(bar)
        more = offset + limit < len(rows)
        return {"bars": out, "next_page_token": _encode_token(offset + limit) if more else None}

    def _latest_trade(self, symbol: str, now: datetime) -> dict[str, Any] | None:
        seen = self.last_trades.get(symbol)
        if seen is not None:
            return trade_json(seen.tick, seen.trade_id)
        last = self.exchange.engine.last_price(symbol)
        if last is not None:
            return trade_json(Tick(symbol, now, last, 1), 0)
        prev = self.exchange.feed.prev_close(symbol) if symbol in self.exchange.feed.symbols else None
        if prev is None and self.data is not None:
            recorded = self.data.prev_close(symbol, self.session_day)
            prev = us.round_to_tick(recorded) if recorded is not None else None
        if prev is None:
            return None
        close = us.session(us.previous_trading_day(self.session_day))
        when = close.close if close is not None else now
        return trade_json(Tick(symbol, min(when, now), prev, 1), 0)

    def _latest_quote(self, symbol: str, now: datetime) -> dict[str, Any] | None:
        if not self.exchange.engine.has_symbol(symbol):
            return None
        try:
            q = self.exchange.engine.quote(symbol, now)
        except Exception:
            return None
        return {
            "t": iso(now),
            "ax": VENUE,
            "ap": q.ask,
            "as": QUOTE_SIZE,
            "bx": VENUE,
            "bp": q.bid,
            "bs": QUOTE_SIZE,
            "c": ["R"],
            "z": TAPE,
        }

    def _latest_bar(self, symbol: str, now: datetime) -> dict[str, Any] | None:
        sess = us.session(self.session_day)
        if sess is not None and now >= sess.open and self.exchange.engine.has_symbol(symbol):
            bars = self.exchange.tape.bars(symbol, sess.open, now, "1m", now=now)
            if bars:
                return bar_json(bars[-1])
        if self.data is not None:
            past = self.data.daily_bars(symbol, self.session_day - timedelta(days=10), self.session_day - timedelta(1))
            if past:
                return bar_json(_on_grid(past[-1]))
        return None

    def latest(self, kind: str, params: Mapping[str, str]) -> dict[str, Any]:
        """``kind``: trades, quotes or bars."""
        symbols = self._symbols(params)
        now = self.clock.now()
        pick = {"trades": self._latest_trade, "quotes": self._latest_quote, "bars": self._latest_bar}[kind]
        out = {}
        for symbol in symbols:
            found = pick(symbol, now)
            if found is not None:
                out[symbol] = found
        return {kind: out}

    def snapshots(self, params: Mapping[str, str]) -> dict[str, Any]:
        symbols = self._symbols(params)
        now = self.clock.now()
        out: dict[str, Any] = {}
        for symbol in symbols:
            if not self._known(symbol):
                continue
            today = self._today_bar(symbol, now)
            previous = [b for b in self._daily(symbol, now - timedelta(days=10), now, now) if b.interval == "1d"]
            previous = [b for b in previous if b.ts.astimezone(us.TZ).date() < self.session_day]
            daily, prev_daily = (today, previous[-1:]) if today is not None else (None, previous[-2:-1])
            if today is None and previous:
                daily = previous[-1]
            minute = None
            sess = us.session(self.session_day)
            if sess is not None and now >= sess.open and self.exchange.engine.has_symbol(symbol):
                bars = self.exchange.tape.bars(symbol, sess.open, now, "1m", now=now)
                minute = bar_json(bars[-1]) if bars else None
            out[symbol] = {
                "latestTrade": self._latest_trade(symbol, now),
                "latestQuote": self._latest_quote(symbol, now),
                "minuteBar": minute,
                "dailyBar": bar_json(daily) if daily is not None else None,
                "prevDailyBar": bar_json(prev_daily[0]) if prev_daily else None,
            }
        return out


def _on_grid(bar: Bar) -> Bar:
    """A recorded daily bar on the tick grid (the vendor data carries float32 noise and sub-penny prints)."""
    return Bar(
        bar.symbol,
        bar.ts,
        us.round_to_tick(bar.open),
        us.round_to_tick(bar.high),
        us.round_to_tick(bar.low),
        us.round_to_tick(bar.close),
        bar.volume,
        bar.interval,
        bar.extra,
    )


def _int(value: str | None, default: int, name: str, lo: int, hi: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError as exc:
        raise DataRequestError(f"{name}: not an integer: {value!r}", 400) from exc
    if not lo <= number <= hi:
        raise DataRequestError(f"{name}: must be in {lo}..{hi}, got {number}", 400)
    return number


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _token(value: str | None) -> int:
    if not value:
        return 0
    try:
        text = base64.urlsafe_b64decode(value.encode()).decode()
        if not text.startswith("o:"):
            raise ValueError(text)
        return max(0, int(text[2:]))
    except ValueError as exc:
        raise DataRequestError(f"page_token: invalid {value!r}", 400) from exc


__all__ = [
    "DataRequestError",
    "FakeMarketData",
    "bar_json",
    "parse_adjustment",
    "parse_time",
    "parse_timeframe",
    "trade_json",
]
