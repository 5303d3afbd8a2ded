"""``trader accounts``: every account of ``config/accounts.yaml`` on this host — one OMS per account (its own
port, data dir and journal, its instance id in the shared database) and the account's strategies as
processes pointed at it, supervised (sector_rotation.md §4, A1–A3).

- Start: the OMSes first; an account's strategies once its OMS answers ``/health``.
- Supervision: a process that exits is restarted after a back-off (1 s, doubling to 60 s; back to 1 s once
  it has run for a minute); one account's failure never touches another account.
- Stop (SIGTERM/SIGINT): every strategy first, then every OMS, each with SIGTERM (SIGKILL after 30 s), so
  no intent is half-sent by a strategy whose OMS is already gone.
- Status: ``<state dir>/status.json`` (mode 0600, it holds each account's read key) every few seconds —
  account, broker, port, URL, health, processes with pid and restarts; ``trader dashboard`` reads it.

Credentials reach an OMS only through its environment: the variable named by ``key_env``/``secret_env`` is
copied into the adapter's own (``ALPACA_API_KEY``/``ALPACA_SECRET_KEY``, or KIS's app key/secret).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from trader.accounts.config import ROTATION_MODELS, Account
from trader.launcher import ProcessGroup, base_env

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
HEALTHY_RESET_S = 60.0
STATUS_EVERY_S = 2.0
CONFIG_FOR_MARKET = {"us": "config/oms.us.yaml", "krx": "config/oms.yaml"}


@dataclass
class Supervised:
    """One process of one account: how to start it and its restart record."""

    name: str
    args: list[str]
    env: dict[str, str]
    kind: str
    """``oms`` or ``strategy``."""
    restarts: int = 0
    started_at: float = 0.0
    backoff_s: float = BACKOFF_FIRST_S
    restart_at: float | None = None
    last_exit: int | None = None


@dataclass
class AccountRun:
    account: Account
    url: str
    keys: dict[str, str]
    oms: Supervised
    strategies: list[Supervised] = field(default_factory=list)
    strategies_started: bool = False


def process_args(strategy: str) -> tuple[list[str], dict[str, str]]:
    """The ``trader`` arguments and extra environment of one strategy process: each rotation model is a
    ``rotation`` process with its own strategy id; other strategies run under their own name."""
    if strategy in ROTATION_MODELS:
        return ["strategy", "rotation"], {"ROTATION_MODEL": strategy, "STRATEGY_ID": strategy.upper()}
    return ["strategy", strategy], {"STRATEGY_ID": strategy.upper()}


def broker_env(account: Account, env: Mapping[str, str]) -> dict[str, str]:
    """The adapter's own variables, filled from the variables the account names (never from the file)."""
    spec = account.spec
    out: dict[str, str] = {"OMS_BROKER": spec.broker}
    if spec.broker == "paper":
        out["OMS_MARKET"] = "us"
        if spec.paper_date:
            out["OMS_PAPER_DATE"] = spec.paper_date
        return out
    key = env.get(spec.key_env or "", "")
    secret = env.get(spec.secret_env or "", "")
    if spec.broker == "alpaca":
        out.update(ALPACA_API_KEY=key, ALPACA_SECRET_KEY=secret, ALPACA_PAPER="true" if spec.paper else "false")
    else:
        prefix = "KIS_PAPER_APP" if spec.paper else "KIS_APP"
        out.update({f"{prefix}_KEY": key, f"{prefix}_SECRET": secret, "KIS_IS_PAPER": str(spec.paper).lower()})
    return out


def plan_account(account: Account, state_dir: Path, env: Mapping[str, str]) -> AccountRun:
    spec = account.spec
    keys = {"admin": secrets.token_hex(16), "read": secrets.token_hex(16)}
    keys.update({s.upper(): secrets.token_hex(16) for s in spec.strategies})
    url = f"http://127.0.0.1:{spec.oms_port}"
    common = {k: v for k, v in base_env().items() if not k.startswith(("ALPACA_", "KIS_APP", "KIS_PAPER_APP"))}
    common.update({k: v for k, v in env.items() if k in ("TRADER_CLOCK", "DATABASE_URL")})
    oms_env = {
        **common,
        **broker_env(account, env),
        "OMS_INSTANCE_ID": account.instance_id,
        "OMS_DATA_DIR": str(state_dir / account.name / "oms"),
        "OMS_CONFIG": env.get("OMS_CONFIG") or CONFIG_FOR_MARKET[account.market],
        "OMS_ADMIN_KEY": keys["admin"],
        "OMS_READ_KEY": keys["read"],
        "OMS_STRATEGY_KEYS": ",".join(f"{s.upper()}:{keys[s.upper()]}" for s in spec.strategies),
    }
    for name in ("ALPACA_BASE_URL", "ALPACA_DATA_URL", "ALPACA_STREAM_URL", "ALPACA_DATA_STREAM_URL"):
        per_account = f"{name}_{account.name.upper().replace('-', '_')}"
        if env.get(per_account):
            oms_env[name] = env[per_account]  # e.g. a fake Alpaca per account in tests and rehearsals
    oms = Supervised(f"{account.name}.oms", ["oms", "--port", str(spec.oms_port)], oms_env, "oms")
    run = AccountRun(account, url, keys, oms)
    for strategy in spec.strategies:
        args, extra = process_args(strategy)
        strategy_env = {
            **common,
            **extra,
            "OMS_URL": url,
            "OMS_API_KEY": keys[strategy.upper()],
            "STRATEGY_DATA_DIR": str(state_dir / account.name / strategy),
            "ACCOUNT_NAME": account.name,
            "ACCOUNT_BUDGETS": json.dumps(account.budgets()),
        }
        run.strategies.append(Supervised(f"{account.name}.{strategy}", args, strategy_env, "strategy"))
    return run


class AccountsRunner:
    """Starts, supervises and stops every account's processes (see the module doc)."""

    def __init__(
        self,
        accounts: list[Account],
        state_dir: Path,
        env: Mapping[str, str] | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state_dir = state_dir
        self.env = dict(os.environ if env is None else env)
        self.monotonic = monotonic
        self.group = ProcessGroup(state_dir / "logs")
        self.runs = [plan_account(a, state_dir, self.env) for a in accounts]
        self._status_at = 0.0
        self.health: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for run in self.runs:
            self._launch(run.oms)

    def tick(self) -> None:
        """One supervision step: start strategies of accounts whose OMS is up, restart what exited."""
        now = self.monotonic()
        for run in self.runs:
            if not run.strategies_started and self._healthy(run):
                for proc in run.strategies:
                    self._launch(proc)
                run.strategies_started = True
            for proc in [run.oms, *run.strategies]:
                if proc.kind == "strategy" and not run.strategies_started:
                    continue
                self._supervise(proc, now)
        if now - self._status_at >= STATUS_EVERY_S:
            self._status_at = now
            self.write_status()

    def stop(self) -> dict[str, int]:
        codes = self.group.stop([p.name for r in self.runs for p in r.strategies])
        codes.update(self.group.stop([r.oms.name for r in self.runs]))
        self.write_status(stopped=True)
        return codes

    def run_forever(self, should_stop: Callable[[], bool], on_line: Callable[[str], None]) -> dict[str, int]:
        self.start()
        on_line(f"{len(self.runs)} account(s): " + ", ".join(f"{r.account.name} {r.url}" for r in self.runs))
        try:
            while not should_stop():
                restarts = sum(p.restarts for r in self.runs for p in [r.oms, *r.strategies])
                self.tick()
                after = sum(p.restarts for r in self.runs for p in [r.oms, *r.strategies])
                if after != restarts:
                    on_line(f"restarted {after - restarts} process(es); see {self.state_dir / 'status.json'}")
                time.sleep(0.25)
        finally:
            codes = self.stop()
        return codes

    # -- internals -----------------------------------------------------------------------------------

    def _launch(self, proc: Supervised) -> None:
        self.group.start(proc.name, proc.args, proc.env)
        proc.started_at = self.monotonic()
        proc.restart_at = None

    def _supervise(self, proc: Supervised, now: float) -> None:
        popen = self.group.procs.get(proc.name)
        if popen is None:
            return
        code = popen.poll()
        if code is None:
            if proc.backoff_s > BACKOFF_FIRST_S and now - proc.started_at >= HEALTHY_RESET_S:
                proc.backoff_s = BACKOFF_FIRST_S
            return
        if proc.restart_at is None:
            proc.last_exit = code
            proc.restart_at = now + proc.backoff_s
            proc.backoff_s = min(proc.backoff_s * 2, BACKOFF_MAX_S)
            return
        if now >= proc.restart_at:
            proc.restarts += 1
            self._launch(proc)

    def _healthy(self, run: AccountRun) -> bool:
        try:
            body = httpx.get(f"{run.url}/health", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        self.health[run.account.name] = body
        return body.get("status") in ("ok", "degraded")

    def write_status(self, *, stopped: bool = False) -> Path:
        accounts = []
        for run in self.runs:
            health: dict[str, Any] | str
            if stopped:
                health = "stopped"
            else:
                try:
                    health = httpx.get(f"{run.url}/health", timeout=2).json()
                except (httpx.HTTPError, ValueError) as exc:
                    health = f"unreachable ({type(exc).__name__})"
            accounts.append(
                {
                    "account": run.account.name,
                    "broker": run.account.spec.broker,
                    "paper": run.account.spec.paper,
                    "url": run.url,
                    "read_key": run.keys["read"],
                    "strategies": run.account.spec.strategies,
                    "health": health,
                    "processes": [_proc_status(self.group, p) for p in [run.oms, *run.strategies]],
                }
            )
        path = self.state_dir / "status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"updated": time.time(), "accounts": accounts}, indent=2, default=str))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path


def _proc_status(group: ProcessGroup, proc: Supervised) -> dict[str, Any]:
    popen: subprocess.Popen[bytes] | None = group.procs.get(proc.name)
    running = popen is not None and popen.poll() is None
    return {
        "name": proc.name,
        "pid": popen.pid if popen is not None else None,
        "running": running,
        "restarts": proc.restarts,
        "last_exit": proc.last_exit,
    }


def install_signal_handlers() -> dict[str, bool]:
    flag = {"stop": False}

    def _on_signal(*_: object) -> None:
        flag["stop"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return flag
