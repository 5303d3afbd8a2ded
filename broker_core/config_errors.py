"""Turn pydantic validation errors into messages that name the file (or env var) and the key."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """A setting or configuration file is missing or malformed; the message says which."""


def describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)
