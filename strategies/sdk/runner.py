"""``trader strategy NAME``: load a strategy, connect it to the OMS and run it until SIGTERM.

The registry is the package layout: ``strategies/<name>/strategy.py`` provides
``build(config, oms_client, clock) -> Strategy``. The config model is the module's ``CONFIG_MODEL``
or, when absent, the annotation of ``build``'s first parameter; the config comes from
``config/<name>.yaml``. Wiring comes from the environment: ``OMS_URL`` (default
http://127.0.0.1:8000), ``OMS_API_KEY`` (required), ``TRADER_CLOCK`` (real or sim) and optionally
``STRATEGY_ID`` (default: the name in upper case) and ``LOG_LEVEL``.

Exit codes: 0 after a clean stop (SIGTERM/SIGINT); 1 when the OMS stays unreachable at start, the
stream refuses the key or the strategy fails. Configuration problems raise
:class:`broker_core.config_errors.ConfigError`, which ``trader`` prints before exiting 2.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import os
import re
import signal
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from broker_core.clock import Clock, ClockSpecError, clock_from_env
from broker_core.config_errors import ConfigError
from strategies.sdk.client import OmsClient
from strategies.sdk.config import load_strategy_config
from strategies.sdk.errors import OmsError
from strategies.sdk.strategy import Strategy

log = logging.getLogger("strategies.sdk.runner")
PACKAGES_ENV = "TRADER_STRATEGY_PACKAGES"
"""Comma-separated packages searched for ``<package>/<name>/strategy.py`` before ``strategies`` (a trader's own
strategies kept outside this repository, or test fixtures)."""


def strategy_packages() -> list[str]:
    extra = [p.strip() for p in os.environ.get(PACKAGES_ENV, "").split(",") if p.strip()]
    return [*extra, "strategies"]


def package_of(name: str) -> str | None:
    """The first package of :func:`strategy_packages` that has strategy ``name``."""
    for package in strategy_packages():
        try:
            if importlib.util.find_spec(f"{package}.{name}.strategy") is not None:
                return package
        except ModuleNotFoundError:
            continue
    return None


DEFAULT_OMS_URL = "http://127.0.0.1:8000"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def available(package: str = "strategies") -> list[str]:
    """Names with a ``<package>/<name>/strategy.py`` on disk."""
    pkg = importlib.import_module(package)
    roots = [Path(p) for p in getattr(pkg, "__path__", [])]
    return sorted({d.name for r in roots for d in r.iterdir() if (d / "strategy.py").is_file()})


def resolve(name: str, package: str = "strategies") -> ModuleType:
    """Import ``<package>.<name>.strategy``; a clear ConfigError for an unknown name."""
    if not _NAME.match(name):
        raise ConfigError(f"strategy name {name!r}: use lower-case letters, digits and _ (e.g. kmp)")
    target = f"{package}.{name}.strategy"
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is not None and target.startswith(exc.name):
            known = ", ".join(available(package)) or "none yet"
            raise ConfigError(f"unknown strategy {name!r}: no module {target} (available: {known})") from exc
        raise
    if not callable(getattr(module, "build", None)):
        raise ConfigError(f"{target}: has no build(config, oms_client, clock) function")
    return module


def config_model(module: ModuleType) -> type[BaseModel]:
    """``CONFIG_MODEL``, else the annotation of ``build``'s first parameter."""
    model = getattr(module, "CONFIG_MODEL", None)
    if model is None:
        params = list(inspect.signature(module.build).parameters)
        hints = typing.get_type_hints(module.build) if params else {}
        model = hints.get(params[0]) if params else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(
            f"{module.__name__}: set CONFIG_MODEL (a pydantic model) or annotate build()'s config parameter with one"
        )
    return model


def run_strategy(name: str, *, package: str | None = None) -> int:
    """Run strategy ``name`` until SIGTERM/SIGINT; returns the process exit code. Without ``package`` the
    name is looked up in :func:`strategy_packages`."""
    module = resolve(name, package or package_of(name) or "strategies")
    config = load_strategy_config(name, config_model(module))

    def build(oms: OmsClient, clock: Clock) -> Strategy:
        strategy = module.build(config, oms, clock)
        if not isinstance(strategy, Strategy):
            raise ConfigError(f"{module.__name__}.build returned {type(strategy).__name__}, not a Strategy")
        return strategy

    return run_built(build, name)


def run_built(build: Callable[[OmsClient, Clock], Strategy], name: str) -> int:
    """Run the strategy ``build(oms_client, clock)`` returns, wired from the environment as
    :func:`run_strategy` does (``name``: the default strategy id); for clients that are not in a strategy
    package, e.g. the scripted client of ``trader demo --market us``."""
    url = os.environ.get("OMS_URL") or DEFAULT_OMS_URL
    key = os.environ.get("OMS_API_KEY", "")
    if not key:
        raise ConfigError(
            f"OMS_API_KEY: not set (the strategy key the OMS knows for {name.upper()} in OMS_STRATEGY_KEYS)"
        )
    try:
        clock = clock_from_env()
    except ClockSpecError as exc:
        raise ConfigError(str(exc)) from exc
    strategy_id = (os.environ.get("STRATEGY_ID") or name).upper()
    if not logging.getLogger().handlers:
        from broker_core.logging_setup import configure

        configure(os.environ.get("LOG_LEVEL", "INFO"))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request is noise here
    return asyncio.run(_main(build, url, key, strategy_id, clock))


async def _main(
    build: Callable[[OmsClient, Clock], Strategy], url: str, key: str, strategy_id: str, clock: Clock
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    running: list[Strategy] = []

    def on_signal() -> None:
        stop.set()
        for s in running:
            s.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        async with OmsClient(url, key, strategy_id) as oms:
            if not await _until_ready(oms, stop):
                return 0
            strategy = build(oms, clock)
            running.append(strategy)
            if stop.is_set():
                return 0
            await strategy.run()
            return 1 if strategy.failure is not None else 0
    except OmsError as exc:
        log.error("%s stopped: %s", strategy_id, exc)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _until_ready(oms: OmsClient, stop: asyncio.Event, timeout: float = 120.0) -> bool:
    """Wait for the OMS to be healthy; False when a stop came first; OmsUnavailable after ``timeout``."""
    ready = asyncio.create_task(oms.wait_ready(timeout=timeout))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not ready.done():
        ready.cancel()
        return False
    ready.result()
    return True
