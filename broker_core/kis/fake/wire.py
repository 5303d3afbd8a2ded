"""KIS wire conventions shared by every part of the fake: the reply envelope and the fake's own error
codes (``FAKE_CODES``), KIS number/sign/date formatting and ``tr_cont`` paging."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from broker_core.kis.fake.profiles import FakeProfile

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


def ok(
    msg_cd: str = "MCA00000", msg1: str = "정상처리 되었습니다.", headers: dict[str, str] | None = None, **outputs: Any
) -> Reply:
    return Reply(200, envelope("0", msg_cd, msg1, **outputs), headers or {})


def num(x: float | int) -> str:
    """A KIS number string (integers without a decimal point)."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.2f}"
    return str(x)


def sign(price: float, base: float | None, limits: tuple[int, int] | None) -> str:
    """A KIS change sign: 1 upper limit, 2 up, 3 flat (or no base), 4 lower limit, 5 down."""
    if not base:
        return "3"
    if limits and price >= limits[1]:
        return "1"
    if limits and price <= limits[0]:
        return "4"
    return "2" if price > base else ("5" if price < base else "3")


def ymd(value: str) -> date | None:
    """A YYYYMMDD parameter as a date (None if malformed)."""
    v = (value or "").strip()
    if len(v) == 8 and v.isdigit():
        try:
            return date(int(v[:4]), int(v[4:6]), int(v[6:]))
        except ValueError:
            return None
    return None


def page(
    prof: FakeProfile,
    rows: list[dict[str, Any]],
    size: int,
    params: Mapping[str, str],
    tr_cont: str,
    fk: str = "CTX_AREA_FK100",
    nk: str = "CTX_AREA_NK100",
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """A page of ``rows``: the cursor is honoured only with the request header ``tr_cont: N``."""
    cont = tr_cont.strip().upper() == "N"
    offset = 0
    if cont:
        raw = str(params.get(nk, "")).strip()
        offset = int(raw) if raw.isdigit() else 0
    chunk = rows[offset : offset + size]
    more = offset + size < len(rows)
    header = ("M" if more else "E") if cont else ("F" if more else "D")
    width = 100 if fk.endswith("100") else 20
    fk_value = f"{prof.account_no}^{prof.prod_code}^{len(rows)}"
    nk_value = str(offset + size) if more else ""
    return chunk, {"tr_cont": header}, {fk.lower(): fk_value.ljust(width), nk.lower(): nk_value.ljust(width)}


__all__ = ["FAKE_CODES", "Reply", "envelope", "error", "num", "ok", "page", "sign", "ymd"]
