"""Log format for every process, with secrets masked."""

from __future__ import annotations

import logging
import os
import re

_SECRET_ENV = (
    "OMS_ADMIN_KEY",
    "OMS_READ_KEY",
    "OMS_API_KEY",
    "KIS_APP_KEY",
    "KIS_APP_SECRET",
    "KIS_PAPER_APP_KEY",
    "KIS_PAPER_APP_SECRET",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
    "POSTGRES_PASSWORD",
    "POSTGRES_WRITER_PASSWORD",
    "POSTGRES_READER_PASSWORD",
)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")


class MaskSecrets(logging.Filter):
    """Replaces known secret values and URL passwords in every record with ***."""

    def __init__(self) -> None:
        super().__init__()
        secrets = [os.environ.get(k, "") for k in _SECRET_ENV]
        for item in os.environ.get("OMS_STRATEGY_KEYS", "").split(","):
            secrets.append(item.partition(":")[2])
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return _URL_PASSWORD.sub(r"\1***\3", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        return True


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
