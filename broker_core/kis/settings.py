"""KIS adapter settings: hosts, credentials, account, rate budget (specs/kis.md §1, §5).

Environment (read by :meth:`KisSettings.from_env`):

============================  ==================================================================
``KIS_IS_PAPER``              ``true`` (default) trades the paper (모의) account, ``false`` the real one
``KIS_APP_KEY``               real app key — in paper mode used only for market data the paper host
``KIS_APP_SECRET``            lacks (program trading, holiday calendar …), never for orders
``KIS_ACCOUNT_NO``            real account: ``CANO`` (8 digits) or ``CANO-PP``
``KIS_ACCOUNT_PROD_CODE``     ``ACNT_PRDT_CD`` (default ``01``; a ``-PP`` suffix of the account wins)
``KIS_PAPER_APP_KEY``         paper app key / secret / account (paper mode)
``KIS_PAPER_APP_SECRET``
``KIS_PAPER_ACCOUNT_NO``
``KIS_HTS_ID``                HTS user id: the ``tr_key`` of the execution-notice subscription
``KIS_REST_URL``              REST base of the active profile (default: the KIS host of the profile)
``KIS_WS_URL``                WebSocket URL of the active profile (``ws://host:port`` or ``…/tryitout``)
``KIS_REAL_REST_URL``         REST base for the real-host market-data client in paper mode (optional)
``KIS_RATE_PER_SEC``          REST budget of the active app key (default 20 real, 2 paper)
``KIS_CUSTTYPE``              ``P`` (default) or ``B``
``KIS_ORDER_LOOKUP_WINDOW_S`` how long after sending an order whose reply was lost it is looked for
                              (with back-off) before it is declared absent (default 10)
============================  ==================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REAL_REST_URL = "https://openapi.koreainvestment.com:9443"
PAPER_REST_URL = "https://openapivts.koreainvestment.com:29443"
REAL_WS_URL = "ws://ops.koreainvestment.com:21000"
PAPER_WS_URL = "ws://ops.koreainvestment.com:31000"
REAL_RATE_PER_SEC = 20.0
PAPER_RATE_PER_SEC = 2.0


class KisConfigError(ValueError):
    """A KIS setting is missing or malformed; the message names the environment variable."""


@dataclass(frozen=True)
class KisCredentials:
    app_key: str
    app_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.app_key or not self.app_secret:
            raise KisConfigError("app key and app secret are both required")


@dataclass(frozen=True)
class KisSettings:
    is_paper: bool
    credentials: KisCredentials
    """Credentials of the trading profile (paper credentials in paper mode)."""
    account_no: str
    """``CANO``: the 8-digit account number."""
    account_prod_code: str = "01"
    hts_id: str = ""
    rest_url: str = ""
    ws_url: str = ""
    real_credentials: KisCredentials | None = None
    """Paper mode only: real credentials for market-data calls the paper host does not offer."""
    real_rest_url: str = REAL_REST_URL
    rate_per_sec: float | None = None
    custtype: str = "P"
    exchange_code: str = "KRX"
    """``EXCG_ID_DVSN_CD`` sent with orders (KRX; NXT/SOR are out of scope)."""
    legacy_tr_ids: bool = False
    """Send the legacy TR ids (TTTC0802U …) instead of the current ones."""
    request_timeout_s: float = 10.0
    order_lookup_window_s: float = 10.0
    """A submit whose reply was lost is looked for in the day's orders (KIS shows a new order there with a
    lag) until this long after it was sent, before it is declared absent; clock seconds."""
    order_lookup_backoff_s: float = 0.5
    """First pause between those lookups; doubles each time, never past the window's end."""

    def __post_init__(self) -> None:
        if not (self.account_no.isdigit() and len(self.account_no) == 8):
            raise KisConfigError(f"account number must be the 8-digit CANO, got {self.account_no!r}")
        if not (self.account_prod_code.isdigit() and len(self.account_prod_code) == 2):
            raise KisConfigError(f"account product code must be 2 digits, got {self.account_prod_code!r}")
        if self.custtype not in ("P", "B"):
            raise KisConfigError(f"custtype must be P or B, got {self.custtype!r}")
        if not self.rest_url:
            object.__setattr__(self, "rest_url", PAPER_REST_URL if self.is_paper else REAL_REST_URL)
        if not self.ws_url:
            object.__setattr__(self, "ws_url", PAPER_WS_URL if self.is_paper else REAL_WS_URL)
        object.__setattr__(self, "rest_url", self.rest_url.rstrip("/"))
        if self.rate_per_sec is not None and not self.rate_per_sec > 0:
            raise KisConfigError(f"rate_per_sec must be > 0, got {self.rate_per_sec}")
        if not 0 <= self.order_lookup_window_s <= 600:
            raise KisConfigError(f"order lookup window must be 0..600 s, got {self.order_lookup_window_s}")
        if not self.order_lookup_backoff_s > 0:
            raise KisConfigError(f"order lookup back-off must be > 0 s, got {self.order_lookup_backoff_s}")

    @property
    def profile(self) -> str:
        return "paper" if self.is_paper else "real"

    @property
    def rate_budget(self) -> float:
        """REST requests per second this app key may send (shared by everything in the process)."""
        if self.rate_per_sec is not None:
            return self.rate_per_sec
        return PAPER_RATE_PER_SEC if self.is_paper else REAL_RATE_PER_SEC

    @property
    def notice_tr_id(self) -> str:
        return "H0STCNI9" if self.is_paper else "H0STCNI0"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KisSettings:
        e = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return (e.get(name) or default).strip()

        paper_raw = get("KIS_IS_PAPER", "true").lower()
        if paper_raw not in ("1", "0", "true", "false", "yes", "no", "y", "n"):
            raise KisConfigError(f"KIS_IS_PAPER: expected true/false, got {paper_raw!r}")
        is_paper = paper_raw in ("1", "true", "yes", "y")
        real_creds = None
        if get("KIS_APP_KEY") or get("KIS_APP_SECRET"):
            if not (get("KIS_APP_KEY") and get("KIS_APP_SECRET")):
                raise KisConfigError("KIS_APP_KEY and KIS_APP_SECRET must be set together")
            real_creds = KisCredentials(get("KIS_APP_KEY"), get("KIS_APP_SECRET"))
        if is_paper:
            for name in ("KIS_PAPER_APP_KEY", "KIS_PAPER_APP_SECRET", "KIS_PAPER_ACCOUNT_NO"):
                if not get(name):
                    raise KisConfigError(f"{name}: not set (needed with KIS_IS_PAPER=true)")
            creds = KisCredentials(get("KIS_PAPER_APP_KEY"), get("KIS_PAPER_APP_SECRET"))
            account_var = "KIS_PAPER_ACCOUNT_NO"
        else:
            for name in ("KIS_APP_KEY", "KIS_APP_SECRET", "KIS_ACCOUNT_NO"):
                if not get(name):
                    raise KisConfigError(f"{name}: not set (needed with KIS_IS_PAPER=false)")
            assert real_creds is not None
            creds = real_creds
            account_var = "KIS_ACCOUNT_NO"
        cano, prod = split_account(get(account_var), get("KIS_ACCOUNT_PROD_CODE", "01"), account_var)
        rate = get("KIS_RATE_PER_SEC")
        try:
            rate_value = float(rate) if rate else None
        except ValueError as exc:
            raise KisConfigError(f"KIS_RATE_PER_SEC: not a number: {rate!r}") from exc
        window = get("KIS_ORDER_LOOKUP_WINDOW_S", "10")
        try:
            window_value = float(window)
        except ValueError as exc:
            raise KisConfigError(f"KIS_ORDER_LOOKUP_WINDOW_S: not a number: {window!r}") from exc
        try:
            return cls(
                is_paper=is_paper,
                credentials=creds,
                account_no=cano,
                account_prod_code=prod,
                hts_id=get("KIS_HTS_ID"),
                rest_url=get("KIS_REST_URL"),
                ws_url=get("KIS_WS_URL"),
                real_credentials=real_creds if is_paper else None,
                real_rest_url=get("KIS_REAL_REST_URL", REAL_REST_URL),
                rate_per_sec=rate_value,
                custtype=get("KIS_CUSTTYPE", "P"),
                order_lookup_window_s=window_value,
            )
        except KisConfigError as exc:
            raise KisConfigError(f"KIS settings ({account_var} / KIS_*): {exc}") from exc


def split_account(raw: str, prod_default: str = "01", variable: str = "KIS_ACCOUNT_NO") -> tuple[str, str]:
    """``"50000000-01"`` → (``"50000000"``, ``"01"``); ``"50000000"`` → (it, ``prod_default``);
    a 10-digit ``"5000000001"`` is split 8 + 2."""
    value = raw.strip()
    if "-" in value:
        cano, _, prod = value.partition("-")
    elif len(value) == 10 and value.isdigit():
        cano, prod = value[:8], value[8:]
    else:
        cano, prod = value, prod_default
    if not (cano.isdigit() and len(cano) == 8):
        raise KisConfigError(f"{variable}: expected the 8-digit account number (CANO), optionally '-01', got {raw!r}")
    if not (prod.isdigit() and len(prod) == 2):
        raise KisConfigError(f"{variable}: account product code must be 2 digits, got {prod!r}")
    return cano, prod


def token_file_path(directory: str | Path, settings: KisSettings, real_host: bool = False) -> Path:
    """Where the access token of a profile lives on the OMS volume (one file per app key and host)."""
    import hashlib

    creds = settings.real_credentials if real_host else settings.credentials
    assert creds is not None
    host = settings.real_rest_url if real_host else settings.rest_url
    digest = hashlib.sha256(f"{creds.app_key}|{host}".encode()).hexdigest()[:12]
    profile = "real" if (real_host or not settings.is_paper) else "paper"
    return Path(directory) / f"kis_token_{profile}_{digest}.json"
