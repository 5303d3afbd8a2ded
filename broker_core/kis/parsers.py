"""KIS WebSocket frames and records (specs/kis.md §6.2, §6.4).

Data frames are text ``E|TR_ID|NNN|payload``: ``E`` 0 plain / 1 encrypted, ``NNN`` the record count,
``payload`` the NNN records concatenated with every field joined by ``^`` (no record separator): the
record length is the field count divided by NNN (H0STASP0 may carry 59 or 62 fields). Control
messages (acks, PINGPONG) are JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from broker_core.clock import KST
from broker_core.models import Side, Tick

H0STCNT0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",
    "STCK_CNTG_HOUR",
    "STCK_PRPR",
    "PRDY_VRSS_SIGN",
    "PRDY_VRSS",
    "PRDY_CTRT",
    "WGHN_AVRG_STCK_PRC",
    "STCK_OPRC",
    "STCK_HGPR",
    "STCK_LWPR",
    "ASKP1",
    "BIDP1",
    "CNTG_VOL",
    "ACML_VOL",
    "ACML_TR_PBMN",
    "SELN_CNTG_CSNU",
    "SHNU_CNTG_CSNU",
    "NTBY_CNTG_CSNU",
    "CTTR",
    "SELN_CNTG_SMTN",
    "SHNU_CNTG_SMTN",
    "CCLD_DVSN",
    "SHNU_RATE",
    "PRDY_VOL_VRSS_ACML_VOL_RATE",
    "OPRC_HOUR",
    "OPRC_VRSS_PRPR_SIGN",
    "OPRC_VRSS_PRPR",
    "HGPR_HOUR",
    "HGPR_VRSS_PRPR_SIGN",
    "HGPR_VRSS_PRPR",
    "LWPR_HOUR",
    "LWPR_VRSS_PRPR_SIGN",
    "LWPR_VRSS_PRPR",
    "BSOP_DATE",
    "NEW_MKOP_CLS_CODE",
    "TRHT_YN",
    "ASKP_RSQN1",
    "BIDP_RSQN1",
    "TOTAL_ASKP_RSQN",
    "TOTAL_BIDP_RSQN",
    "VOL_TNRT",
    "PRDY_SMNS_HOUR_ACML_VOL",
    "PRDY_SMNS_HOUR_ACML_VOL_RATE",
    "HOUR_CLS_CODE",
    "MRKT_TRTM_CLS_CODE",
    "VI_STND_PRC",
)
H0STASP0_FIELDS: tuple[str, ...] = (
    ("MKSC_SHRN_ISCD", "BSOP_HOUR", "HOUR_CLS_CODE")
    + tuple(f"ASKP{i}" for i in range(1, 11))
    + tuple(f"BIDP{i}" for i in range(1, 11))
    + tuple(f"ASKP_RSQN{i}" for i in range(1, 11))
    + tuple(f"BIDP_RSQN{i}" for i in range(1, 11))
    + (
        "TOTAL_ASKP_RSQN",
        "TOTAL_BIDP_RSQN",
        "OVTM_TOTAL_ASKP_RSQN",
        "OVTM_TOTAL_BIDP_RSQN",
        "ANTC_CNPR",
        "ANTC_CNQN",
        "ANTC_VOL",
        "ANTC_CNTG_VRSS",
        "ANTC_CNTG_VRSS_SIGN",
        "ANTC_CNTG_PRDY_CTRT",
        "ACML_VOL",
        "TOTAL_ASKP_RSQN_ICDC",
        "TOTAL_BIDP_RSQN_ICDC",
        "OVTM_TOTAL_ASKP_ICDC",
        "OVTM_TOTAL_BIDP_ICDC",
        "STCK_DEAL_CLS_CODE",
    )
)
VI_HOUR_CLS = "C"
"""H0STCNT0 field 43 HOUR_CLS_CODE while the symbol is in a VI ("C: 9시이후의 예상가, VI발동") [uncertain]."""
H0STASP0_EXTRA_FIELDS: tuple[str, ...] = ("KMID_PRC", "KMID_TOTAL_RSQN", "KMID_CLS_CODE")
"""The 62-field variant reported by one third party (assumed appended after the 59) [uncertain]."""
H0STCNI_FIELDS: tuple[str, ...] = (
    "CUST_ID",
    "ACNT_NO",
    "ODER_NO",
    "OODER_NO",
    "SELN_BYOV_CLS",
    "RCTF_CLS",
    "ODER_KIND",
    "ODER_COND",
    "STCK_SHRN_ISCD",
    "CNTG_QTY",
    "CNTG_UNPR",
    "STCK_CNTG_HOUR",
    "RFUS_YN",
    "CNTG_YN",
    "ACPT_YN",
    "BRNC_NO",
    "ODER_QTY",
    "ACNT_NAME",
    "ORD_COND_PRC",
    "ORD_EXG_GB",
    "POPUP_YN",
    "FILLER",
    "CRDT_CLS",
    "CRDT_LOAN_DATE",
    "CNTG_ISNM40",
    "ODER_PRC",
)
H0STPGM0_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",
    "STCK_CNTG_HOUR",
    "SELN_CNQN",
    "SELN_TR_PBMN",
    "SHNU_CNQN",
    "SHNU_TR_PBMN",
    "NTBY_CNQN",
    "NTBY_TR_PBMN",
    "SELN_RSQN",
    "SHNU_RSQN",
    "WHOL_NTBY_QTY",
)
FIELD_TABLES: dict[str, tuple[str, ...]] = {
    "H0STCNT0": H0STCNT0_FIELDS,
    "H0STANC0": H0STCNT0_FIELDS[:45],
    "H0STASP0": H0STASP0_FIELDS,
    "H0STCNI0": H0STCNI_FIELDS,
    "H0STCNI9": H0STCNI_FIELDS,
    "H0STPGM0": H0STPGM0_FIELDS,
}
_POS_CNT = {name: i for i, name in enumerate(H0STCNT0_FIELDS)}
_POS_ASP = {name: i for i, name in enumerate(H0STASP0_FIELDS)}
_POS_CNI = {name: i for i, name in enumerate(H0STCNI_FIELDS)}


class FrameError(ValueError):
    """A data frame or record that does not follow the documented layout."""


@dataclass(frozen=True, slots=True)
class Frame:
    encrypted: bool
    tr_id: str
    count: int
    payload: str


def is_data_frame(text: str) -> bool:
    return len(text) > 2 and text[0] in "01" and text[1] == "|"


def parse_frame(text: str) -> Frame:
    """Split ``E|TR_ID|NNN|payload`` (the payload may itself contain ``|``: split three times only)."""
    parts = text.split("|", 3)
    if len(parts) != 4 or parts[0] not in ("0", "1"):
        raise FrameError(f"not a KIS data frame: {text[:40]!r}")
    try:
        count = int(parts[2])
    except ValueError as exc:
        raise FrameError(f"bad record count {parts[2]!r} in frame {text[:40]!r}") from exc
    if count < 1:
        raise FrameError(f"record count must be >= 1, got {count}")
    return Frame(encrypted=parts[0] == "1", tr_id=parts[1], count=count, payload=parts[3])


def split_records(payload: str, count: int, field_count: int | None = None) -> list[list[str]]:
    """The ``count`` records of a payload; the record length is total fields / count (checked against
    ``field_count`` when the division is not exact)."""
    fields = payload.split("^")
    if count == 1:
        return [fields]
    if len(fields) % count == 0:
        size = len(fields) // count
    elif field_count and len(fields) >= field_count * count:
        size = field_count
    else:
        raise FrameError(f"{len(fields)} fields do not split into {count} records")
    return [fields[i * size : (i + 1) * size] for i in range(count)]


def records(frame: Frame, payload: str | None = None) -> list[list[str]]:
    table = FIELD_TABLES.get(frame.tr_id)
    return split_records(payload if payload is not None else frame.payload, frame.count, len(table) if table else None)


def _f(fields: Sequence[str], i: int) -> str:
    return fields[i].strip() if i < len(fields) else ""


def _num(fields: Sequence[str], i: int) -> float:
    value = _f(fields, i)
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError as exc:
        raise FrameError(f"field {i} is not a number: {value!r}") from exc


def _int(fields: Sequence[str], i: int) -> int:
    return int(_num(fields, i))


def _ts(day_text: str, hhmmss: str, day: date | None) -> datetime:
    d = day
    if len(day_text) == 8 and day_text.isdigit():
        d = date(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:8]))
    if d is None:
        d = datetime.now(KST).date()
    h = hhmmss.zfill(6)
    return datetime(d.year, d.month, d.day, int(h[0:2]), int(h[2:4]), int(h[4:6]), tzinfo=KST)


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One H0STCNT0 record (a trade print)."""

    symbol: str
    ts: datetime
    price: float
    change_sign: str
    change: float
    change_pct: float
    vwap: float
    open: float
    high: float
    low: float
    ask1: float
    bid1: float
    qty: int
    cum_volume: int
    cum_value: float
    ccld_dvsn: str
    ask1_size: int
    bid1_size: int
    halted: bool
    market_op_code: str
    hour_cls_code: str
    vi_ref_price: float | None
    """Field 45 VI_STND_PRC: the static-VI reference price (None when 0/blank)."""

    @property
    def aggressor(self) -> Side | None:
        return {"1": Side.BUY, "5": Side.SELL}.get(self.ccld_dvsn)

    @property
    def in_vi(self) -> bool:
        """The symbol is in a volatility interruption: field 43 HOUR_CLS_CODE ``C`` ("9시이후의 예상가, VI발동"
        in the KIS field description; the code set is [uncertain] in specs/kis.md §6.4)."""
        return self.hour_cls_code == VI_HOUR_CLS

    def to_tick(self) -> Tick:
        return Tick(
            symbol=self.symbol, ts=self.ts, price=self.price, qty=self.qty, aggressor=self.aggressor, vi=self.in_vi
        )


def parse_trade(fields: Sequence[str], day: date | None = None) -> TradeRecord:
    if len(fields) < 46:
        raise FrameError(f"H0STCNT0 record has {len(fields)} fields, expected 46")
    p = _POS_CNT
    vi = _num(fields, p["VI_STND_PRC"])
    return TradeRecord(
        symbol=_f(fields, p["MKSC_SHRN_ISCD"]),
        ts=_ts(_f(fields, p["BSOP_DATE"]), _f(fields, p["STCK_CNTG_HOUR"]), day),
        price=_num(fields, p["STCK_PRPR"]),
        change_sign=_f(fields, p["PRDY_VRSS_SIGN"]),
        change=_num(fields, p["PRDY_VRSS"]),
        change_pct=_num(fields, p["PRDY_CTRT"]),
        vwap=_num(fields, p["WGHN_AVRG_STCK_PRC"]),
        open=_num(fields, p["STCK_OPRC"]),
        high=_num(fields, p["STCK_HGPR"]),
        low=_num(fields, p["STCK_LWPR"]),
        ask1=_num(fields, p["ASKP1"]),
        bid1=_num(fields, p["BIDP1"]),
        qty=_int(fields, p["CNTG_VOL"]),
        cum_volume=_int(fields, p["ACML_VOL"]),
        cum_value=_num(fields, p["ACML_TR_PBMN"]),
        ccld_dvsn=_f(fields, p["CCLD_DVSN"]),
        ask1_size=_int(fields, p["ASKP_RSQN1"]),
        bid1_size=_int(fields, p["BIDP_RSQN1"]),
        halted=_f(fields, p["TRHT_YN"]).upper() == "Y",
        market_op_code=_f(fields, p["NEW_MKOP_CLS_CODE"]),
        hour_cls_code=_f(fields, p["HOUR_CLS_CODE"]),
        vi_ref_price=vi if vi > 0 else None,
    )


@dataclass(frozen=True, slots=True)
class BookRecord:
    """One H0STASP0 record (10-level order book and the expected auction match)."""

    symbol: str
    ts: datetime
    hour_cls_code: str
    asks: tuple[float, ...]
    bids: tuple[float, ...]
    ask_sizes: tuple[int, ...]
    bid_sizes: tuple[int, ...]
    total_ask_size: int
    total_bid_size: int
    expected_price: float
    expected_qty: int
    expected_volume: int
    cum_volume: int
    deal_cls_code: str
    field_count: int


def parse_book(fields: Sequence[str], day: date | None = None) -> BookRecord:
    if len(fields) < 59:
        raise FrameError(f"H0STASP0 record has {len(fields)} fields, expected 59 (or 62)")
    p = _POS_ASP
    return BookRecord(
        symbol=_f(fields, 0),
        ts=_ts("", _f(fields, p["BSOP_HOUR"]), day),
        hour_cls_code=_f(fields, 2),
        asks=tuple(_num(fields, p[f"ASKP{i}"]) for i in range(1, 11)),
        bids=tuple(_num(fields, p[f"BIDP{i}"]) for i in range(1, 11)),
        ask_sizes=tuple(_int(fields, p[f"ASKP_RSQN{i}"]) for i in range(1, 11)),
        bid_sizes=tuple(_int(fields, p[f"BIDP_RSQN{i}"]) for i in range(1, 11)),
        total_ask_size=_int(fields, p["TOTAL_ASKP_RSQN"]),
        total_bid_size=_int(fields, p["TOTAL_BIDP_RSQN"]),
        expected_price=_num(fields, p["ANTC_CNPR"]),
        expected_qty=_int(fields, p["ANTC_CNQN"]),
        expected_volume=_int(fields, p["ANTC_VOL"]),
        cum_volume=_int(fields, p["ACML_VOL"]),
        deal_cls_code=_f(fields, p["STCK_DEAL_CLS_CODE"]),
        field_count=len(fields),
    )


@dataclass(frozen=True, slots=True)
class ExecutionNotice:
    """One H0STCNI0/H0STCNI9 record (order receipt or fill)."""

    hts_id: str
    account: str
    order_no: str
    orig_order_no: str
    side: Side
    rctf_cls: str
    """``0`` normal, ``1`` modify, ``2`` cancel."""
    order_kind: str
    symbol: str
    fill_qty: int
    fill_price: float
    time: str
    refused: bool
    is_fill: bool
    """CNTG_YN = 2: an execution; otherwise a receipt (order/modify/cancel/reject)."""
    acpt_yn: str
    branch: str
    order_qty: int
    order_price: float
    name: str

    def ts(self, day: date) -> datetime:
        return _ts("", self.time, day)


def parse_notice(fields: Sequence[str]) -> ExecutionNotice:
    if len(fields) < 18:
        raise FrameError(f"execution notice has {len(fields)} fields, expected 26 (at least 18)")
    p = _POS_CNI
    is_fill = _f(fields, p["CNTG_YN"]) == "2"
    side_code = _f(fields, p["SELN_BYOV_CLS"])
    if side_code not in ("01", "02"):
        raise FrameError(f"SELN_BYOV_CLS must be 01 or 02, got {side_code!r}")
    return ExecutionNotice(
        hts_id=_f(fields, p["CUST_ID"]),
        account=_f(fields, p["ACNT_NO"]),
        order_no=_f(fields, p["ODER_NO"]),
        orig_order_no=_f(fields, p["OODER_NO"]),
        side=Side.SELL if side_code == "01" else Side.BUY,
        rctf_cls=_f(fields, p["RCTF_CLS"]) or "0",
        order_kind=_f(fields, p["ODER_KIND"]),
        symbol=_f(fields, p["STCK_SHRN_ISCD"]),
        fill_qty=_int(fields, p["CNTG_QTY"]) if is_fill else 0,
        fill_price=_num(fields, p["CNTG_UNPR"]) if is_fill else 0.0,
        time=_f(fields, p["STCK_CNTG_HOUR"]),
        refused=_f(fields, p["RFUS_YN"]) == "1",
        is_fill=is_fill,
        acpt_yn=_f(fields, p["ACPT_YN"]),
        branch=_f(fields, p["BRNC_NO"]),
        order_qty=_int(fields, p["ODER_QTY"]),
        order_price=_num(fields, p["ODER_PRC"]) if len(fields) > p["ODER_PRC"] else 0.0,
        name=_f(fields, p["CNTG_ISNM40"]) if len(fields) > p["CNTG_ISNM40"] else "",
    )


@dataclass(frozen=True, slots=True)
class ControlMessage:
    tr_id: str
    tr_key: str
    encrypt: str
    rt_cd: str
    msg_cd: str
    msg1: str
    key: str
    iv: str
    raw: dict[str, Any]

    @property
    def is_pingpong(self) -> bool:
        return self.tr_id == "PINGPONG"

    @property
    def ok(self) -> bool:
        return self.rt_cd == "0"


def parse_control(text: str) -> ControlMessage:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FrameError(f"control message is not JSON: {text[:60]!r}") from exc
    if not isinstance(data, dict):
        raise FrameError("control message is not a JSON object")
    header = data.get("header") or {}
    body = data.get("body") or {}
    output = body.get("output") or {}
    return ControlMessage(
        tr_id=str(header.get("tr_id", "")),
        tr_key=str(header.get("tr_key", "")),
        encrypt=str(header.get("encrypt", "")),
        rt_cd=str(body.get("rt_cd", "")).strip(),
        msg_cd=str(body.get("msg_cd", "")).strip(),
        msg1=str(body.get("msg1", "")).strip(),
        key=str(output.get("key", "") if isinstance(output, dict) else ""),
        iv=str(output.get("iv", "") if isinstance(output, dict) else ""),
        raw=data,
    )


def format_frame(tr_id: str, recs: Sequence[Sequence[str]], *, encrypted_payload: str | None = None) -> str:
    """Serialize records as a data frame (the fake's side); an encrypted payload is sent as given."""
    if encrypted_payload is not None:
        return f"1|{tr_id}|{len(recs):03d}|{encrypted_payload}"
    return f"0|{tr_id}|{len(recs):03d}|" + "^".join("^".join(r) for r in recs)


def join_records(recs: Sequence[Sequence[str]]) -> str:
    return "^".join("^".join(r) for r in recs)


def fields_from(values: dict[str, str], table: Sequence[str]) -> list[str]:
    """A record laid out by a field table (missing names become "")."""
    return [str(values.get(name, "")) for name in table]
