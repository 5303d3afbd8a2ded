"""KIS authentication (specs/kis.md §2): the access token and the WebSocket approval key.

Access tokens are issued by ``POST /oauth2/tokenP`` at most once a minute per app key (over the
limit: HTTP 403 ``EGW00133``) and every issuance notifies the user, so the token is kept in a file
on the OMS volume with its expiry and reused across restarts. It is renewed ``refresh_margin_s``
before it expires (proactive), and once when a call reports it expired (``EGW00123``). When the
issuance limit answers, the manager waits for the next allowed minute on its clock — re-reading the
token file meanwhile, since another process sharing the volume may have got one — and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from broker_core.clock import KST, Clock
from broker_core.errors import AuthError, BrokerUnavailable
from broker_core.kis.envelope import TOKEN_RATE_LIMITED, parse_response
from broker_core.kis.settings import KisCredentials
from broker_core.logging_setup import register_secret

log = logging.getLogger("broker_core.kis.auth")
TOKEN_PATH = "/oauth2/tokenP"
REVOKE_PATH = "/oauth2/revokeP"
APPROVAL_PATH = "/oauth2/Approval"
HASHKEY_PATH = "/uapi/hashkey"


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: datetime
    issued_at: datetime

    def __post_init__(self) -> None:
        register_secret(self.value)

    def remaining_s(self, now: datetime) -> float:
        return (self.expires_at - now).total_seconds()


def _key_id(creds: KisCredentials, host: str) -> str:
    return hashlib.sha256(f"{creds.app_key}|{host}".encode()).hexdigest()[:16]


class TokenFile:
    """A JSON file holding one access token (written atomically, mode 0600)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self, key_id: str) -> AccessToken | None:
        try:
            data = json.loads(self.path.read_text())
            if data.get("key_id") != key_id:
                return None
            return AccessToken(
                str(data["access_token"]),
                datetime.fromisoformat(data["expires_at"]),
                datetime.fromisoformat(data["issued_at"]),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("ignoring unreadable KIS token file %s (%s)", self.path, exc)
            return None

    def save(self, key_id: str, token: AccessToken) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(
            {
                "key_id": key_id,
                "access_token": token.value,
                "expires_at": token.expires_at.isoformat(),
                "issued_at": token.issued_at.isoformat(),
            }
        )
        fd, tmp = tempfile.mkstemp(prefix=".kis_token.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


class TokenManager:
    def __init__(
        self,
        http: httpx.AsyncClient,
        creds: KisCredentials,
        clock: Clock,
        *,
        token_file: TokenFile | None = None,
        refresh_margin_s: float = 1800.0,
        issue_retry_s: float = 61.0,
        max_issue_attempts: int = 10,
    ) -> None:
        self.http = http
        self.creds = creds
        register_secret(creds.app_key, creds.app_secret)
        self.clock = clock
        self.token_file = token_file
        self.refresh_margin_s = refresh_margin_s
        self.issue_retry_s = issue_retry_s
        self.max_issue_attempts = max_issue_attempts
        self.key_id = _key_id(creds, str(http.base_url).rstrip("/"))
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.issued = 0
        """Tokens this manager obtained from /oauth2/tokenP."""
        self.issue_waits = 0
        """Times the issuance limit (EGW00133) made it wait for the next allowed minute."""

    def _usable(self, token: AccessToken | None) -> bool:
        return token is not None and token.remaining_s(self.clock.now()) > self.refresh_margin_s

    @property
    def current(self) -> AccessToken | None:
        return self._token

    async def token(self) -> str:
        token = self._token
        if self._usable(token):
            assert token is not None
            return token.value
        async with self._lock:
            if not self._usable(self._token) and self.token_file is not None:
                stored = self.token_file.load(self.key_id)
                if self._usable(stored):
                    self._token = stored
                    log.info(
                        "KIS access token reused from %s (expires %s)",
                        self.token_file.path,
                        stored.expires_at.isoformat() if stored else "?",
                    )
            if not self._usable(self._token):
                self._token = await self._issue(avoid=None)
            assert self._token is not None
            return self._token.value

    async def reissue(self, stale: str) -> str:
        """The server called ``stale`` expired/invalid: issue a new token (once per stale token)."""
        async with self._lock:
            if self._token is not None and self._token.value != stale and self._usable(self._token):
                return self._token.value
            self._token = await self._issue(avoid=stale)
            return self._token.value

    async def _issue(self, avoid: str | None) -> AccessToken:
        body = {"grant_type": "client_credentials", "appkey": self.creds.app_key, "appsecret": self.creds.app_secret}
        for attempt in range(1, self.max_issue_attempts + 1):
            try:
                resp = await self.http.post(TOKEN_PATH, json=body, headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                raise BrokerUnavailable(f"KIS token request failed: {type(exc).__name__}: {exc}") from exc
            parsed = parse_response(resp.status_code, resp.headers, resp.content)
            if resp.status_code == 200 and parsed.body.get("access_token"):
                token = self._from_reply(parsed.body)
                self.issued += 1
                if self.token_file is not None:
                    self.token_file.save(self.key_id, token)
                log.info("KIS access token issued (expires %s)", token.expires_at.isoformat())
                return token
            if parsed.msg_cd == TOKEN_RATE_LIMITED:
                self.issue_waits += 1
                log.warning(
                    "KIS token issuance limited (EGW00133, 1/min): waiting %.0fs for the next allowed "
                    "minute (attempt %d/%d)",
                    self.issue_retry_s,
                    attempt,
                    self.max_issue_attempts,
                )
                await self.clock.sleep(self.issue_retry_s)
                if self.token_file is not None:
                    stored = self.token_file.load(self.key_id)
                    if self._usable(stored) and stored is not None and stored.value != avoid:
                        log.info("KIS access token found in %s while waiting", self.token_file.path)
                        return stored
                continue
            if resp.status_code >= 500 and not parsed.msg_cd:
                raise BrokerUnavailable(f"KIS token endpoint: HTTP {resp.status_code}")
            raise AuthError(f"KIS token refused: {parsed.describe()}", code=parsed.msg_cd or f"HTTP_{resp.status_code}")
        raise AuthError(
            f"KIS token: issuance still limited after {self.max_issue_attempts} attempts", code=TOKEN_RATE_LIMITED
        )

    def _from_reply(self, body: dict[str, object]) -> AccessToken:
        now = self.clock.now()
        expires: datetime | None = None
        raw = str(body.get("access_token_token_expired") or "").strip()
        if raw:
            try:
                expires = datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=KST)
            except ValueError:
                expires = None
        if expires is None:
            try:
                seconds = float(str(body.get("expires_in") or 86400))
            except ValueError:
                seconds = 86400.0
            expires = now + timedelta(seconds=seconds)
        return AccessToken(str(body["access_token"]), expires, now)

    async def revoke(self) -> None:
        token = self._token
        if token is None:
            return
        body = {"appkey": self.creds.app_key, "appsecret": self.creds.app_secret, "token": token.value}
        resp = await self.http.post(REVOKE_PATH, json=body)
        if resp.status_code != 200:
            raise AuthError(f"KIS token revoke: HTTP {resp.status_code}")
        self._token = None
        if self.token_file is not None:
            self.token_file.clear()


class ApprovalKeys:
    """The WebSocket approval key (``POST /oauth2/Approval``; note the ``secretkey`` field)."""

    def __init__(self, http: httpx.AsyncClient, creds: KisCredentials) -> None:
        self.http = http
        self.creds = creds
        register_secret(creds.app_key, creds.app_secret)
        self._key: str | None = None
        self._lock = asyncio.Lock()
        self.issued = 0

    async def get(self, refresh: bool = False) -> str:
        async with self._lock:
            if self._key is None or refresh:
                body = {
                    "grant_type": "client_credentials",
                    "appkey": self.creds.app_key,
                    "secretkey": self.creds.app_secret,
                }
                try:
                    resp = await self.http.post(APPROVAL_PATH, json=body)
                except httpx.HTTPError as exc:
                    raise BrokerUnavailable(f"KIS approval key request failed: {exc}") from exc
                parsed = parse_response(resp.status_code, resp.headers, resp.content)
                key = parsed.body.get("approval_key")
                if resp.status_code != 200 or not key:
                    raise AuthError(
                        f"KIS approval key refused: {parsed.describe()}",
                        code=parsed.msg_cd or f"HTTP_{resp.status_code}",
                    )
                self._key = str(key)
                register_secret(self._key)
                self.issued += 1
            return self._key
