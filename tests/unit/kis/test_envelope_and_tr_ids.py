from __future__ import annotations

import pytest

from broker_core.errors import AuthError, BrokerUnavailable, RateLimited
from broker_core.kis import tr_ids as T
from broker_core.kis.envelope import KisApiError, error_for, parse_response


def test_envelope_fields_and_paging() -> None:
    resp = parse_response(
        200,
        {"tr_id": "VTTC8434R", "tr_cont": "M", "gt_uid": "g"},
        b'{"rt_cd":"0","msg_cd":"MCA00000","msg1":"ok  ","output1":[{"pdno":"005930"}],'
        b'"output2":[{"dnca_tot_amt":"1000"}],"ctx_area_fk100":"a   ","ctx_area_nk100":"20  "}',
    )
    assert resp.ok and resp.msg1 == "ok" and resp.has_more
    assert resp.rows("output1") == [{"pdno": "005930"}] and resp.obj("output2") == {"dnca_tot_amt": "1000"}
    assert resp.cursor("CTX_AREA_NK100") == "20"
    last = parse_response(200, {"tr_cont": "D"}, b'{"rt_cd":"0","output":{"a":"1"}}')
    assert not last.has_more and last.rows() == [{"a": "1"}]
    assert not parse_response(200, {"tr_cont": "E"}, b"{}").has_more


def test_error_mapping() -> None:
    rate = parse_response(500, {}, '{"rt_cd":"1","msg_cd":"EGW00201","msg1":"초당 거래건수를 초과하였습니다."}')
    assert isinstance(error_for(rate), RateLimited)
    expired = parse_response(500, {}, '{"rt_cd":"1","msg_cd":"EGW00123","msg1":"기간이 만료된 token 입니다."}')
    assert isinstance(error_for(expired), AuthError)
    token = parse_response(403, {}, '{"error_code":"EGW00133","error_description":"1분당 1회"}')
    assert token.msg_cd == "EGW00133" and isinstance(error_for(token), RateLimited)
    assert isinstance(error_for(parse_response(502, {}, b"<html>bad gateway</html>")), BrokerUnavailable)
    business = error_for(parse_response(200, {}, '{"rt_cd":"1","msg_cd":"APBK0919","msg1":"장운영시간이 아닙니다."}'))
    assert isinstance(business, KisApiError) and business.code == "APBK0919"


def test_tr_ids_current_legacy_and_paper() -> None:
    assert T.ORDER_BUY.resolve(paper=False) == "TTTC0012U"
    assert T.ORDER_BUY.resolve(paper=True) == "VTTC0012U"
    assert T.ORDER_BUY.resolve(paper=True, legacy=True) == "VTTC0802U"
    assert T.DAILY_CCLD.ids(paper=True) == {"VTTC0081R", "VTTC8001R"}
    assert T.paper_variant("TTTC8434R") == "VTTC8434R" and T.paper_variant("FHKST01010100") == "FHKST01010100"
    assert T.PRICE.resolve(paper=True) == "FHKST01010100"
    with pytest.raises(T.TrUnavailable):
        T.PROGRAM_TRADE.resolve(paper=True)
    assert T.for_path(T.ORDER_BUY.path, "VTTC0801U", paper=True) is T.ORDER_SELL
    assert T.for_path(T.ORDER_BUY.path, "TTTC0012U", paper=True) is None
