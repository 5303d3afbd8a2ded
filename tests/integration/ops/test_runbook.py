"""The operators' runbook from the old deployment, line by line, against this one (issue 20, deliverable 5).

Each test names the runbook line or the defect it covers; each failed on the code before the fix."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from oms.settings import OmsSettings, load_config
from tests.integration.deploy.conftest import COMPOSE_FILES, REPO, load_compose, trader_command
from tests.integration.deploy.test_config_check import VPS1, VPS2, write_env
from tests.support.oms_server import ADMIN_KEY, READ_KEY, oms_settings, running_oms
from tests.support.trading import enter, holds
from tests.support.wait import until
from trader import config_check
from trader.cli import app
from trader.config_check import check

CURL = shutil.which("curl")
CAPACITY = 40
"""Subscriptions of one KIS WebSocket session: one account, one host."""


async def _curl(*args: str) -> tuple[int, str]:
    assert CURL, "the runbook's lines use curl (apt-get install curl)"
    proc = await asyncio.create_subprocess_exec(
        CURL, "-s", "-w", "\n%{http_code}", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body


async def test_the_curl_lines_with_the_key_header(tmp_path: Path) -> None:
    """curl .../api/v1/positions | jq; curl .../api/v1/allocations/KMP; and
    curl -X POST .../api/v1/risk/safe-mode -d '{"enabled":true}' — no content type: curl sends a form type,
    which the API answered with 422 before."""
    async with running_oms(oms_settings(tmp_path)) as oms:
        reply = await enter(oms, "KMP", "005930", 2, "runbook-enter")
        assert reply["status"] in ("ACCEPTED", "EXECUTED"), reply
        await until(lambda: holds(oms, "KMP", "005930", 2), timeout=60, what="KMP's entry filled")
        read = f"Authorization: Bearer {READ_KEY}"
        code, body = await _curl(f"{oms.url}/api/v1/positions", "-H", read)
        assert code == 200 and '"005930"' in body, body
        code, body = await _curl(f"{oms.url}/api/v1/allocations/KMP", "-H", read)
        assert code == 200 and '"qty":2' in body.replace(" ", ""), body
        admin = f"Authorization: Bearer {ADMIN_KEY}"
        code, body = await _curl(
            "-X", "POST", f"{oms.url}/api/v1/risk/safe-mode", "-H", admin, "-d", '{"enabled":true}'
        )
        assert code == 200 and '"safe_mode":true' in body.replace(" ", ""), body
        assert oms.runtime.state.flags.safe_mode
        code, body = await _curl("-X", "POST", f"{oms.url}/api/v1/risk/safe-mode", "-H", admin, "-d", "enabled=false")
        assert code == 422, "a form body is still not JSON"
        code, _ = await _curl("-X", "POST", f"{oms.url}/api/v1/risk/safe-mode", "-H", read, "-d", '{"enabled":false}')
        assert code == 403, "the read key may not switch safe mode"


def _run_check(cwd: Path, *args: str) -> Any:
    import os

    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, ["config", "check", "--config-dir", str(REPO / "config"), *args])
    finally:
        os.chdir(old)


def _compose_dir(tmp_path: Path) -> Path:
    """A copy of the compose files and .env.example (the check finds the compose files beside the config dir)."""
    for f in (*COMPOSE_FILES.values(), REPO / ".env.example"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_config_check_reads_dot_env_by_default(tmp_path: Path) -> None:
    """`trader config check` said OK without --env-file, never reading the host's .env."""
    write_env(tmp_path / ".env", {k: v for k, v in VPS1.items() if k != "OMS_ADMIN_KEY"})
    result = _run_check(tmp_path)
    assert result.exit_code == 1 and "OMS_ADMIN_KEY: not set" in result.output, result.output
    write_env(tmp_path / ".env", VPS1)
    assert _run_check(tmp_path).exit_code == 0
    (tmp_path / ".env").unlink()
    missing = _run_check(tmp_path)
    assert missing.exit_code == 1 and ".env: not found" in missing.output
    assert _run_check(tmp_path, "--no-env").exit_code == 0


def test_a_plain_database_url_is_one_clear_error(tmp_path: Path) -> None:
    """The old .env's DATABASE_URL=postgresql://user:pw@host:5432/trading was accepted and then ignored."""
    env = write_env(tmp_path / ".env", {**VPS1, "DATABASE_URL": "postgresql://user:pw@host:5432/trading"})
    problems = check(env, REPO / "config")
    assert len(problems) == 1 and "DATABASE_URL: set but not used" in problems[0], problems
    assert "POSTGRES_WRITER_PASSWORD" in problems[0]
    unknown = check(write_env(tmp_path / ".env", {**VPS1, "KIS_RATE_PER_SEC": "5", "SLACK_URL": "x"}), REPO / "config")
    assert sorted(p.split(": ")[1] for p in unknown) == ["KIS_RATE_PER_SEC", "SLACK_URL"], unknown
    other_profile = check(write_env(tmp_path / ".env", {**VPS2, "ALPACA_API_KEY": "PKX"}), REPO / "config")
    assert len(other_profile) == 1 and "only with profile alpaca" in other_profile[0], other_profile
    # run outside compose (trader oms), the plain form is taken as the async driver's, not refused or ignored
    settings = OmsSettings(database_url="postgresql://user:pw@host:5432/trading", oms_admin_key="k" * 20)
    assert settings.resolved_database_url() == "postgresql+asyncpg://user:pw@host:5432/trading"


def test_unbuilt_strategies_and_brokers_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compose files started strategies that do not exist (exit 2, restart loop) and the check accepted them."""
    env = {
        **VPS2,
        "COMPOSE_PROFILES": "alpaca",
        "OMS_KEY_SWING_ML": "s" * 24,
        "ALPACA_API_KEY": "PK",
        "ALPACA_SECRET_KEY": "secret",
    }
    assert check(write_env(tmp_path / ".env", env), REPO / "config") == [], "everything of profile alpaca is built"
    with monkeypatch.context() as m:  # a build without swing_ml (as before it existed)
        m.setattr(config_check, "strategy_built", lambda name: name != "swing_ml")
        problems = check(write_env(tmp_path / ".env", env), REPO / "config")
    assert len(problems) == 1 and "strategy 'swing_ml' is not built" in problems[0], problems
    monkeypatch.setattr(config_check, "broker_built", lambda kind: kind != "alpaca")
    problems = check(write_env(tmp_path / ".env", env), REPO / "config")
    assert len(problems) == 1 and "OMS_BROKER=alpaca" in problems[0] and "not built" in problems[0], problems


@pytest.mark.parametrize("host", sorted(COMPOSE_FILES))
def test_compose_starts_only_what_exists(host: str) -> None:
    """Without a profile, and with every profile whose services are built, each service's program exists."""
    compose = load_compose(host)
    for name, svc in compose["services"].items():
        cmd = trader_command(svc)
        if cmd[:2] == ["trader", "strategy"]:
            assert config_check.strategy_built(cmd[2]), f"{host}: {name} runs strategy {cmd[2]}, which is not built"
        broker = (svc.get("environment") or {}).get("OMS_BROKER") if isinstance(svc.get("environment"), dict) else None
        if broker:
            assert config_check.broker_built(broker), f"{host}: {name} needs broker adapter {broker}"
    assert config_check.strategy_built("swing_ml"), "swing_ml runs on the Alpaca OMS (profile alpaca)"
    assert config_check.broker_built("alpaca"), "the OMS owns Alpaca accounts (OMS_BROKER=alpaca)"


@pytest.mark.parametrize("host", sorted(COMPOSE_FILES))
def test_each_host_gives_its_strategies_the_40_slots(host: str) -> None:
    """config/oms.yaml capped KMP and KPR at 20 slots where each host's KIS session has 40."""
    oms = load_compose(host)["services"]["oms"]["environment"]
    config = load_config(REPO / "config" / Path(oms["OMS_CONFIG"]).relative_to("/app/config"))
    md = config.marketdata
    assert md.capacity in (None, CAPACITY)
    strategies = [e.split(":", 1)[0] for e in oms["OMS_STRATEGY_KEYS"].split(",")]
    streaming = {s: md.leases.get(s, md.default_lease) for s in strategies}
    streaming = {s: lease for s, lease in streaming.items() if lease.max_slots != 0}
    assert streaming, f"{host}: no streaming strategy"
    for sid, lease in streaming.items():
        assert lease.max_slots is None or lease.max_slots >= CAPACITY, f"{host}: {sid} capped at {lease.max_slots}"
    windows = sorted((lease.start, lease.end) for lease in streaming.values())
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert end is not None and start is not None and end <= start, f"{host}: leases overlap {windows}"


def test_host_configs_are_checked_as_oms_configs(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    text = (cfg / "oms.vps2.yaml").read_text().replace("KPR: {max_slots: 40}", "KPR: {max_slotz: 40}")
    (cfg / "oms.vps2.yaml").write_text(text)
    problems = check(None, cfg)
    assert any("oms.vps2.yaml" in p and "max_slotz" in p for p in problems), problems
    assert yaml.safe_load((REPO / "config" / "oms.vps1.yaml").read_text())["extends"] == "oms.yaml"
