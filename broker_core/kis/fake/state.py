"""The fake KIS server's state and behaviour, free of HTTP: profiles, tokens, the rate window, the
request log, orders on the paper exchange, the REST views and the execution notices.

Error codes: those named in specs/kis.md are used as documented (EGW00201 over the rate limit,
EGW00133 token issuance limit, EGW00123 expired / EGW00121 invalid token, APBK0013 order accepted,
APBK0919 market closed, APBK0656 no such product, MCA00000 query OK, OPSP00xx WebSocket acks). Where
the spec knows no code the fake uses its own, all in ``FAKE_CODES`` (APBK9xxx, OPSQ0002 …) — a client
must treat them as opaque business errors.
"""
from __future__ import annotations

import hashlib
import itertools
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from broker_core.clock import KST, Clock
from broker_core.calendars import is_trading_day
from broker_core.errors import OrderRejected
from broker_core.kis import tr_ids as T
from broker_core.kis.crypto import new_key_iv
from broker_core.kis.parsers import H0STASP0_FIELDS, H0STCNI_FIELDS, H0STCNT0_FIELDS, fields_from
from broker_core.market_rules import (
    OPEN, SessionPhase, down, price_limits, session_phase, tick_size, up,
)
from broker_core.models import Bar, OrderRequest, OrderStatus, OrderType, Side, Tick
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.matching import RejectCode

DailySource = Callable[[str, date, date], list[Bar]]
FlowSource = Callable[[str, date, date], list[dict[str, Any]]]

FAKE_CODES = {
    "APBK9001": "호가단위 오류 (off the tick grid)",
    "APBK9002": "상하한가 범위를 벗어났습니다 (outside the ±30% limits)",
    "APBK9003": "주문가능금액을 초과했습니다 (insufficient cash)",
    "APBK9004": "주문가능수량을 초과했습니다 (insufficient shares)",
    "APBK9005": "주문수량 오류 (quantity)",
    "APBK9006": "주문단가 오류 (price)",
    "APBK9007": "모의투자에서는 해당 주문구분을 사용할 수 없습니다 (ORD_DVSN not allowed on this profile)",
    "APBK9008": "원주문번호가 존재하지 않습니다 (no such original order)",
    "APBK9009": "정정/취소 가능 수량이 없습니다 (nothing left to modify/cancel)",
    "APBK9010": "주문 조직번호가 일치하지 않습니다 (KRX_FWDG_ORD_ORGNO does not match)",
    "APBK9011": "계좌번호를 확인하세요 (CANO/ACNT_PRDT_CD)",
    "APBK9012": "필수 입력값 누락 (missing or malformed field)",
    "OPSQ0002": "없는 서비스 코드 입니다 (tr_id unknown on this host / not offered by the paper host)",
    "EGW00103": "유효하지 않은 AppKey입니다 (appkey/appsecret)",
    "EGW00105": "custtype 오류",
    "OPSP0003": "UNSUBSCRIBE ERROR(not found!)",
    "OPSP0011": "invalid approval : NOT FOUND",
    "OPSP9997": "INVALID TR_ID/TR_KEY (unknown TR, or a notice tr_key that is not the HTS id)",
    "OPSP9999": "JSON PARSING ERROR",
}

_ENGINE_REJECT = {
    RejectCode.MARKET_CLOSED: ("APBK0919", "장운영시간이 아닙니다."),
    RejectCode.UNKNOWN_SYMBOL: ("APBK0656", "주문가능한 종목이 아닙니다."),
    RejectCode.OFF_TICK: ("APBK9001", FAKE_CODES["APBK9001"]),
    RejectCode.OUTSIDE_PRICE_LIMIT: ("APBK9002", FAKE_CODES["APBK9002"]),
    RejectCode.INSUFFICIENT_CASH: ("APBK9003", FAKE_CODES["APBK9003"]),
    RejectCode.INSUFFICIENT_SHARES: ("APBK9004", FAKE_CODES["APBK9004"]),
    RejectCode.INVALID_QTY: ("APBK9005", FAKE_CODES["APBK9005"]),
    RejectCode.INVALID_PRICE: ("APBK9006", FAKE_CODES["APBK9006"]),
    RejectCode.NO_REFERENCE_PRICE: ("APBK9006", FAKE_CODES["APBK9006"]),
}
PAPER_ORD_DVSN = frozenset({"00", "01", "02", "03", "04"})
REAL_ORD_DVSN = frozenset({"00", "01", "02", "03", "04", "05", "06", "07", "11", "12", "13", "14", "15", "16"})
SIMULATED_ORD_DVSN = frozenset({"00", "01", "02", "03", "04"})


@dataclass
class FakeProfile:
    name: str
    app_key: str
    app_secret: str
    account_no: str = "50000000"
    prod_code: str = "01"
    hts_id: str = "fakeuser"
    account_name: str = "홍길동"
    rate_per_sec: float = 2.0
    balance_page: int = 20
    ccld_page: int = 15
    psbl_rvsecncl_page: int = 50
    holiday_page: int = 20
    minute_page: int = 30
    daily_chart_page: int = 100
    daily_price_rows: int = 30
    investor_rows: int = 30
    token_validity_s: float = 86400.0
    token_same_within_s: float = 6 * 3600.0
    token_interval_s: float = 60.0
    max_registrations: int = 41
    pingpong_interval_s: float | None = None
    """Wall-clock seconds between PINGPONG messages (None: only when ``send_pingpong`` is called)."""
    branch: str = "06590"

    @property
    def paper(self) -> bool:
        return self.name == "paper"

    @property
    def notice_tr_id(self) -> str:
        return T.WS_NOTICE_PAPER if self.paper else T.WS_NOTICE_REAL


def profile(name: str = "paper", **overrides: Any) -> FakeProfile:
    """The default profile ``paper`` (2/s, balance 20/page, daily orders 15/page) or ``real``
    (20/s, 50/page, 100/page), with overrides."""
    if name == "paper":
        base = FakeProfile("paper", "PSpaperAppKey0000000000000000000000", "paper-secret-" + "x" * 167)
    elif name == "real":
        base = FakeProfile("real", "PSrealAppKey00000000000000000000000", "real-secret-" + "y" * 168,
                           account_no="60000000", rate_per_sec=20.0, balance_page=50, ccld_page=100)
    else:
        raise ValueError(f"unknown fake KIS profile {name!r} (use paper or real)")
    return replace(base, **overrides)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str
    tr_id: str
    at: datetime
    """When the fake received it, by the fake's clock."""
    status: int = 0
    msg_cd: str = ""
    app_key: str = ""
    tr_cont: str = ""


@dataclass
class TokenRecord:
    value: str
    app_key: str
    issued_at: datetime
    expires_at: datetime


@dataclass
class FakeOrder:
    odno: str
    branch: str
    ord_dt: str
    ord_tmd: str
    symbol: str
    side: Side
    ord_dvsn: str
    qty: int
    price: float
    kind: str = "new"
    """new, modify (a new order number carrying the rest of ``orig_odno``) or cancel."""
    orig_odno: str = ""
    legs: list[str] = field(default_factory=list)
    """Engine client order ids carrying this order (a partial cancel re-books the rest as a new leg)."""
    cancelled_qty: int = 0
    moved_qty: int = 0
    """Quantity handed to a modify order."""
    rejected_qty: int = 0


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def envelope(rt_cd: str, msg_cd: str, msg1: str, **outputs: Any) -> dict[str, Any]:
    return {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1, **outputs}


def error(msg_cd: str, msg1: str | None = None, status: int = 200) -> Reply:
    return Reply(status, envelope("1", msg_cd, msg1 or FAKE_CODES.get(msg_cd, msg_cd)))


def ok(msg_cd: str = "MCA00000", msg1: str = "정상처리 되었습니다.", headers: dict[str, str] | None = None,
       **outputs: Any) -> Reply:
    return Reply(200, envelope("0", msg_cd, msg1, **outputs), headers or {})


def _s(x: float | int) -> str:
    """A KIS number string (integers without a decimal point)."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.2f}"
    return str(x)


def _sign(price: float, base: float | None, limits: tuple[int, int] | None) -> str:
    if not base:
        return "3"
    if limits and price >= limits[1]:
        return "1"
    if limits and price <= limits[0]:
        return "4"
    return "2" if price > base else ("5" if price < base else "3")


@dataclass
class _TradeStats:
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    volume: int = 0
    value: float = 0.0
    open_time: str = ""
    high_time: str = ""
    low_time: str = ""
    buy_count: int = 0
    sell_count: int = 0
    buy_volume: int = 0
    sell_volume: int = 0

    def add(self, price: float, qty: int, hhmmss: str, buy: bool) -> None:
        if self.volume == 0 and not self.open:
            self.open = self.high = self.low = price
            self.open_time = self.high_time = self.low_time = hhmmss
        if price > self.high:
            self.high, self.high_time = price, hhmmss
        if price < self.low:
            self.low, self.low_time = price, hhmmss
        self.volume += max(qty, 0)
        self.value += price * max(qty, 0)
        if buy:
            self.buy_count += 1
            self.buy_volume += qty
        else:
            self.sell_count += 1
            self.sell_volume += qty


class FakeKisState:
    def __init__(self, prof: FakeProfile, exchange: PaperExchange, *, names: Mapping[str, str] | None = None,
                 markets: Mapping[str, str] | None = None, daily_source: DailySource | None = None,
                 flow_source: FlowSource | None = None) -> None:
        self.profile = prof
        self.exchange = exchange
        self.engine = exchange.engine
        self.clock: Clock = exchange.clock
        self.names: dict[str, str] = dict(names or {})
        self.markets: dict[str, str] = dict(markets or {})
        self.daily_source = daily_source
        self.flow_source = flow_source
        self.requests: list[LoggedRequest] = []
        self.tokens: dict[str, TokenRecord] = {}
        self.tokens_by_value: dict[str, TokenRecord] = {}
        self.token_requests_at: dict[str, datetime] = {}
        self.tokens_issued = 0
        self.approval_keys: set[str] = set()
        self._windows: dict[str, deque[datetime]] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.leg_owner: dict[str, str] = {}
        self._odno_seq = itertools.count(1)
        self._leg_seq = itertools.count(1)
        self.drop_order_replies = 0
        """Fault: the next N order submits are executed and their replies dropped (connection cut)."""
        self.notice_sink: Callable[[str, str, str], None] | None = None
        """Set by the server: (tr_id, tr_key, plaintext record) → deliver to registered sessions."""
        self._stats: dict[str, _TradeStats] = {}

    # -- request log, auth, rate -------------------------------------------------------------

    def log(self, method: str, path: str, tr_id: str, status: int, msg_cd: str, app_key: str = "",
            tr_cont: str = "", at: datetime | None = None) -> None:
        self.requests.append(LoggedRequest(method, path, tr_id, at or self.clock.now(), status, msg_cd, app_key,
                                           tr_cont))

    def requests_to(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.path == path]

    def max_per_window(self, window_s: float = 1.0, paths_prefix: str = "/uapi/") -> int:
        """The most requests (to paths under ``paths_prefix``) the fake received in any window of
        ``window_s`` seconds of its clock — what a rate-limit test asserts on."""
        times = sorted(r.at for r in self.requests if r.path.startswith(paths_prefix))
        best, j = 0, 0
        for i, t in enumerate(times):
            while (t - times[j]).total_seconds() >= window_s:
                j += 1
            best = max(best, i - j + 1)
        return best

    def admit(self, app_key: str, now: datetime) -> bool:
        """The per-second rate window of an app key (fake clock); True if the request may pass."""
        window = self._windows.setdefault(app_key, deque())
        while window and (now - window[0]).total_seconds() >= 1.0:
            window.popleft()
        if len(window) >= self.profile.rate_per_sec:
            return False
        window.append(now)
        return True

    def check_credentials(self, app_key: str, app_secret: str) -> bool:
        return app_key == self.profile.app_key and app_secret == self.profile.app_secret

    def check_token(self, authorization: str, app_key: str, now: datetime) -> str | None:
        """None if the bearer token is valid for the app key, else EGW00121 / EGW00123."""
        value = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        rec = self.tokens_by_value.get(value)
        if rec is None or rec.app_key != app_key:
            return "EGW00121"
        if now >= rec.expires_at:
            return "EGW00123"
        return None

    def issue_token(self, body: Mapping[str, Any]) -> Reply:
        now = self.clock.now()
        if body.get("grant_type") != "client_credentials":
            return Reply(403, {"error_code": "EGW00002", "error_description": "grant_type 오류"})
        app_key = str(body.get("appkey", ""))
        if not self.check_credentials(app_key, str(body.get("appsecret", ""))):
            return Reply(403, {"error_code": "EGW00103", "error_description": FAKE_CODES["EGW00103"]})
        last = self.token_requests_at.get(app_key)
        if last is not None and (now - last).total_seconds() < self.profile.token_interval_s:
            return Reply(403, {"error_code": "EGW00133",
                               "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"})
        self.token_requests_at[app_key] = now
        rec = self.tokens.get(app_key)
        if rec is None or now >= rec.expires_at or \
                (now - rec.issued_at).total_seconds() >= self.profile.token_same_within_s:
            value = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(48)
            rec = TokenRecord(value, app_key, now, now + timedelta(seconds=self.profile.token_validity_s))
            self.tokens[app_key] = rec
            self.tokens_by_value[value] = rec
            self.tokens_issued += 1
        remaining = int((rec.expires_at - now).total_seconds())
        return Reply(200, {"access_token": rec.value, "token_type": "Bearer", "expires_in": remaining,
                           "access_token_token_expired": rec.expires_at.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S")})

    def revoke_token(self, body: Mapping[str, Any]) -> Reply:
        rec = self.tokens_by_value.pop(str(body.get("token", "")), None)
        if rec is None or not self.check_credentials(str(body.get("appkey", "")), str(body.get("appsecret", ""))):
            return Reply(403, {"error_code": "EGW00121", "error_description": "유효하지 않은 token 입니다"})
        self.tokens.pop(rec.app_key, None)
        return Reply(200, {"code": 200, "message": "접근토큰 폐기에 성공하였습니다"})

    def expire_tokens(self) -> None:
        """Test hook: every issued token is expired from now on (the next call gets EGW00123)."""
        now = self.clock.now()
        for rec in self.tokens.values():
            rec.expires_at = now

    def approval(self, body: Mapping[str, Any]) -> Reply:
        if body.get("grant_type") != "client_credentials" or not self.check_credentials(
                str(body.get("appkey", "")), str(body.get("secretkey", ""))):
            return Reply(403, {"error_code": "EGW00103", "error_description": FAKE_CODES["EGW00103"]})
        key = "-".join(secrets.token_hex(4) for _ in range(5))
        self.approval_keys.add(key)
        return Reply(200, {"approval_key": key})

    @staticmethod
    def hashkey(body: Mapping[str, Any]) -> Reply:
        import json
        digest = hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
        return Reply(200, {"JsonBody": json.dumps(body, ensure_ascii=False), "HASH": digest})

    # -- helpers -----------------------------------------------------------------------------

    def name(self, symbol: str) -> str:
        return self.names.get(symbol, f"FAKE{symbol}")

    def market(self, symbol: str) -> str:
        return self.markets.get(symbol, "KOSPI")

    def _day(self) -> date:
        return self.clock.now().astimezone(KST).date()

    def _account_ok(self, data: Mapping[str, Any]) -> bool:
        return str(data.get("CANO", "")) == self.profile.account_no and \
            str(data.get("ACNT_PRDT_CD", "")) == self.profile.prod_code

    def _filled(self, order: FakeOrder) -> tuple[int, float]:
        qty, amount = 0, 0.0
        for leg in order.legs:
            o = self.engine.get_order(leg)
            if o is not None:
                qty += o.filled_qty
                amount += o.filled_qty * o.avg_fill_price
        return qty, amount

    def _active_leg(self, order: FakeOrder) -> str | None:
        for leg in reversed(order.legs):
            o = self.engine.get_order(leg)
            if o is not None and not o.status.is_terminal:
                return leg
        return None

    def remaining(self, order: FakeOrder) -> int:
        leg = self._active_leg(order)
        o = self.engine.get_order(leg) if leg else None
        return o.qty - o.filled_qty if o is not None else 0

    def _expired_rest(self, order: FakeOrder) -> int:
        """Quantity of legs that expired at the close (KIS keeps it as rmn_qty)."""
        rest = 0
        for leg in order.legs:
            o = self.engine.get_order(leg)
            if o is not None and o.status is OrderStatus.EXPIRED:
                rest += o.qty - o.filled_qty
        return rest

    def _new_odno(self) -> str:
        return f"{next(self._odno_seq):010d}"

    def _submit_leg(self, order: FakeOrder, qty: int, ord_dvsn: str, price: float) -> None:
        """Book ``qty`` of ``order`` on the engine (raises OrderRejected)."""
        leg = f"{order.odno}#{next(self._leg_seq)}"
        if ord_dvsn == "01":
            req = OrderRequest(leg, order.symbol, order.side, qty, OrderType.MARKET, None)
        else:
            req = OrderRequest(leg, order.symbol, order.side, qty, OrderType.LIMIT, price)
        self.leg_owner[leg] = order.odno
        try:
            self.exchange.submit(req)
        finally:
            order.legs.append(leg)

    def _limit_for(self, symbol: str, side: Side, ord_dvsn: str, price: float) -> float:
        if ord_dvsn in ("03", "04"):
            q = self.engine.quote(symbol, self.clock.now())
            best_opposite = q.ask if side is Side.BUY else q.bid
            best_same = q.bid if side is Side.BUY else q.ask
            return float((best_opposite if ord_dvsn == "03" else best_same) or q.last)
        return price

    # -- orders ------------------------------------------------------------------------------

    def order_cash(self, tr: T.Tr, body: Mapping[str, Any]) -> Reply:
        if not self._account_ok(body):
            return error("APBK9011")
        side = Side.BUY if tr is T.ORDER_BUY else Side.SELL
        symbol = str(body.get("PDNO", "")).strip()
        ord_dvsn = str(body.get("ORD_DVSN", "")).strip()
        allowed = PAPER_ORD_DVSN if self.profile.paper else REAL_ORD_DVSN
        if ord_dvsn not in allowed or ord_dvsn not in SIMULATED_ORD_DVSN:
            return error("APBK9007", f"ORD_DVSN {ord_dvsn!r}: " + FAKE_CODES["APBK9007"])
        qty_s, price_s = str(body.get("ORD_QTY", "")).strip(), str(body.get("ORD_UNPR", "")).strip()
        if not qty_s.isdigit() or int(qty_s) <= 0:
            return error("APBK9005")
        try:
            price = float(price_s or "0")
        except ValueError:
            return error("APBK9006")
        if ord_dvsn in ("00", "02") and price <= 0:
            return error("APBK9006")
        if not self.engine.has_symbol(symbol):
            return error("APBK0656", "주문가능한 종목이 아닙니다.")
        now = self.clock.now()
        order = FakeOrder(odno=self._new_odno(), branch=self.profile.branch, ord_dt=now.strftime("%Y%m%d"),
                          ord_tmd=now.astimezone(KST).strftime("%H%M%S"), symbol=symbol, side=side,
                          ord_dvsn=ord_dvsn, qty=int(qty_s), price=price if ord_dvsn != "01" else 0.0)
        try:
            limit = self._limit_for(symbol, side, ord_dvsn, price)
            self._submit_leg(order, order.qty, ord_dvsn, limit)
        except OrderRejected as exc:
            code, msg = _ENGINE_REJECT.get(exc.code, ("APBK9012", exc.message))  # type: ignore[call-overload]
            return error(code, f"{msg} [{exc.message}]")
        except Exception as exc:  # the engine's own validation (e.g. no quote yet)
            return error("APBK9006", f"{FAKE_CODES['APBK9006']} [{exc}]")
        if order.price == 0 and ord_dvsn != "01":
            order.price = limit
        self.orders[order.odno] = order
        self._notice_receipt(order, rctf="0", qty=order.qty)
        reply = ok("APBK0013", "주문 전송 완료 되었습니다.",
                   output={"KRX_FWDG_ORD_ORGNO": order.branch, "ODNO": order.odno, "ORD_TMD": order.ord_tmd})
        if self.drop_order_replies > 0:
            self.drop_order_replies -= 1
            reply.drop = True
        return reply

    def order_rvsecncl(self, body: Mapping[str, Any]) -> Reply:
        if not self._account_ok(body):
            return error("APBK9011")
        orig_no = str(body.get("ORGN_ODNO", "")).strip()
        orig = self.orders.get(orig_no.zfill(10)) if orig_no.isdigit() else None
        if orig is None or orig.kind == "cancel":
            return error("APBK9008")
        if str(body.get("KRX_FWDG_ORD_ORGNO", "")).strip() != orig.branch:
            return error("APBK9010")
        code = str(body.get("RVSE_CNCL_DVSN_CD", "")).strip()
        if code not in ("01", "02"):
            return error("APBK9012", "RVSE_CNCL_DVSN_CD must be 01 or 02")
        all_qty = str(body.get("QTY_ALL_ORD_YN", "")).strip().upper()
        if all_qty not in ("Y", "N"):
            return error("APBK9012", "QTY_ALL_ORD_YN must be Y or N")
        remaining = self.remaining(orig)
        if remaining <= 0:
            return error("APBK9009")
        if all_qty == "Y":
            qty = remaining
        else:
            q = str(body.get("ORD_QTY", "")).strip()
            if not q.isdigit() or not 0 < int(q) <= remaining:
                return error("APBK9009", f"ORD_QTY must be 1..{remaining}")
            qty = int(q)
        now = self.clock.now()
        leg = self._active_leg(orig)
        assert leg is not None
        leg_order = self.engine.get_order(leg)
        assert leg_order is not None
        new = FakeOrder(odno=self._new_odno(), branch=orig.branch, ord_dt=now.strftime("%Y%m%d"),
                        ord_tmd=now.astimezone(KST).strftime("%H%M%S"), symbol=orig.symbol, side=orig.side,
                        ord_dvsn=orig.ord_dvsn, qty=qty, price=0.0, kind="cancel" if code == "02" else "modify",
                        orig_odno=orig.odno)
        if code == "01":
            ord_dvsn = str(body.get("ORD_DVSN", orig.ord_dvsn)).strip() or orig.ord_dvsn
            try:
                price = float(str(body.get("ORD_UNPR", "0")).strip() or "0")
            except ValueError:
                return error("APBK9006")
            if ord_dvsn in ("00", "02") and price <= 0:
                return error("APBK9006")
            new.ord_dvsn, new.price = ord_dvsn, (price if ord_dvsn != "01" else 0.0)
        self.exchange.cancel(leg)
        keep = remaining - qty
        try:
            if code == "01":
                self._submit_leg(new, qty, new.ord_dvsn, self._limit_for(new.symbol, new.side, new.ord_dvsn, new.price))
        except OrderRejected as exc:
            self._submit_leg(orig, remaining, orig.ord_dvsn, leg_order.limit_price or orig.price)
            code_, msg = _ENGINE_REJECT.get(exc.code, ("APBK9012", exc.message))  # type: ignore[call-overload]
            return error(code_, f"{msg} [{exc.message}]")
        if keep > 0:
            self._submit_leg(orig, keep, orig.ord_dvsn, leg_order.limit_price or orig.price)
        if code == "02":
            orig.cancelled_qty += qty
        else:
            orig.moved_qty += qty
        self.orders[new.odno] = new
        self._notice_receipt(new, rctf="2" if code == "02" else "1", qty=qty)
        return ok("APBK0013", "주문 전송 완료 되었습니다.",
                  output={"krx_fwdg_ord_orgno": new.branch, "odno": new.odno, "ord_tmd": new.ord_tmd})

    # -- execution notices -------------------------------------------------------------------

    def _notice_fields(self, order: FakeOrder, *, rctf: str, fill: bool, qty: int, price: float, hhmmss: str,
                       refused: bool = False) -> str:
        values = {
            "CUST_ID": self.profile.hts_id, "ACNT_NO": self.profile.account_no + self.profile.prod_code,
            "ODER_NO": order.odno, "OODER_NO": order.orig_odno,
            "SELN_BYOV_CLS": "01" if order.side is Side.SELL else "02", "RCTF_CLS": rctf,
            "ODER_KIND": order.ord_dvsn, "ODER_COND": "0", "STCK_SHRN_ISCD": order.symbol,
            "CNTG_QTY": str(qty), "CNTG_UNPR": _s(price), "STCK_CNTG_HOUR": hhmmss,
            "RFUS_YN": "1" if refused else "0", "CNTG_YN": "2" if fill else "1",
            "ACPT_YN": "2" if rctf == "2" else "1", "BRNC_NO": order.branch, "ODER_QTY": str(order.qty),
            "ACNT_NAME": self.profile.account_name, "ORD_COND_PRC": "", "ORD_EXG_GB": "1", "POPUP_YN": "N",
            "FILLER": "", "CRDT_CLS": "10", "CRDT_LOAN_DATE": "", "CNTG_ISNM40": self.name(order.symbol),
            "ODER_PRC": _s(order.price),
        }
        return "^".join(fields_from(values, H0STCNI_FIELDS))

    def _notice_receipt(self, order: FakeOrder, *, rctf: str, qty: int) -> None:
        hhmmss = self.clock.now().astimezone(KST).strftime("%H%M%S")
        # receipts: positions 9/10 carry the order quantity/price (the official legacy sample's labels)
        self._emit_notice(self._notice_fields(order, rctf=rctf, fill=False, qty=qty, price=order.price,
                                              hhmmss=hhmmss))

    def on_engine_update(self, update: Any) -> None:
        """An engine order update: a fill becomes a fill notice (CNTG_YN=2) of its KIS order."""
        fill = update.fill
        if fill is None:
            return
        odno = self.leg_owner.get(fill.client_order_id)
        order = self.orders.get(odno) if odno else None
        if order is None:
            return
        hhmmss = fill.ts.astimezone(KST).strftime("%H%M%S")
        self._emit_notice(self._notice_fields(order, rctf="0" if order.kind == "new" else "1", fill=True,
                                              qty=fill.qty, price=fill.price, hhmmss=hhmmss))

    def _emit_notice(self, record: str) -> None:
        if self.notice_sink is not None:
            self.notice_sink(self.profile.notice_tr_id, self.profile.hts_id, record)

    @staticmethod
    def new_key_iv() -> tuple[str, str]:
        return new_key_iv()

    # -- account views -----------------------------------------------------------------------

    def order_rows(self) -> list[dict[str, Any]]:
        rows = []
        for order in self.orders.values():
            filled, amount = self._filled(order)
            if order.kind == "cancel":
                rmn, cnc, cncl_yn = 0, order.qty, "Y"
            else:
                rmn = max(0, order.qty - filled - order.cancelled_qty - order.moved_qty)
                cnc, cncl_yn = order.cancelled_qty, "N"
            kind_name = {"new": "", "modify": "정정", "cancel": "취소"}[order.kind]
            rows.append({
                "ord_dt": order.ord_dt, "ord_gno_brno": order.branch, "odno": order.odno,
                "orgn_odno": order.orig_odno, "ord_dvsn_name": (kind_name + ("시장가" if order.ord_dvsn == "01"
                                                                              else "지정가")),
                "ord_dvsn_cd": order.ord_dvsn, "sll_buy_dvsn_cd": "01" if order.side is Side.SELL else "02",
                "sll_buy_dvsn_cd_name": "현금매도" if order.side is Side.SELL else "현금매수",
                "pdno": order.symbol, "prdt_name": self.name(order.symbol), "ord_qty": str(order.qty),
                "ord_unpr": _s(order.price), "ord_tmd": order.ord_tmd, "tot_ccld_qty": str(filled),
                "avg_prvs": _s(round(amount / filled, 2) if filled else 0), "tot_ccld_amt": _s(round(amount)),
                "cncl_yn": cncl_yn, "cnc_cfrm_qty": str(cnc), "rmn_qty": str(rmn),
                "rjct_qty": str(order.rejected_qty), "ccld_cndt_name": "없음", "excg_id_dvsn_cd": "KRX",
                "infm_tmd": "", "ord_orgno": "", "inqr_ip_addr": "", "cpbc_ordp_ord_rcit_dvsn_cd": "",
            })
        return rows

    def daily_ccld(self, params: Mapping[str, str], tr_cont: str) -> Reply:
        if not self._account_ok(params):
            return error("APBK9011")
        start, end = params.get("INQR_STRT_DT", ""), params.get("INQR_END_DT", "")
        if not (len(start) == 8 and start.isdigit() and len(end) == 8 and end.isdigit()):
            return error("APBK9012", "INQR_STRT_DT/INQR_END_DT must be YYYYMMDD")
        rows = [r for r in self.order_rows() if start <= r["ord_dt"] <= end]
        side = params.get("SLL_BUY_DVSN_CD", "00")
        if side in ("01", "02"):
            rows = [r for r in rows if r["sll_buy_dvsn_cd"] == side]
        if params.get("PDNO"):
            rows = [r for r in rows if r["pdno"] == params["PDNO"]]
        if params.get("ODNO"):
            rows = [r for r in rows if r["odno"] == params["ODNO"].strip().zfill(10)]
        ccld = params.get("CCLD_DVSN", "00")
        if ccld == "01":
            rows = [r for r in rows if int(r["tot_ccld_qty"]) > 0]
        elif ccld == "02":
            rows = [r for r in rows if int(r["rmn_qty"]) > 0]
        if params.get("INQR_DVSN", "00") == "00":
            rows.reverse()
        chunk, headers, cursors = self.page(rows, self.profile.ccld_page, params, tr_cont)
        total_q = sum(int(r["ord_qty"]) for r in rows)
        total_c = sum(int(r["tot_ccld_qty"]) for r in rows)
        total_a = sum(float(r["tot_ccld_amt"]) for r in rows)
        return ok(headers=headers, **cursors, output1=chunk,
                  output2={"tot_ord_qty": str(total_q), "tot_ccld_qty": str(total_c), "tot_ccld_amt": _s(total_a),
                           "prsm_tlex_smtl": _s(round(self.engine.fees.commission(total_a))),
                           "pchs_avg_pric": _s(round(total_a / total_c, 2) if total_c else 0)})

    def psbl_rvsecncl(self, params: Mapping[str, str], tr_cont: str) -> Reply:
        if not self._account_ok(params):
            return error("APBK9011")
        rows = []
        for r, order in zip(self.order_rows(), self.orders.values()):
            if order.kind == "cancel" or int(r["rmn_qty"]) <= 0 or self._active_leg(order) is None:
                continue
            rows.append({"ord_gno_brno": r["ord_gno_brno"], "odno": r["odno"], "orgn_odno": r["orgn_odno"],
                         "pdno": r["pdno"], "prdt_name": r["prdt_name"], "ord_qty": r["ord_qty"],
                         "ord_unpr": r["ord_unpr"], "ord_tmd": r["ord_tmd"], "tot_ccld_qty": r["tot_ccld_qty"],
                         "tot_ccld_amt": r["tot_ccld_amt"], "psbl_qty": r["rmn_qty"],
                         "sll_buy_dvsn_cd": r["sll_buy_dvsn_cd"], "ord_dvsn_cd": r["ord_dvsn_cd"],
                         "excg_id_dvsn_cd": "KRX"})
        chunk, headers, cursors = self.page(rows, self.profile.psbl_rvsecncl_page, params, tr_cont)
        return ok(headers=headers, **cursors, output=chunk)

    def _mark(self, symbol: str, avg: float) -> float:
        last = self.engine.last_price(symbol)
        if last is not None:
            return last
        try:
            return self.engine.quote(symbol, self.clock.now()).last
        except Exception:
            return avg

    def balance(self, params: Mapping[str, str], tr_cont: str) -> Reply:
        if not self._account_ok(params):
            return error("APBK9011")
        rows = []
        bought: dict[str, int] = {}
        sold: dict[str, int] = {}
        for f in self.engine.fills():
            (bought if f.side is Side.BUY else sold)[f.symbol] = \
                (bought if f.side is Side.BUY else sold).get(f.symbol, 0) + f.qty
        positions = {p.symbol: p for p in self.engine.positions()}
        for symbol in sorted(set(positions) | set(sold)):
            p = positions.get(symbol)
            qty, avg = (p.qty, p.avg_price) if p else (0, 0.0)
            last = self._mark(symbol, avg)
            reserved = self.engine.reserved_shares(symbol)
            ev = qty * last
            cost = qty * avg
            rows.append({"pdno": symbol, "prdt_name": self.name(symbol), "trad_dvsn_name": "현금",
                         "bfdy_buy_qty": "0", "bfdy_sll_qty": "0", "thdt_buyqty": str(bought.get(symbol, 0)),
                         "thdt_sll_qty": str(sold.get(symbol, 0)), "hldg_qty": str(qty),
                         "ord_psbl_qty": str(max(0, qty - reserved)), "pchs_avg_pric": f"{avg:.4f}",
                         "pchs_amt": _s(round(cost)), "prpr": _s(last), "evlu_amt": _s(round(ev)),
                         "evlu_pfls_amt": _s(round(ev - cost)),
                         "evlu_pfls_rt": f"{((ev - cost) / cost * 100) if cost else 0:.2f}",
                         "evlu_erng_rt": f"{((ev - cost) / cost * 100) if cost else 0:.8f}",
                         "fltt_rt": "0.00", "bfdy_cprs_icdc": "0", "loan_dt": "", "loan_amt": "0",
                         "stln_slng_chgs": "0", "expd_dt": "", "grta_rt_name": "", "sbst_pric": "0",
                         "stck_loan_unpr": "0"})
        chunk, headers, cursors = self.page(rows, self.profile.balance_page, params, tr_cont)
        account = self.engine.account()
        cost_total = sum(p.qty * p.avg_price for p in positions.values())
        buy_amt = sum(f.qty * f.price for f in self.engine.fills() if f.side is Side.BUY)
        sell_amt = sum(f.qty * f.price for f in self.engine.fills() if f.side is Side.SELL)
        fees = sum(f.commission + f.tax for f in self.engine.fills())
        summary = {"dnca_tot_amt": _s(round(account.cash)), "nxdy_excc_amt": _s(round(account.cash)),
                   "prvs_rcdl_excc_amt": _s(round(account.cash)), "cma_evlu_amt": "0",
                   "bfdy_buy_amt": "0", "thdt_buy_amt": _s(round(buy_amt)), "nxdy_auto_rdpt_amt": "0",
                   "bfdy_sll_amt": "0", "thdt_sll_amt": _s(round(sell_amt)), "d2_auto_rdpt_amt": "0",
                   "bfdy_tlex_amt": "0", "thdt_tlex_amt": _s(round(fees)), "tot_loan_amt": "0",
                   "scts_evlu_amt": _s(round(account.market_value)), "tot_evlu_amt": _s(round(account.equity)),
                   "nass_amt": _s(round(account.equity)), "fncg_gld_auto_rdpt_yn": "N",
                   "pchs_amt_smtl_amt": _s(round(cost_total)), "evlu_amt_smtl_amt": _s(round(account.market_value)),
                   "evlu_pfls_smtl_amt": _s(round(account.market_value - cost_total)), "tot_stln_slng_chgs": "0",
                   "bfdy_tot_asst_evlu_amt": _s(round(account.equity)), "asst_icdc_amt": "0",
                   "asst_icdc_erng_rt": "0.00000000"}
        return ok(headers=headers, **cursors, output1=chunk, output2=[summary])

    def psbl_order(self, params: Mapping[str, str]) -> Reply:
        if not self._account_ok(params):
            return error("APBK9011")
        account = self.engine.account()
        symbol = params.get("PDNO", "")
        price = 0.0
        try:
            price = float(params.get("ORD_UNPR") or 0)
        except ValueError:
            return error("APBK9006")
        if not price and symbol and self.engine.has_symbol(symbol):
            try:
                q = self.engine.quote(symbol, self.clock.now())
                price = float(q.upper_limit or q.last) if params.get("ORD_DVSN") == "01" else q.last
            except Exception:
                price = 0.0
        cash = account.buyable_cash
        qty = int(cash // (price * (1 + self.engine.fees.commission_rate))) if price else 0
        return ok(output={"ord_psbl_cash": _s(round(cash)), "ord_psbl_sbst": "0", "ruse_psbl_amt": "0",
                          "fund_rpch_chgs": "0", "psbl_qty_calc_unpr": _s(price), "nrcvb_buy_amt": _s(round(cash)),
                          "nrcvb_buy_qty": str(qty), "max_buy_amt": _s(round(cash)), "max_buy_qty": str(qty),
                          "cma_evlu_amt": "0", "ovrs_re_use_amt_wcrc": "0", "ord_psbl_frcr_amt_wcrc": "0"})

    # -- paging ------------------------------------------------------------------------------

    def page(self, rows: list[dict[str, Any]], size: int, params: Mapping[str, str], tr_cont: str,
             fk: str = "CTX_AREA_FK100", nk: str = "CTX_AREA_NK100") -> tuple[list[dict[str, Any]], dict[str, str],
                                                                               dict[str, str]]:
        """A page of ``rows``: the cursor is honoured only with the request header ``tr_cont: N``."""
        cont = tr_cont.strip().upper() == "N"
        offset = 0
        if cont:
            raw = str(params.get(nk, "")).strip()
            offset = int(raw) if raw.isdigit() else 0
        chunk = rows[offset:offset + size]
        more = offset + size < len(rows)
        header = ("M" if more else "E") if cont else ("F" if more else "D")
        width = 100 if fk.endswith("100") else 20
        fk_value = f"{self.profile.account_no}^{self.profile.prod_code}^{len(rows)}"
        nk_value = str(offset + size) if more else ""
        return chunk, {"tr_cont": header}, {fk.lower(): fk_value.ljust(width), nk.lower(): nk_value.ljust(width)}

    # -- market data views -------------------------------------------------------------------

    def _day_ohlcv(self, symbol: str) -> Bar | None:
        day = self._day()
        start = datetime.combine(day, time(0, 0), KST)
        bars = self.exchange.tape.bars(symbol, start, start, "1440m", now=self.clock.now())
        return bars[0] if bars else None

    def price(self, symbol: str) -> Reply:
        if not self.engine.has_symbol(symbol):
            return error("APBK0656", "종목코드 오류입니다.")
        now = self.clock.now()
        try:
            q = self.engine.quote(symbol, now)
        except Exception:
            return error("APBK0656", "시세가 없습니다.")
        inst_base = q.prev_close or q.last
        limits = price_limits(inst_base) if inst_base else None
        day = self._day_ohlcv(symbol)
        last = q.last
        vol = day.volume if day else 0
        vwap = (day.high + day.low + day.close) / 3 if day and vol else last
        value = vwap * vol
        halted = bool(q.halted)
        vi_code = "N"
        if halted and self.engine.vi is not None:
            events = [e for e in self.engine.vi.events if e.symbol == symbol]
            vi_code = "1" if events and events[-1].kind.value == "STATIC" else "2"
        out = {
            "iscd_stat_cls_code": "55", "marg_rate": "20.00", "rprs_mrkt_kor_name": self.market(symbol),
            "bstp_kor_isnm": "전기.전자", "temp_stop_yn": "N", "oprc_rang_cont_yn": "N", "clpr_rang_cont_yn": "N",
            "crdt_able_yn": "Y", "grmn_rate_cls_code": "40", "elw_pblc_yn": "N", "stck_prpr": _s(last),
            "prdy_vrss": _s(last - inst_base if inst_base else 0),
            "prdy_vrss_sign": _sign(last, inst_base, limits),
            "prdy_ctrt": f"{((last - inst_base) / inst_base * 100) if inst_base else 0:.2f}",
            "acml_tr_pbmn": _s(round(value)), "acml_vol": str(vol), "prdy_vrss_vol_rate": "0.00",
            "stck_oprc": _s(day.open if day else 0), "stck_hgpr": _s(day.high if day else 0),
            "stck_lwpr": _s(day.low if day else 0), "stck_mxpr": _s(limits[1] if limits else 0),
            "stck_llam": _s(limits[0] if limits else 0), "stck_sdpr": _s(inst_base or 0),
            "wghn_avrg_stck_prc": f"{vwap:.2f}", "hts_frgn_ehrt": "0.00", "frgn_ntby_qty": "0",
            "pgtr_ntby_qty": "0", "pvt_scnd_dmrs_prc": "0", "pvt_frst_dmrs_prc": "0", "pvt_pont_val": "0",
            "pvt_frst_dmsp_prc": "0", "pvt_scnd_dmsp_prc": "0", "dmrs_val": "0", "dmsp_val": "0", "cpfn": "0",
            "rstc_wdth_prc": _s(limits[1] - inst_base if limits and inst_base else 0), "stck_fcam": "100",
            "stck_sspr": _s(round(last * 0.7)), "aspr_unit": str(tick_size(last)), "hts_deal_qty_unit_val": "1",
            "lstn_stcn": "100000000", "hts_avls": _s(round(last * 1e8 / 1e8)), "per": "10.00", "pbr": "1.00",
            "stac_month": "12", "vol_tnrt": "0.00", "eps": "0", "bps": "0", "d250_hgpr": _s(last),
            "d250_hgpr_date": "", "d250_hgpr_vrss_prpr_rate": "0.00", "d250_lwpr": _s(last), "d250_lwpr_date": "",
            "d250_lwpr_vrss_prpr_rate": "0.00", "stck_dryy_hgpr": _s(last), "dryy_hgpr_vrss_prpr_rate": "0.00",
            "dryy_hgpr_date": "", "stck_dryy_lwpr": _s(last), "dryy_lwpr_vrss_prpr_rate": "0.00",
            "dryy_lwpr_date": "", "w52_hgpr": _s(last), "w52_hgpr_vrss_prpr_ctrt": "0.00", "w52_hgpr_date": "",
            "w52_lwpr": _s(last), "w52_lwpr_vrss_prpr_ctrt": "0.00", "w52_lwpr_date": "", "whol_loan_rmnd_rate": "0.00",
            "ssts_yn": "Y", "stck_shrn_iscd": symbol, "fcam_cnnm": "100", "cpfn_cnnm": "0", "frgn_hldn_qty": "0",
            "vi_cls_code": vi_code, "ovtm_vi_cls_code": "N", "last_ssts_cntg_qty": "0", "invt_caful_yn": "N",
            "mrkt_warn_cls_code": "00", "short_over_yn": "N", "sltr_yn": "N", "mang_issu_cls_code": "N",
        }
        return ok(output=out)

    def _book(self, symbol: str) -> tuple[list[float], list[float], list[int], list[int]]:
        q = self.engine.quote(symbol, self.clock.now())
        ask1 = q.ask or q.last
        bid1 = q.bid or q.last
        asks, bids = [float(ask1)], [float(bid1)]
        for _ in range(9):
            asks.append(float(up(asks[-1])))
            bids.append(float(max(down(bids[-1]), 1)))
        ask_sizes = [100 * (i + 1) for i in range(10)]
        bid_sizes = [100 * (i + 1) for i in range(10)]
        return asks, bids, ask_sizes, bid_sizes

    def asking_price(self, symbol: str) -> Reply:
        if not self.engine.has_symbol(symbol):
            return error("APBK0656", "종목코드 오류입니다.")
        now = self.clock.now()
        try:
            q = self.engine.quote(symbol, now)
            asks, bids, a_sz, b_sz = self._book(symbol)
        except Exception:
            return error("APBK0656", "시세가 없습니다.")
        out1: dict[str, str] = {"aspr_acpt_hour": now.astimezone(KST).strftime("%H%M%S")}
        for i in range(10):
            out1[f"askp{i + 1}"] = _s(asks[i])
            out1[f"bidp{i + 1}"] = _s(bids[i])
            out1[f"askp_rsqn{i + 1}"] = str(a_sz[i])
            out1[f"bidp_rsqn{i + 1}"] = str(b_sz[i])
            out1[f"askp_rsqn_icdc{i + 1}"] = "0"
            out1[f"bidp_rsqn_icdc{i + 1}"] = "0"
        out1.update({"total_askp_rsqn": str(sum(a_sz)), "total_bidp_rsqn": str(sum(b_sz)),
                     "total_askp_rsqn_icdc": "0", "total_bidp_rsqn_icdc": "0", "ovtm_total_askp_icdc": "0",
                     "ovtm_total_bidp_icdc": "0", "ovtm_total_askp_rsqn": "0", "ovtm_total_bidp_rsqn": "0",
                     "ntby_aspr_rsqn": str(sum(b_sz) - sum(a_sz)), "new_mkop_cls_code": "20"})
        phase = session_phase(now)
        base = q.prev_close or q.last
        in_auction = phase in (SessionPhase.PRE_OPEN_AUCTION, SessionPhase.CLOSING_AUCTION) or q.halted
        antc = (q.last if phase is not SessionPhase.PRE_OPEN_AUCTION else base) if in_auction else 0.0
        day = self._day_ohlcv(symbol)
        out2 = {"antc_mkop_cls_code": "311" if in_auction else "", "stck_prpr": _s(q.last),
                "stck_oprc": _s(day.open if day else 0), "stck_hgpr": _s(day.high if day else 0),
                "stck_lwpr": _s(day.low if day else 0), "stck_sdpr": _s(base or 0), "antc_cnpr": _s(antc),
                "antc_cntg_vrss_sign": _sign(antc, base, None) if antc else "3",
                "antc_cntg_vrss": _s(antc - base if antc and base else 0),
                "antc_cntg_prdy_ctrt": f"{((antc - base) / base * 100) if antc and base else 0:.2f}",
                "antc_vol": str(min(a_sz[0], b_sz[0]) if antc else 0), "stck_shrn_iscd": symbol,
                "vi_cls_code": "1" if q.halted else "N"}
        return ok(output1=out1, output2=out2)

    def minute_bars(self, symbol: str, params: Mapping[str, str], day: date | None = None) -> Reply:
        if not self.engine.has_symbol(symbol):
            return error("APBK0656", "종목코드 오류입니다.")
        hour = str(params.get("FID_INPUT_HOUR_1", "")).strip()
        if not (len(hour) == 6 and hour.isdigit()):
            return error("APBK9012", "FID_INPUT_HOUR_1 must be HHMMSS")
        the_day = day or self._day()
        if the_day != self.exchange.feed.session_date:
            return ok(output1={}, output2=[])
        upto = datetime.combine(the_day, time(int(hour[:2]), int(hour[2:4])), KST)
        start = datetime.combine(the_day, time(0, 0), KST)
        bars = self.exchange.tape.bars(symbol, start, upto, "1m", now=self.clock.now())
        newest = sorted(bars, key=lambda b: b.ts, reverse=True)[:self.profile.minute_page]
        cum_value = 0.0
        rows = []
        cum_by_ts: dict[datetime, float] = {}
        for b in sorted(bars, key=lambda b: b.ts):
            cum_value += sum(t for t in [b.close * b.volume])
            cum_by_ts[b.ts] = cum_value
        for b in newest:
            rows.append({"stck_bsop_date": b.ts.strftime("%Y%m%d"), "stck_cntg_hour": b.ts.strftime("%H%M%S"),
                         "stck_prpr": _s(b.close), "stck_oprc": _s(b.open), "stck_hgpr": _s(b.high),
                         "stck_lwpr": _s(b.low), "cntg_vol": str(b.volume),
                         "acml_tr_pbmn": _s(round(cum_by_ts.get(b.ts, 0)))})
        q = self.engine.quote(symbol, self.clock.now()) if bars else None
        out1 = {"prdy_vrss": "0", "prdy_vrss_sign": "3", "prdy_ctrt": "0.00",
                "stck_prdy_clpr": _s(q.prev_close or 0) if q else "0", "acml_vol": str(sum(b.volume for b in bars)),
                "acml_tr_pbmn": _s(round(cum_value)), "hts_kor_isnm": self.name(symbol),
                "stck_prpr": _s(q.last) if q else "0"}
        return ok(output1=out1, output2=rows)

    def _daily_bars(self, symbol: str, start: date, end: date) -> list[Bar]:
        bars = list(self.daily_source(symbol, start, end)) if self.daily_source else []
        today = self._day()
        if start <= today <= end and not any(b.ts.date() == today for b in bars):
            bar = self._day_ohlcv(symbol)
            if bar is not None:
                bars.append(Bar(symbol, datetime.combine(today, time(0, 0), KST), bar.open, bar.high, bar.low,
                                bar.close, bar.volume, "1d"))
        return sorted(bars, key=lambda b: b.ts)

    def daily_chart(self, symbol: str, params: Mapping[str, str]) -> Reply:
        d1, d2 = _ymd(params.get("FID_INPUT_DATE_1", "")), _ymd(params.get("FID_INPUT_DATE_2", ""))
        if d1 is None or d2 is None:
            return error("APBK9012", "FID_INPUT_DATE_1/2 must be YYYYMMDD")
        if params.get("FID_PERIOD_DIV_CODE", "D") != "D":
            return error("APBK9012", "the fake serves FID_PERIOD_DIV_CODE=D only")
        bars = self._daily_bars(symbol, d1, d2)
        newest = list(reversed(bars))[:self.profile.daily_chart_page]
        rows = [{"stck_bsop_date": b.ts.strftime("%Y%m%d"), "stck_clpr": _s(b.close), "stck_oprc": _s(b.open),
                 "stck_hgpr": _s(b.high), "stck_lwpr": _s(b.low), "acml_vol": str(b.volume),
                 "acml_tr_pbmn": _s(round(b.close * b.volume)), "flng_cls_code": "00", "prtt_rate": "0.00",
                 "mod_yn": "N", "prdy_vrss_sign": "3", "prdy_vrss": "0", "revl_issu_reas": ""} for b in newest]
        last = bars[-1] if bars else None
        out1 = {"hts_kor_isnm": self.name(symbol), "stck_shrn_iscd": symbol,
                "stck_prpr": _s(last.close) if last else "0", "stck_prdy_clpr": "0"}
        return ok(output1=out1, output2=rows)

    def daily_price(self, symbol: str) -> Reply:
        today = self._day()
        bars = self._daily_bars(symbol, today - timedelta(days=60), today)
        newest = list(reversed(bars))[:self.profile.daily_price_rows]
        return ok(output=[{"stck_bsop_date": b.ts.strftime("%Y%m%d"), "stck_oprc": _s(b.open),
                           "stck_hgpr": _s(b.high), "stck_lwpr": _s(b.low), "stck_clpr": _s(b.close),
                           "acml_vol": str(b.volume), "prdy_vrss_vol_rate": "0.00", "prdy_vrss": "0",
                           "prdy_vrss_sign": "3", "prdy_ctrt": "0.00", "hts_frgn_ehrt": "0.00",
                           "frgn_ntby_qty": "0", "flng_cls_code": "00", "acml_prtt_rate": "0.00"} for b in newest])

    def investor(self, symbol: str) -> Reply:
        today = self._day()
        flows = self.flow_source(symbol, today - timedelta(days=60), today) if self.flow_source else []
        closes = {b.ts.date(): b.close for b in self._daily_bars(symbol, today - timedelta(days=60), today)}
        rows = []
        for f in sorted(flows, key=lambda x: x["date"], reverse=True)[:self.profile.investor_rows]:
            frgn, orgn = int(f.get("foreign_net") or 0), int(f.get("inst_net") or 0)
            close = closes.get(f["date"], 0.0)
            rows.append({"stck_bsop_date": f["date"].strftime("%Y%m%d"), "stck_clpr": _s(close),
                         "prdy_vrss": "0", "prdy_vrss_sign": "3", "prsn_ntby_qty": str(-(frgn + orgn)),
                         "frgn_ntby_qty": str(frgn), "orgn_ntby_qty": str(orgn),
                         "prsn_ntby_tr_pbmn": _s(round(-(frgn + orgn) * close / 1e6)),
                         "frgn_ntby_tr_pbmn": _s(round(frgn * close / 1e6)),
                         "orgn_ntby_tr_pbmn": _s(round(orgn * close / 1e6)),
                         "prsn_shnu_vol": "0", "frgn_shnu_vol": "0", "orgn_shnu_vol": "0",
                         "prsn_seln_vol": "0", "frgn_seln_vol": "0", "orgn_seln_vol": "0"})
        return ok(output=rows)

    def program_trade(self, symbol: str) -> Reply:
        """Per-minute program trading of the day (the fake attributes 10% of each minute to programs)."""
        day = self._day()
        start = datetime.combine(day, time(0, 0), KST)
        bars = self.exchange.tape.bars(symbol, start, datetime.combine(day, time(23, 59), KST), "1m",
                                       now=self.clock.now())
        rows, net = [], 0
        cum = 0
        for b in bars:
            cum += b.volume
            part = b.volume // 10
            buy = part if b.close >= b.open else part // 2
            sell = part - buy
            net += buy - sell
            rows.append({"bsop_hour": b.ts.strftime("%H%M%S"), "stck_prpr": _s(b.close), "prdy_vrss": "0",
                         "prdy_vrss_sign": "3", "prdy_ctrt": "0.00", "acml_vol": str(cum),
                         "whol_smtn_seln_vol": str(sell), "whol_smtn_shnu_vol": str(buy),
                         "whol_smtn_ntby_qty": str(net), "whol_smtn_seln_tr_pbmn": _s(round(sell * b.close)),
                         "whol_smtn_shnu_tr_pbmn": _s(round(buy * b.close)),
                         "whol_smtn_ntby_tr_pbmn": _s(round(net * b.close)), "whol_ntby_vol_icdc": "0",
                         "whol_ntby_tr_pbmn_icdc": "0"})
        return ok(output=list(reversed(rows)))

    def holidays(self, params: Mapping[str, str], tr_cont: str) -> Reply:
        base = _ymd(params.get("BASS_DT", ""))
        if base is None:
            return error("APBK9012", "BASS_DT must be YYYYMMDD")
        rows = []
        for i in range(60):
            d = base + timedelta(days=i)
            try:
                trading = is_trading_day(d)
            except Exception:
                trading = d.weekday() < 5
            rows.append({"bass_dt": d.strftime("%Y%m%d"), "wday_dvsn_cd": str((d.isoweekday() % 7) + 1).zfill(2),
                         "bzdy_yn": "Y" if trading else "N", "tr_day_yn": "Y" if trading else "N",
                         "opnd_yn": "Y" if trading else "N", "sttl_day_yn": "Y" if trading else "N"})
        chunk, headers, cursors = self.page(rows, self.profile.holiday_page, params, tr_cont, fk="CTX_AREA_FK",
                                            nk="CTX_AREA_NK")
        return ok(headers=headers, **cursors, output=chunk)

    # -- WebSocket records -------------------------------------------------------------------

    def trade_record(self, tick: Tick) -> list[str]:
        """The 46 H0STCNT0 fields of one print (running day statistics kept per symbol)."""
        st = self._stats.get(tick.symbol)
        if st is None:
            st = self._stats[tick.symbol] = _TradeStats()
        local = tick.ts.astimezone(KST)
        hhmmss = local.strftime("%H%M%S")
        buy = tick.aggressor is not Side.SELL
        st.add(float(tick.price), tick.qty, hhmmss, buy)
        try:
            q = self.engine.quote(tick.symbol, tick.ts)
            base, ask1, bid1, halted = q.prev_close, q.ask, q.bid, q.halted
        except Exception:
            base, ask1, bid1, halted = None, tick.price, tick.price, False
        base = base or st.open
        limits = price_limits(base) if base else None
        price = float(tick.price)
        vi_ref = self.engine.vi.static_ref(tick.symbol) if self.engine.vi is not None else None
        ccld = "3" if local.time() < OPEN else ("5" if tick.aggressor is Side.SELL else "1")
        values = {
            "MKSC_SHRN_ISCD": tick.symbol, "STCK_CNTG_HOUR": hhmmss, "STCK_PRPR": _s(price),
            "PRDY_VRSS_SIGN": _sign(price, base, limits), "PRDY_VRSS": _s(price - base if base else 0),
            "PRDY_CTRT": f"{((price - base) / base * 100) if base else 0:.2f}",
            "WGHN_AVRG_STCK_PRC": f"{(st.value / st.volume) if st.volume else price:.2f}",
            "STCK_OPRC": _s(st.open), "STCK_HGPR": _s(st.high), "STCK_LWPR": _s(st.low),
            "ASKP1": _s(ask1 or price), "BIDP1": _s(bid1 or price), "CNTG_VOL": str(tick.qty),
            "ACML_VOL": str(st.volume), "ACML_TR_PBMN": _s(round(st.value)), "SELN_CNTG_CSNU": str(st.sell_count),
            "SHNU_CNTG_CSNU": str(st.buy_count), "NTBY_CNTG_CSNU": str(st.buy_count - st.sell_count),
            "CTTR": f"{(st.buy_volume / st.sell_volume * 100) if st.sell_volume else 100:.2f}",
            "SELN_CNTG_SMTN": str(st.sell_volume), "SHNU_CNTG_SMTN": str(st.buy_volume), "CCLD_DVSN": ccld,
            "SHNU_RATE": f"{(st.buy_volume / st.volume * 100) if st.volume else 0:.2f}",
            "PRDY_VOL_VRSS_ACML_VOL_RATE": "0.00", "OPRC_HOUR": st.open_time,
            "OPRC_VRSS_PRPR_SIGN": _sign(price, st.open, None), "OPRC_VRSS_PRPR": _s(price - st.open),
            "HGPR_HOUR": st.high_time, "HGPR_VRSS_PRPR_SIGN": _sign(price, st.high, None),
            "HGPR_VRSS_PRPR": _s(price - st.high), "LWPR_HOUR": st.low_time,
            "LWPR_VRSS_PRPR_SIGN": _sign(price, st.low, None), "LWPR_VRSS_PRPR": _s(price - st.low),
            "BSOP_DATE": local.strftime("%Y%m%d"), "NEW_MKOP_CLS_CODE": "20", "TRHT_YN": "Y" if halted else "N",
            "ASKP_RSQN1": "100", "BIDP_RSQN1": "100", "TOTAL_ASKP_RSQN": "5500", "TOTAL_BIDP_RSQN": "5500",
            "VOL_TNRT": "0.00", "PRDY_SMNS_HOUR_ACML_VOL": "0", "PRDY_SMNS_HOUR_ACML_VOL_RATE": "0.00",
            "HOUR_CLS_CODE": "0", "MRKT_TRTM_CLS_CODE": "", "VI_STND_PRC": _s(vi_ref or 0),
        }
        return fields_from(values, H0STCNT0_FIELDS)

    def book_record(self, symbol: str) -> list[str]:
        now = self.clock.now()
        asks, bids, a_sz, b_sz = self._book(symbol)
        values: dict[str, str] = {"MKSC_SHRN_ISCD": symbol, "BSOP_HOUR": now.astimezone(KST).strftime("%H%M%S"),
                                  "HOUR_CLS_CODE": "0"}
        for i in range(10):
            values[f"ASKP{i + 1}"] = _s(asks[i])
            values[f"BIDP{i + 1}"] = _s(bids[i])
            values[f"ASKP_RSQN{i + 1}"] = str(a_sz[i])
            values[f"BIDP_RSQN{i + 1}"] = str(b_sz[i])
        st = self._stats.get(symbol)
        values.update({"TOTAL_ASKP_RSQN": str(sum(a_sz)), "TOTAL_BIDP_RSQN": str(sum(b_sz)),
                       "OVTM_TOTAL_ASKP_RSQN": "0", "OVTM_TOTAL_BIDP_RSQN": "0", "ANTC_CNPR": "0", "ANTC_CNQN": "0",
                       "ANTC_VOL": "0", "ANTC_CNTG_VRSS": "0", "ANTC_CNTG_VRSS_SIGN": "3",
                       "ANTC_CNTG_PRDY_CTRT": "0.00", "ACML_VOL": str(st.volume if st else 0),
                       "TOTAL_ASKP_RSQN_ICDC": "0", "TOTAL_BIDP_RSQN_ICDC": "0", "OVTM_TOTAL_ASKP_ICDC": "0",
                       "OVTM_TOTAL_BIDP_ICDC": "0", "STCK_DEAL_CLS_CODE": "0"})
        return fields_from(values, H0STASP0_FIELDS)


def _ymd(value: str) -> date | None:
    v = (value or "").strip()
    if len(v) == 8 and v.isdigit():
        try:
            return date(int(v[:4]), int(v[4:6]), int(v[6:]))
        except ValueError:
            return None
    return None


def group_by_symbol(ticks: Iterable[Tick]) -> list[tuple[str, list[Tick]]]:
    """Consecutive runs of the same symbol (one multi-record frame each)."""
    out: list[tuple[str, list[Tick]]] = []
    for t in ticks:
        if out and out[-1][0] == t.symbol:
            out[-1][1].append(t)
        else:
            out.append((t.symbol, [t]))
    return out


__all__ = ["FAKE_CODES", "FakeKisState", "FakeOrder", "FakeProfile", "LoggedRequest", "Reply", "profile"]
