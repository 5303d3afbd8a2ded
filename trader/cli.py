"""The ``trader`` command line."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from broker_core.config_errors import ConfigError
from trader.swing_ml_cli import app as swing_ml_app

app = typer.Typer(
    help="Trading platform: OMS, strategies, paper exchange and tools.", no_args_is_help=True, add_completion=False
)
console = Console()
err = Console(stderr=True)


def _setup_logging(level: str = "INFO") -> None:
    from broker_core.logging_setup import configure

    configure(level)


@app.command()
def replay(
    date: str | None = typer.Option(None, help="Session YYYY-MM-DD (default: latest in the data)"),
    speed: float = typer.Option(0, help="Virtual-clock speed; 0 = as fast as possible"),
    symbols: str | None = typer.Option(None, help="Comma-separated tickers (default: all)"),
    data_dir: str | None = typer.Option(
        None, help="KRX data directory (default: TRADER_DATA_DIR or ../shared/data/krx)"
    ),
    until: str | None = typer.Option(None, help="Stop at HH:MM (KST)"),
    json_report: str | None = typer.Option(None, help="Write the summary as JSON to this path"),
) -> None:
    """Replay one KRX session through the paper exchange and print what traded."""
    from trader.replay import run_replay

    code = run_replay(
        date=date,
        speed=speed,
        symbols=symbols.split(",") if symbols else None,
        data_dir=data_dir,
        until=until,
        json_report=json_report,
        console=console,
    )
    raise typer.Exit(code)


@app.command()
def demo(
    market: str = typer.Option(
        "krx", help="krx (KST, KRW, the strategies of this build) or us (New York, USD, the scripted client)"
    ),
    date: str | None = typer.Option(
        None,
        help="Session YYYY-MM-DD (default: KRX 2026-02-04, US 2024-11-26; else the latest in the data)",
    ),
    speed: float = typer.Option(120.0, help="Virtual-clock speed (120: a full session in about 3.5 minutes)"),
    until: str | None = typer.Option(
        None, help="Stop at HH:MM in the market's time (default: KRX 15:35 KST, US 16:05 New York; after the close)"
    ),
    data_dir: str | None = typer.Option(
        None,
        help="KRX data directory (default TRADER_DATA_DIR or ../shared/data/krx); "
        "with --market us the US data directory (default TRADER_US_DATA_DIR or ../shared/data/us)",
    ),
    json_report: str | None = typer.Option(None, help="Write the session report as JSON to this path"),
    serve: bool = typer.Option(False, "--serve", help="Leave the OMS running on the finished session (prints keys)"),
) -> None:
    """The main job: OMS + strategies as separate processes trading a simulated KRX session.

    --market us: the OMS on the paper US market (09:25–16:05 New York, USD, cent prices).

    Until a US strategy exists a scripted client (SCRIPTED) trades: buys 5 names after the open, sells by the close.

    What --until cuts off stays open, and the report says so."""
    from trader.demo import run_demo

    raise typer.Exit(
        run_demo(
            day=date,
            speed=speed,
            until=until,
            data_dir=data_dir,
            json_report=json_report,
            console=console,
            serve=serve,
            market=market.lower(),
        )
    )


@app.command()
def sim(
    market: str = typer.Option(
        "krx", help="krx (KST, KRW, the strategies of this build) or us (New York, USD, the scripted client)"
    ),
    start: str = typer.Option(..., "--from", help="First session YYYY-MM-DD"),
    end: str = typer.Option(..., "--to", help="Last session YYYY-MM-DD"),
    strategies: str | None = typer.Option(
        None, help="Comma-separated strategies (default: every one built; --market us: scripted, swing_ml)"
    ),
    speed: float = typer.Option(120.0, help="Virtual-clock speed; nights and weekends cost no time"),
    data_dir: str | None = typer.Option(
        None,
        help="KRX data directory (default TRADER_DATA_DIR or ../shared/data/krx); "
        "with --market us the US data directory (default TRADER_US_DATA_DIR or ../shared/data/us)",
    ),
    json_report: str | None = typer.Option(None, help="Write the run report as JSON to this path"),
    serve: bool = typer.Option(False, "--serve", help="Leave the OMS running on the finished run (prints keys)"),
    until: str | None = typer.Option(
        None, help="Stop at HH:MM on the last session, market time (default: 15:35 KST; US 16:05 New York)"
    ),
    begin: str | None = typer.Option(
        None,
        "--start",
        help="Virtual start HH:MM on the first session, market time (default: 07:55 KST, before the premarket "
        "jobs; US 09:25 New York)",
    ),
    database_url: str | None = typer.Option(
        None,
        help="The OMS's database, e.g. postgresql://postgres@127.0.0.1:5432/trading (the hosts' Postgres that "
        "Metabase reads); default SQLite in the run folder",
    ),
) -> None:
    """Many sessions with the demo's processes on the multi-day clock; positions carry over the nights.

    --market us: the XNYS sessions of the US data (to 2024-12-31), 09:25–16:05 New York each day.

    The scripted client (SCRIPTED) trades each day and is flat at each close."""
    from trader.sim import run_sim

    raise typer.Exit(
        run_sim(
            console,
            market=market.lower(),
            start=start,
            end=end,
            strategies=strategies.split(",") if strategies else None,
            speed=speed,
            data_dir=data_dir,
            json_report=json_report,
            serve=serve,
            until=until,
            begin=begin,
            database_url=database_url,
        )
    )


@app.command()
def backtest(
    strategies: list[str] | None = typer.Argument(
        None, help="Strategy name(s), e.g. kmp or rotation_core (space- or comma-separated); none with --account"
    ),
    start: str = typer.Option(..., "--from", help="First session YYYY-MM-DD"),
    end: str = typer.Option(..., "--to", help="Last session YYYY-MM-DD"),
    data_dir: str | None = typer.Option(
        None, help="KRX data directory (default TRADER_DATA_DIR or ../shared/data/krx)"
    ),
    json_report: str | None = typer.Option(None, help="Write the run report as JSON to this path"),
    until: str | None = typer.Option(None, help="Stop at HH:MM KST on the last session (default 15:35)"),
    begin: str | None = typer.Option(
        None, "--start", help="Virtual start HH:MM KST on the first session (default 07:55, before the premarket jobs)"
    ),
    log_level: str = typer.Option("INFO", help="Level of the run's log file (runs/backtest-*/logs/backtest.log)"),
    budgets: str | None = typer.Option(
        None, help="Rotation mix: model=fraction,… (models not named share the rest equally)"
    ),
    account: str | None = typer.Option(None, help="Backtest this account's rotation mix (models and budgets)"),
    accounts_file: str = typer.Option("config/accounts.yaml", help="The accounts file --account reads"),
) -> None:
    """The same strategies, OMS and paper exchange in one process, no sockets, as fast as the CPU allows."""
    from trader.backtest import backtest_command

    raise typer.Exit(
        backtest_command(
            console,
            strategies or [],
            start=start,
            end=end,
            data_dir=data_dir,
            json_report=json_report,
            until=until,
            begin=begin,
            log_level=log_level,
            budgets=budgets,
            account=account,
            accounts_file=accounts_file,
        )
    )


@app.command()
def oms(
    host: str = typer.Option("127.0.0.1", help="Bind address"),
    port: int = typer.Option(8000, help="Port"),
    log_level: str = typer.Option("INFO", help="Log level"),
) -> None:
    """Run the OMS service (settings from env, behaviour from config/oms.yaml)."""
    import uvicorn

    from oms.app import create_app
    from trader.venues import build_venue

    _setup_logging(log_level)
    failed: list[BaseException] = []

    def stop_on_failure(exc: BaseException) -> None:
        failed.append(exc)
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        application = create_app(venue=build_venue, on_start_failure=stop_on_failure)
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red]\n{exc}")
        raise typer.Exit(2) from exc
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=log_level.lower(),
        log_config=None,
        ws_per_message_deflate=False,
        access_log=False,
    )
    if failed:
        err.print(f"[red]the OMS did not start[/red]: {failed[0]}")
        raise typer.Exit(2 if isinstance(failed[0], ConfigError) else 1)


@app.command()
def strategy(
    name: str = typer.Argument(..., help="Strategy name: kmp, kpr, nulrimok, pcim, swing_ml"),
    log_level: str = typer.Option("INFO", help="Log level"),
) -> None:
    """Run one strategy process from config/NAME.yaml (env OMS_URL, OMS_API_KEY, TRADER_CLOCK)."""
    from strategies.sdk.runner import run_strategy

    _setup_logging(log_level)
    raise typer.Exit(run_strategy(name))


@app.command("scripted-us", hidden=True)
def scripted_us(log_level: str = typer.Option("INFO", help="Log level")) -> None:
    """The scripted US client (strategy id SCRIPTED) that ``trader demo/sim --market us`` starts (env OMS_URL,
    OMS_API_KEY, TRADER_CLOCK, as a strategy process)."""
    from trader.scripted_us import run

    _setup_logging(log_level)
    raise typer.Exit(run())


@app.command()
def up(
    profile: str = typer.Option(..., help="vps1 (OMS + KMP + Nulrimok) or vps2 (OMS + KPR + PCIM)"),
    port: int = typer.Option(8000, help="OMS port"),
) -> None:
    """Run a host's process set locally (as its compose file does), against the configured broker."""
    from trader.launcher import run_up

    _setup_logging("INFO")
    raise typer.Exit(run_up(profile, port, console))


@app.command()
def accounts(
    file: str = typer.Option("config/accounts.yaml", "--file", help="The accounts file"),
    state_dir: str = typer.Option("var/accounts", help="Data, logs and status.json of every account"),
    check: bool = typer.Option(False, "--check", help="Validate the file and the credential variables, start nothing"),
) -> None:
    """Every account of accounts.yaml: one OMS per account on its port and the account's strategies, supervised
    (restart with back-off; SIGTERM stops strategies, then the OMSes). Exit 2 naming account and key when the
    file is invalid; nothing starts then."""
    from pathlib import Path

    from trader.accounts import AccountsConfigError, AccountsRunner, load_accounts
    from trader.accounts.runner import install_signal_handlers

    try:
        found = load_accounts(file, os.environ)
    except AccountsConfigError as exc:
        for line in exc.problems:
            console.print(f"[red]{line}[/red]", highlight=False)
        raise typer.Exit(2) from exc
    if check:
        console.print(f"{file}: OK — {', '.join(a.name for a in found)}")
        raise typer.Exit(0)
    _setup_logging("INFO")
    flag = install_signal_handlers()
    runner = AccountsRunner(found, Path(state_dir))
    codes = runner.run_forever(lambda: flag["stop"], lambda line: console.print(line, highlight=False))
    console.print(f"stopped: {codes}")
    raise typer.Exit(0 if all(c in (0, -15) for c in codes.values()) else 1)


@app.command()
def dashboard(
    state_dir: str = typer.Option("var/accounts", help="The state dir of `trader accounts` (its status.json)"),
    refresh: float = typer.Option(2.0, help="Refresh interval, seconds"),
    once: bool = typer.Option(False, "--once", help="Print every account once as text and exit"),
) -> None:
    """Read-only terminal view of every account `trader accounts` runs here (fits 80x24; q quits)."""
    from pathlib import Path

    from trader.accounts.dashboard import AccountsDashboard, print_once

    if once:
        raise typer.Exit(print_once(Path(state_dir), console))
    AccountsDashboard(Path(state_dir), refresh).run()


config_app = typer.Typer(help="Configuration tools.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    env_file: Path = typer.Option(Path(".env"), help="The host's .env to validate"),
    no_env: bool = typer.Option(False, "--no-env", help="Check only the YAML configs (no .env)"),
    config_dir: Path = typer.Option(Path("config"), help="Directory of the YAML configs"),
    profile: list[str] = typer.Option([], help="Compose profile(s) in use (default: COMPOSE_PROFILES)"),
    compose_file: list[str] = typer.Option([], help="Compose file(s) (default: COMPOSE_FILE)"),
) -> None:
    """Validate the host's .env (./.env by default) and the YAML configs; one line per problem."""
    from trader.config_check import check

    problems = check(
        None if no_env else env_file, config_dir, compose_files=compose_file or None, profiles=profile or None
    )
    for problem in problems:
        console.print(f"[red]✗[/red] {problem}")
    if not problems:
        console.print("[green]configuration OK[/green]")
    raise typer.Exit(1 if problems else 0)


app.add_typer(swing_ml_app, name="swing-ml")

metabase_app = typer.Typer(help="Metabase dashboards as code (infra/metabase).", no_args_is_help=True)
app.add_typer(metabase_app, name="metabase")


@metabase_app.command("provision")
def metabase_provision(
    url: str = typer.Option("http://127.0.0.1:3000", help="Metabase base URL"),
    user: str = typer.Option(..., help="Metabase admin user (e-mail)"),
    password: str = typer.Option(..., help="Metabase admin password", envvar="METABASE_ADMIN_PASSWORD"),
    db_password: str = typer.Option(
        "", help="trading_reader's password (default: POSTGRES_READER_PASSWORD)", envvar="POSTGRES_READER_PASSWORD"
    ),
    db_host: str | None = typer.Option(None, help="Postgres host as Metabase sees it (default: postgres)"),
    directory: Path | None = typer.Option(None, "--dir", help="Definitions (default: infra/metabase)"),
) -> None:
    """Create or update Metabase's data source (reader role), collection, questions and dashboards."""
    from trader.metabase import DEFAULT_DIR, provision_command

    provision_command(url, user, password, db_password, db_host, directory or DEFAULT_DIR)


@app.command("fake-kis")
def fake_kis(
    profile: str = typer.Option("paper", help="paper or real: rate limits, page sizes, TR ids"),
    port: int = typer.Option(29443, help="Port for REST and WebSocket"),
    host: str = typer.Option("127.0.0.1", help="Bind address"),
) -> None:
    """A protocol-faithful fake KIS server backed by the paper exchange (for local development)."""
    from broker_core.kis.fake.cli import run_fake_kis

    run_fake_kis(profile=profile, port=port, host=host)


@app.command("fake-alpaca")
def fake_alpaca(
    port: int = typer.Option(28443, help="Port for REST, the trade_updates stream and the market-data stream"),
    host: str = typer.Option("127.0.0.1", help="Bind address"),
    data_dir: str = typer.Option(None, help="US data directory (default $TRADER_US_DATA_DIR)"),
) -> None:
    """A fake Alpaca the real alpaca-py talks to, replaying the US data's derived intraday path; prints the
    ALPACA_* environment a client needs."""
    from broker_core.alpaca.fake.cli import run_fake_alpaca

    run_fake_alpaca(port=port, host=host, data_dir=data_dir)


def _api(
    method: str, path: str, body: dict[str, Any] | None = None, url: str | None = None, key: str | None = None
) -> tuple[int, Any]:
    import httpx

    base = url or os.environ.get("OMS_URL", "http://127.0.0.1:8000")
    token = key or os.environ.get("OMS_API_KEY") or os.environ.get("OMS_ADMIN_KEY", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.request(method, base.rstrip("/") + path, json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach the OMS at {base}: {exc}[/red]")
        raise typer.Exit(2) from exc
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, resp.text


@app.command()
def health(
    url: str | None = typer.Option(None, help="OMS base URL (default OMS_URL or http://127.0.0.1:8000)"),
) -> None:
    """Exit 0 only when the OMS reports status ok (used by container health checks)."""
    code, body = _api("GET", "/health", url=url)
    console.print_json(json.dumps(body))
    raise typer.Exit(0 if code == 200 and isinstance(body, dict) and body.get("status") == "ok" else 1)


@app.command()
def status() -> None:
    """Health and account state of the OMS at OMS_URL."""
    for path in ("/health", "/api/v1/state/account"):
        code, body = _api("GET", path)
        console.print(f"[bold]{path}[/bold] ({code})")
        console.print_json(json.dumps(body))


@app.command()
def positions() -> None:
    """Positions with per-strategy allocations."""
    code, body = _api("GET", "/api/v1/positions")
    console.print_json(json.dumps(body))
    raise typer.Exit(0 if code == 200 else 1)


@app.command("safe-mode")
def safe_mode(state: str = typer.Argument(..., help="on or off")) -> None:
    """Switch safe mode (entries blocked, exits allowed); needs the admin key in OMS_API_KEY."""
    if state not in ("on", "off"):
        err.print("state must be 'on' or 'off'")
        raise typer.Exit(2)
    code, body = _api("POST", "/api/v1/risk/safe-mode", {"enabled": state == "on"})
    console.print_json(json.dumps(body))
    raise typer.Exit(0 if code == 200 else 1)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]configuration error[/red]\n{exc}")
        sys.exit(2)
