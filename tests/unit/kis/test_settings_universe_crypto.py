from __future__ import annotations

import pytest

from broker_core.kis.crypto import decrypt_notice, encrypt_notice, new_key_iv
from broker_core.kis.settings import PAPER_REST_URL, KisConfigError, KisSettings, split_account
from broker_core.kis.universe import classify

PAPER_ENV = {
    "KIS_IS_PAPER": "true",
    "KIS_PAPER_APP_KEY": "pk",
    "KIS_PAPER_APP_SECRET": "paper-secret-zz",
    "KIS_PAPER_ACCOUNT_NO": "50000000-01",
    "KIS_HTS_ID": "me",
}


def test_paper_settings_from_env() -> None:
    s = KisSettings.from_env(PAPER_ENV)
    assert s.is_paper and s.account_no == "50000000" and s.account_prod_code == "01"
    assert s.rest_url == PAPER_REST_URL and s.rate_budget == 2.0 and s.notice_tr_id == "H0STCNI9"
    assert s.real_credentials is None
    with_real = KisSettings.from_env(
        {
            **PAPER_ENV,
            "KIS_APP_KEY": "rk",
            "KIS_APP_SECRET": "real-secret-qq",
            "KIS_REST_URL": "http://localhost:1/",
            "KIS_RATE_PER_SEC": "5",
        }
    )
    assert with_real.real_credentials is not None and with_real.rest_url == "http://localhost:1"
    assert with_real.rate_budget == 5.0
    assert "real-secret-qq" not in repr(with_real) and "paper-secret-zz" not in repr(with_real)


def test_real_settings_and_errors_name_the_variable() -> None:
    real = KisSettings.from_env(
        {"KIS_IS_PAPER": "false", "KIS_APP_KEY": "k", "KIS_APP_SECRET": "s", "KIS_ACCOUNT_NO": "6000000001"}
    )
    assert (real.account_no, real.account_prod_code, real.rate_budget, real.notice_tr_id) == (
        "60000000",
        "01",
        20.0,
        "H0STCNI0",
    )
    with pytest.raises(KisConfigError, match="KIS_PAPER_APP_SECRET"):
        KisSettings.from_env({**PAPER_ENV, "KIS_PAPER_APP_SECRET": ""})
    with pytest.raises(KisConfigError, match="KIS_PAPER_ACCOUNT_NO"):
        KisSettings.from_env({**PAPER_ENV, "KIS_PAPER_ACCOUNT_NO": "123"})
    with pytest.raises(KisConfigError, match="KIS_IS_PAPER"):
        KisSettings.from_env({**PAPER_ENV, "KIS_IS_PAPER": "maybe"})
    assert split_account("12345678", "22") == ("12345678", "22")


@pytest.mark.parametrize(
    "symbol,market,name,eligible,reason",
    [
        ("005930", "KOSPI200", "삼성전자", True, "OK"),
        ("035720", "KOSPI", "", True, "OK"),
        ("247540", "KOSDAQ", "", True, "OK"),
        ("091990", "KSQ150", "", True, "OK"),
        ("069500", "ETF", "KODEX 200", False, "ETF"),
        ("Q500001", "ETN", "", False, "ETN"),
        ("005935", "KOSPI200", "삼성전자우", False, "PREFERRED"),
        ("00088K", "KOSPI", "한화3우B", False, "PREFERRED"),
        ("123450", "KOSDAQ", "하나스팩25호", False, "SPAC"),
        ("123450", "KONEX", "", False, "NOT_STOCK_MARKET"),
    ],
)
def test_universe(symbol: str, market: str, name: str, eligible: bool, reason: str) -> None:
    d = classify(symbol, market, name=name)
    assert (d.eligible, d.reason) == (eligible, reason)


def test_crypto_roundtrip() -> None:
    key, iv = new_key_iv()
    assert len(key) == 32 and len(iv) == 16
    text = "a^b^한글^" * 10
    assert decrypt_notice(key, iv, encrypt_notice(key, iv, text)) == text
