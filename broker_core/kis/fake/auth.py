"""Credentials of the fake KIS server: access tokens (issue, reuse, EGW00133 issuance limit, revoke,
expiry), WebSocket approval keys and per-session AES keys, and the hashkey service."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broker_core.clock import KST, Clock
from broker_core.kis.crypto import new_key_iv
from broker_core.kis.fake.profiles import FakeProfile
from broker_core.kis.fake.wire import FAKE_CODES, Reply


@dataclass
class TokenRecord:
    value: str
    app_key: str
    issued_at: datetime
    expires_at: datetime


class Auth:
    def __init__(self, prof: FakeProfile, clock: Clock) -> None:
        self.profile = prof
        self.clock = clock
        self.tokens: dict[str, TokenRecord] = {}
        self.tokens_by_value: dict[str, TokenRecord] = {}
        self.token_requests_at: dict[str, datetime] = {}
        self.tokens_issued = 0
        self.approval_keys: set[str] = set()

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
            return Reply(
                403, {"error_code": "EGW00133", "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"}
            )
        self.token_requests_at[app_key] = now
        rec = self.tokens.get(app_key)
        if (
            rec is None
            or now >= rec.expires_at
            or (now - rec.issued_at).total_seconds() >= self.profile.token_same_within_s
        ):
            value = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(48)
            rec = TokenRecord(value, app_key, now, now + timedelta(seconds=self.profile.token_validity_s))
            self.tokens[app_key] = rec
            self.tokens_by_value[value] = rec
            self.tokens_issued += 1
        remaining = int((rec.expires_at - now).total_seconds())
        return Reply(
            200,
            {
                "access_token": rec.value,
                "token_type": "Bearer",
                "expires_in": remaining,
                "access_token_token_expired": rec.expires_at.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S"),
            },
        )

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
            str(body.get("appkey", "")), str(body.get("secretkey", ""))
        ):
            return Reply(403, {"error_code": "EGW00103", "error_description": FAKE_CODES["EGW00103"]})
        key = "-".join(secrets.token_hex(4) for _ in range(5))
        self.approval_keys.add(key)
        return Reply(200, {"approval_key": key})

    @staticmethod
    def hashkey(body: Mapping[str, Any]) -> Reply:
        digest = hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
        return Reply(200, {"JsonBody": json.dumps(body, ensure_ascii=False), "HASH": digest})

    @staticmethod
    def new_key_iv() -> tuple[str, str]:
        """The AES-256 key and IV a WebSocket session gets for a TR."""
        return new_key_iv()


__all__ = ["Auth", "TokenRecord"]
