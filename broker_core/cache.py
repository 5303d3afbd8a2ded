"""The user's cache folder for data derived from slow-to-build inputs (calendars, column files).

``TRADER_CACHE_DIR``, else ``$XDG_CACHE_HOME/trader``, else ``~/.cache/trader``. Everything in it can be
deleted at any time: it is rebuilt on the next use.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TRADER_CACHE_DIR"


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trader"
