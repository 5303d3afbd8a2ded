"""Shared helpers of the deployment tests (compose files, Dockerfile, init scripts, ops scripts).

Docker is not needed: the compose files and the Dockerfile are checked statically, the init script
runs against the real Postgres on 127.0.0.1:5432 and the shell scripts run with stub ``docker`` /
``pg_isready`` commands on a temporary PATH.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILES = {"vps1": REPO / "docker-compose.vps1.yml", "vps2": REPO / "docker-compose.vps2.yml"}
COMPOSE_SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"
ENV_EXAMPLE = REPO / ".env.example"
HEALTH_CHECK = REPO / "scripts" / "health_check.sh"


def load_compose(host: str) -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILES[host].read_text())


def env_example() -> dict[str, str]:
    """``KEY=value`` lines of .env.example (comments ignored)."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def health_check_containers() -> dict[str, set[str]]:
    """The container names scripts/health_check.sh expects: {"VPS1": {...}, "VPS2": {...}, "ALPACA": {...}}."""
    found = dict(re.findall(r'^(VPS1|VPS2|ALPACA)_CONTAINERS="([^"]*)"', HEALTH_CHECK.read_text(), re.M))
    assert set(found) == {"VPS1", "VPS2", "ALPACA"}, f"container lists not found in {HEALTH_CHECK}: {found}"
    return {k: set(v.split()) for k, v in found.items()}


def trader_command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def run(cmd: list[str], env: dict[str, str], timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="session")
def compose_schema() -> dict[str, Any]:
    import json

    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(
            f"the Compose Specification schema is missing: expected {COMPOSE_SCHEMA} "
            "(../shared/schemas/compose-spec.json beside the repository)",
            pytrace=False,
        )
    return json.loads(COMPOSE_SCHEMA.read_text())
