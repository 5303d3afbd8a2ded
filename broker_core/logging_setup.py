"""Log format for every process, with secrets masked.

:class:`MaskSecrets` rewrites every record that reaches the handler :func:`configure` installs — ours,
httpx/httpcore (full URLs with their query), websockets (frames and handshake headers), uvicorn — so
no line shows, in clear:

- a value of a secret environment variable (OMS keys, broker keys and secrets, KIS account numbers,
  database passwords) or a value registered at run time with :func:`register_secret` (the OMS keys of
  its settings, KIS app keys and secrets, account numbers, access tokens, approval keys);
- the value of a secret-named field in a query string, a form, a header or JSON/dict text
  (``CANO``, ``appkey``, ``appsecret``, ``secretkey``, ``authorization``, ``approval_key``,
  ``access_token``, ``token``, ``api_key``, ``password`` …);
- a ``Bearer``/``Basic`` credential, a JWT, or the password in a URL.

Each becomes ``***``. Exception tracebacks and stack info are masked the same way.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from typing import TextIO

_SECRET_ENV = (
    "OMS_ADMIN_KEY",
    "OMS_READ_KEY",
    "OMS_API_KEY",
    "KIS_APP_KEY",
    "KIS_APP_SECRET",
    "KIS_PAPER_APP_KEY",
    "KIS_PAPER_APP_SECRET",
    "KIS_ACCOUNT_NO",
    "KIS_PAPER_ACCOUNT_NO",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
    "POSTGRES_PASSWORD",
    "POSTGRES_WRITER_PASSWORD",
    "POSTGRES_READER_PASSWORD",
)
MASK = "***"
MIN_SECRET_LEN = 6
"""Shorter values are not masked by value (they would hit ordinary words and numbers)."""

_FIELDS = (
    r"cano|account_?no|acct_?no|app_?key|app_?secret|secret_?key|client_?secret|api_?key|api_?secret"
    r"|authorization|approval_?key|access_?token(?:_token)?|refresh_?token|token|password|passwd"
    r"|apca-api-key-id|apca-api-secret-key|x-api-key"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=\-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*")
_QUERY = re.compile(rf"(?i)\b({_FIELDS})=(?!\*\*\*)[^&\s\"',;)\]}}]+")
"""``CANO=50000000&`` in a URL or form."""
_QUOTED = re.compile(rf"(?i)([\"']?)\b({_FIELDS})\1(\s*[:=]\s*)([\"'])(?!\*\*\*)[^\"'\\]*")
"""``"appkey": "…"`` / ``'token': '…'`` in JSON or a dict repr, also when the text is cut after the value starts."""
_HEADER = re.compile(rf"(?i)\b({_FIELDS})(\s*:\s*)(?![\"'\s]|\*\*\*|(?:bearer|basic)\s)[^\s,;\"'}}\]]+")
"""``appkey: PS…`` as a header line."""
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")

_registered: set[str] = set()
_version = 0
_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Mask these values in every log line from now on (tokens, approval keys, keys from settings)."""
    global _version
    new = {v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_LEN} - _registered
    if new:
        with _lock:
            _registered.update(new)
            _version += 1


def _env_secrets() -> set[str]:
    secrets = {os.environ.get(k, "").strip() for k in _SECRET_ENV}
    for item in os.environ.get("OMS_STRATEGY_KEYS", "").split(","):
        secrets.add(item.partition(":")[2].strip())
    return {s for s in secrets if len(s) >= MIN_SECRET_LEN}


class MaskSecrets(logging.Filter):
    """Replaces secrets in every record with ``***`` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.env_secrets = _env_secrets()
        self._seen_version = -1
        self.secrets: list[str] = []
        self._refresh()

    def _refresh(self) -> None:
        if self._seen_version != _version:
            with _lock:
                values = self.env_secrets | _registered
                self._seen_version = _version
            self.secrets = sorted(values, key=len, reverse=True)

    def mask(self, text: str) -> str:
        self._refresh()
        for s in self.secrets:
            if s in text:
                text = text.replace(s, MASK)
        text = _BEARER.sub(rf"\1\2{MASK}", text)
        text = _JWT.sub(MASK, text)
        text = _QUERY.sub(rf"\1={MASK}", text)
        text = _QUOTED.sub(rf"\1\2\1\3\4{MASK}", text)
        text = _HEADER.sub(rf"\1\2{MASK}", text)
        return _URL_PASSWORD.sub(rf"\1{MASK}\3", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def configure(level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """One handler on the root logger (stderr unless ``stream``), every line masked; returns it."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return handler
