"""Start and stop the platform's processes locally (``trader demo``, ``trader up``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from strategies.sdk.runner import available, package_of, strategy_packages

if TYPE_CHECKING:
    from rich.console import Console

PROFILES: dict[str, list[str]] = {"vps1": ["kmp", "nulrimok"], "vps2": ["kpr", "pcim"]}
"""The strategy set of each compose file (the OMS runs on both hosts)."""
ALL_STRATEGIES = ["kmp", "nulrimok", "kpr", "pcim"]
"""The KRX strategies (``trader demo``, ``sim``, ``backtest`` on the KRX data). The US ones — swing_ml, the
rotation models — run on a US account's OMS: ``trader sim --market us``, ``trader accounts``, compose profile
``alpaca``."""


def available_strategies(names: list[str] | None = None) -> list[str]:
    """Strategies of ``names`` (default: all) whose wiring module exists in this build."""
    extra = [n for p in strategy_packages()[:-1] for n in available(p)] if names is None else []
    return [n for n in dict.fromkeys([*(names or ALL_STRATEGIES), *extra]) if package_of(n) is not None]


@dataclass
class ProcessGroup:
    """Child processes with their own log files; stopped in reverse start order."""

    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trader", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def dead(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, names: list[str] | None = None, timeout: float = 30.0) -> dict[str, int]:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns exit codes."""
        targets = [n for n in reversed(list(self.procs)) if names is None or n in names]
        for name in targets:
            if self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for name in targets:
            proc = self.procs[name]
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            codes[name] = proc.returncode
        return codes

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def base_env() -> dict[str, str]:
    """The parent's environment without OMS/strategy wiring that the launcher sets itself."""
    drop = ("OMS_", "TRADER_CLOCK", "DATABASE_URL", "STRATEGY_ID")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def run_up(profile: str, port: int, console: Console) -> int:
    """Start the OMS and the profile's strategies from this environment; stop all on Ctrl-C/SIGTERM.

    Strategy keys come from ``OMS_KEY_<STRATEGY>`` (as in the compose files and ``.env``).
    """
    import httpx

    if profile not in PROFILES:
        console.print(f"[red]--profile must be one of {', '.join(PROFILES)}[/red]")
        return 2
    env = {k: v for k, v in os.environ.items()}
    strategies = available_strategies(PROFILES[profile])
    missing = [f"OMS_KEY_{s.upper()}" for s in strategies if not env.get(f"OMS_KEY_{s.upper()}")]
    if not env.get("OMS_ADMIN_KEY"):
        missing.insert(0, "OMS_ADMIN_KEY")
    if missing:
        console.print(f"[red]not set: {', '.join(missing)}[/red]")
        return 2
    env.setdefault("OMS_STRATEGY_KEYS", ",".join(f"{s.upper()}:{env[f'OMS_KEY_{s.upper()}']}" for s in strategies))
    host_config = Path(env.get("TRADER_CONFIG_DIR", "config")) / f"oms.{profile}.yaml"
    if "OMS_CONFIG" not in env and host_config.is_file():
        env["OMS_CONFIG"] = str(host_config)  # the host's slot leases, as its compose file sets them
    url = f"http://127.0.0.1:{port}"
    group = ProcessGroup(Path(env.get("OMS_DATA_DIR", "var")) / "logs")
    stop = {"now": False}

    def _on_signal(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    group.start("oms", ["oms", "--port", str(port)], env)
    console.print(f"OMS starting on {url} (logs in {group.log_dir})")
    deadline = time.monotonic() + 120
    while not stop["now"]:
        if group.dead():
            console.print(f"[red]the OMS exited:[/red]\n{group.log_tail('oms', 30)}")
            return 1
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("status") in ("ok", "degraded"):
                break
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            console.print(f"[red]the OMS did not become healthy in 120 s[/red]\n{group.log_tail('oms', 30)}")
            group.stop()
            return 1
        time.sleep(0.5)
    for name in strategies:
        group.start(name, ["strategy", name], {**env, "OMS_URL": url, "OMS_API_KEY": env[f"OMS_KEY_{name.upper()}"]})
    console.print(f"profile {profile}: OMS + {', '.join(strategies) or 'no strategies in this build'}; Ctrl-C stops")
    while not stop["now"]:
        dead = group.dead()
        if dead:
            console.print(f"[red]exited: {dead}[/red]")
            break
        time.sleep(0.5)
    codes = group.stop()
    console.print(f"stopped: {codes}")
    return 0 if all(c in (0, -15) for c in codes.values()) else 1
