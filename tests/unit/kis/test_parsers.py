"""WebSocket frames built by hand from the field tables of specs/kis.md §6.4 (not from our serializer)."""

from __future__ import annotations

import base64
from datetime import date, datetime

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from broker_core.clock import KST
from broker_core.kis.crypto import NoticeDecryptError, decrypt_notice
from broker_core.kis.parsers import (
    FrameError,
    parse_book,
    parse_control,
    parse_frame,
    parse_notice,
    parse_trade,
    records,
)
from broker_core.models import Side


def cnt_record(
    code: str, hhmmss: str, price: str, qty: str, *, ccld: str = "1", vi_ref: str = "71500", halted: str = "N"
) -> list[str]:
    """46 fields in the spec's order (§6.4 H0STCNT0), positions written out."""
    return [
        code,  # 0 MKSC_SHRN_ISCD
        hhmmss,  # 1 STCK_CNTG_HOUR
        price,  # 2 STCK_PRPR
        "2",  # 3 PRDY_VRSS_SIGN
        "500",  # 4 PRDY_VRSS
        "0.70",  # 5 PRDY_CTRT
        "71890.12",  # 6 WGHN_AVRG_STCK_PRC
        "71600",  # 7 STCK_OPRC
        "72300",  # 8 STCK_HGPR
        "71400",  # 9 STCK_LWPR
        "72100",  # 10 ASKP1
        "72000",  # 11 BIDP1
        qty,  # 12 CNTG_VOL
        "1234567",  # 13 ACML_VOL
        "88765432100",  # 14 ACML_TR_PBMN
        "100",
        "120",
        "20",
        "105.32",
        "40000",
        "42000",  # 15..20
        ccld,  # 21 CCLD_DVSN
        "51.20",
        "85.10",  # 22 SHNU_RATE, 23 PRDY_VOL_VRSS_ACML_VOL_RATE
        "090000",
        "2",
        "400",  # 24..26 OPRC
        "091500",
        "5",
        "-300",  # 27..29 HGPR
        "090500",
        "2",
        "600",  # 30..32 LWPR
        "20260227",  # 33 BSOP_DATE
        "20",  # 34 NEW_MKOP_CLS_CODE
        halted,  # 35 TRHT_YN
        "3500",  # 36 ASKP_RSQN1
        "4200",  # 37 BIDP_RSQN1
        "350000",
        "420000",
        "0.21",
        "1100000",
        "112.23",  # 38..42
        "0",  # 43 HOUR_CLS_CODE
        "",  # 44 MRKT_TRTM_CLS_CODE
        vi_ref,  # 45 VI_STND_PRC
    ]


def test_single_h0stcnt0_record() -> None:
    rec = cnt_record("005930", "093000", "72000", "500")
    assert len(rec) == 46
    frame = parse_frame("0|H0STCNT0|001|" + "^".join(rec))
    assert (frame.encrypted, frame.tr_id, frame.count) == (False, "H0STCNT0", 1)
    [fields] = records(frame)
    t = parse_trade(fields)
    assert t.symbol == "005930" and t.price == 72000 and t.qty == 500
    assert t.ts == datetime(2026, 2, 27, 9, 30, tzinfo=KST)
    assert (t.ask1, t.bid1, t.cum_volume, t.open, t.high, t.low) == (72100, 72000, 1234567, 71600, 72300, 71400)
    assert t.vi_ref_price == 71500 and t.aggressor is Side.BUY and not t.halted
    assert (t.ask1_size, t.bid1_size) == (3500, 4200)
    tick = t.to_tick()
    assert (tick.symbol, tick.price, tick.qty, tick.aggressor) == ("005930", 72000, 500, Side.BUY)


def test_multi_record_h0stcnt0_frame_yields_every_record() -> None:
    recs = [
        cnt_record("005930", "093000", "72000", "500"),
        cnt_record("005930", "093001", "71900", "30", ccld="5"),
        cnt_record("005930", "093001", "72000", "7", vi_ref="0", halted="Y"),
    ]
    frame = parse_frame("0|H0STCNT0|003|" + "^".join("^".join(r) for r in recs))
    trades = [parse_trade(f) for f in records(frame)]
    assert [(t.price, t.qty) for t in trades] == [(72000, 500), (71900, 30), (72000, 7)]
    assert trades[1].aggressor is Side.SELL
    assert trades[2].vi_ref_price is None and trades[2].halted


def test_bad_frames() -> None:
    with pytest.raises(FrameError):
        parse_frame("2|H0STCNT0|001|x")
    with pytest.raises(FrameError):
        parse_frame("0|H0STCNT0|abc|x")
    frame = parse_frame("0|H0STCNT0|002|" + "^".join(cnt_record("005930", "093000", "1", "1")) + "^extra")
    with pytest.raises(FrameError):
        records(frame)
    with pytest.raises(FrameError):
        parse_trade(["005930", "093000"])


def asp_record(extra: int = 0) -> list[str]:
    """H0STASP0 (§6.4): 0 code, 1 BSOP_HOUR, 2 HOUR_CLS_CODE, 3-12 ASKP1..10, 13-22 BIDP1..10,
    23-32 ASKP_RSQN1..10, 33-42 BIDP_RSQN1..10, 43..58 totals/expected; 62-field variant adds 3."""
    asks = [str(72100 + 100 * i) for i in range(10)]
    bids = [str(72000 - 100 * i) for i in range(10)]
    ask_q = [str(1000 + i) for i in range(10)]
    bid_q = [str(2000 + i) for i in range(10)]
    tail = [
        "500000",
        "600000",
        "0",
        "0",  # 43 TOTAL_ASKP_RSQN 44 TOTAL_BIDP_RSQN 45 46 OVTM
        "71900",
        "12345",
        "23456",  # 47 ANTC_CNPR 48 ANTC_CNQN 49 ANTC_VOL
        "-100",
        "5",
        "-0.14",  # 50 ANTC_CNTG_VRSS 51 SIGN 52 PRDY_CTRT
        "1234567",  # 53 ACML_VOL
        "10",
        "-20",
        "0",
        "0",  # 54..57 ICDC
        "0",
    ]  # 58 STCK_DEAL_CLS_CODE
    rec = ["005930", "085959", "A"] + asks + bids + ask_q + bid_q + tail
    assert len(rec) == 59
    return rec + ["72050", "777", "1"][:extra]


@pytest.mark.parametrize("extra", [0, 3])
def test_h0stasp0_59_and_62_fields(extra: int) -> None:
    rec = asp_record(extra)
    frame = parse_frame("0|H0STASP0|002|" + "^".join(rec + rec))
    books = [parse_book(f, date(2026, 2, 27)) for f in records(frame)]
    assert len(books) == 2
    b = books[0]
    assert b.asks[0] == 72100 and b.asks[9] == 73000 and b.bids[0] == 72000 and b.bids[9] == 71100
    assert b.ask_sizes[0] == 1000 and b.bid_sizes[9] == 2009
    assert (b.total_ask_size, b.total_bid_size) == (500000, 600000)
    assert (b.expected_price, b.expected_qty, b.expected_volume) == (71900, 12345, 23456)
    assert b.cum_volume == 1234567 and b.field_count == 59 + extra
    assert b.ts == datetime(2026, 2, 27, 8, 59, 59, tzinfo=KST)


def notice_record(cntg_yn: str = "2", rctf: str = "0", side: str = "02") -> list[str]:
    """H0STCNI0/9, 26 fields (§6.4)."""
    return [
        "myhtsid",
        "5000000001",
        "0000001234",
        "",
        side,
        rctf,
        "00",
        "0",
        "005930",
        "10",
        "72000",
        "093015",
        "0",
        cntg_yn,
        "2",
        "06590",
        "25",
        "홍길동",
        "",
        "1",
        "N",
        "",
        "10",
        "",
        "삼성전자",
        "72100",
    ]


def _encrypt(key: str, iv: str, text: str) -> str:
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key.encode()), modes.CBC(iv.encode())).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def test_encrypted_execution_notice() -> None:
    key, iv = "k" * 16 + "K" * 16, "0123456789abcdef"
    rec = notice_record()
    frame = parse_frame("1|H0STCNI9|001|" + _encrypt(key, iv, "^".join(rec)))
    assert frame.encrypted and frame.tr_id == "H0STCNI9"
    [fields] = records(frame, decrypt_notice(key, iv, frame.payload))
    n = parse_notice(fields)
    assert n.is_fill and n.side is Side.BUY and n.order_no == "0000001234" and n.symbol == "005930"
    assert (n.fill_qty, n.fill_price, n.order_qty, n.order_price, n.branch) == (10, 72000, 25, 72100, "06590")
    assert n.name == "삼성전자" and n.rctf_cls == "0" and not n.refused
    with pytest.raises(NoticeDecryptError):
        decrypt_notice("x" * 32, iv, frame.payload)


def test_receipt_notice_uses_order_qty_not_fill_fields() -> None:
    n = parse_notice(notice_record(cntg_yn="1", rctf="2", side="01"))
    assert not n.is_fill and n.fill_qty == 0 and n.order_qty == 25 and n.side is Side.SELL and n.rctf_cls == "2"


def test_control_messages() -> None:
    ack = parse_control(
        '{"header":{"tr_id":"H0STCNI9","tr_key":"myhtsid","encrypt":"Y"},"body":{"rt_cd":"0",'
        '"msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{"iv":"0123456789abcdef",'
        '"key":"abcdefghijabcdefghijabcdefghij12"}}}'
    )
    assert ack.ok and ack.msg_cd == "OPSP0000" and ack.iv == "0123456789abcdef" and len(ack.key) == 32
    over = parse_control(
        '{"header":{"tr_id":"H0STCNT0","tr_key":"000660","encrypt":"N"},'
        '"body":{"rt_cd":"1","msg_cd":"OPSP0008","msg1":"MAX SUBSCRIBE OVER"}}'
    )
    assert not over.ok and over.msg_cd == "OPSP0008"
    ping = parse_control('{"header":{"tr_id":"PINGPONG","datetime":"20260227093000"}}')
    assert ping.is_pingpong
