"""The fake KIS server's state and behaviour, free of HTTP: one ``FakeKisState`` composed of the parts
below, each in a module named for its job (the server calls the parts; tests use the hooks here).

- ``profiles``: ``FakeProfile`` / ``profile`` (paper or real: credentials, rates, page sizes)
- ``venue``: what the parts share (profile, paper exchange, engine, clock, symbol names and markets)
- ``traffic``: the request log and the per-app-key rate window (EGW00201)
- ``auth``: access tokens (EGW00133 / EGW00121 / EGW00123), approval keys, AES keys, hashkey
- ``orders``: the order desk (cash orders, modify/cancel, legs on the engine, faults: dropped replies,
  orders that show in the inquiries only after a delay)
- ``notices``: execution notices (H0STCNI0/H0STCNI9 receipts and fills) to the server's sink
- ``account``: inquiry views (daily executions, modifiable orders, balance, buying power)
- ``market_data``: quotations (price, asking price, minute/daily bars, investor, program trade, holidays)
- ``realtime``: WebSocket records (H0STCNT0 prints with day statistics, H0STASP0 books)
- ``wire``: the reply envelope, ``FAKE_CODES``, number formatting and ``tr_cont`` paging

Error codes: those named in specs/kis.md are used as documented (EGW00201 over the rate limit,
EGW00133 token issuance limit, EGW00123 expired / EGW00121 invalid token, APBK0013 order accepted,
APBK0919 market closed, APBK0656 no such product, MCA00000 query OK, OPSP00xx WebSocket acks). Where
the spec knows no code the fake uses its own, all in ``FAKE_CODES`` (APBK9xxx, OPSQ0002 …) — a client
must treat them as opaque business errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from broker_core.clock import Clock
from broker_core.kis.fake.account import AccountViews
from broker_core.kis.fake.auth import Auth, TokenRecord
from broker_core.kis.fake.market_data import DailySource, FlowSource, MarketData
from broker_core.kis.fake.notices import ExecutionNotices, NoticeSink
from broker_core.kis.fake.orders import PAPER_ORD_DVSN, REAL_ORD_DVSN, SIMULATED_ORD_DVSN, FakeOrder, OrderDesk
from broker_core.kis.fake.profiles import FakeProfile, profile
from broker_core.kis.fake.realtime import RealtimeRecords, group_by_symbol
from broker_core.kis.fake.traffic import LoggedRequest, Traffic
from broker_core.kis.fake.venue import Venue
from broker_core.kis.fake.wire import FAKE_CODES, Reply, envelope, error, ok
from broker_core.paper.exchange import PaperExchange
from broker_core.paper.matching import MatchingEngine


class FakeKisState:
    def __init__(
        self,
        prof: FakeProfile,
        exchange: PaperExchange,
        *,
        names: Mapping[str, str] | None = None,
        markets: Mapping[str, str] | None = None,
        daily_source: DailySource | None = None,
        flow_source: FlowSource | None = None,
    ) -> None:
        self.venue = Venue(prof, exchange, names=names, markets=markets)
        self.traffic = Traffic(prof, self.venue.clock)
        self.auth = Auth(prof, self.venue.clock)
        self.notices = ExecutionNotices(self.venue)
        self.order_desk = OrderDesk(self.venue, self.notices)
        self.account = AccountViews(self.venue, self.order_desk)
        self.market_data = MarketData(self.venue, daily_source=daily_source, flow_source=flow_source)
        self.realtime = RealtimeRecords(self.venue, self.market_data)

    # -- shared ------------------------------------------------------------------------------

    @property
    def profile(self) -> FakeProfile:
        return self.venue.profile

    @property
    def exchange(self) -> PaperExchange:
        return self.venue.exchange

    @property
    def engine(self) -> MatchingEngine:
        return self.venue.engine

    @property
    def clock(self) -> Clock:
        return self.venue.clock

    # -- hooks for the server and tests ------------------------------------------------------

    @property
    def notice_sink(self) -> NoticeSink | None:
        """Set by the server: (tr_id, tr_key, plaintext record) → deliver to registered sessions."""
        return self.notices.sink

    @notice_sink.setter
    def notice_sink(self, sink: NoticeSink | None) -> None:
        self.notices.sink = sink

    @property
    def drop_order_replies(self) -> int:
        """Fault: the next N order submits are executed and their replies dropped (connection cut)."""
        return self.order_desk.drop_order_replies

    @drop_order_replies.setter
    def drop_order_replies(self, n: int) -> None:
        self.order_desk.drop_order_replies = n

    @property
    def orders(self) -> dict[str, FakeOrder]:
        """KIS orders by order number (modify and cancel orders included)."""
        return self.order_desk.orders

    @property
    def requests(self) -> list[LoggedRequest]:
        return self.traffic.requests

    def requests_to(self, path: str) -> list[LoggedRequest]:
        return self.traffic.requests_to(path)

    def max_per_window(self, window_s: float = 1.0, paths_prefix: str = "/uapi/") -> int:
        """See ``Traffic.max_per_window``."""
        return self.traffic.max_per_window(window_s, paths_prefix)

    @property
    def tokens_issued(self) -> int:
        return self.auth.tokens_issued

    @property
    def tokens_by_value(self) -> dict[str, TokenRecord]:
        return self.auth.tokens_by_value

    def expire_tokens(self) -> None:
        """Test hook: every issued token is expired from now on (the next call gets EGW00123)."""
        self.auth.expire_tokens()


__all__ = [
    "FAKE_CODES",
    "PAPER_ORD_DVSN",
    "REAL_ORD_DVSN",
    "SIMULATED_ORD_DVSN",
    "DailySource",
    "FakeKisState",
    "FakeOrder",
    "FakeProfile",
    "FlowSource",
    "LoggedRequest",
    "Reply",
    "TokenRecord",
    "envelope",
    "error",
    "group_by_symbol",
    "ok",
    "profile",
]
