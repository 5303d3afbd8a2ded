"""``config/accounts.yaml``: the accounts one host runs, each with its own OMS and strategies
(``../shared/specs/sector_rotation.md`` §4).

Validated whole before anything starts (A2): unknown keys, duplicate ports, unknown strategies, a strategy
on a broker of another market, and credential variables that are not set each give one line naming the
file, the account and the key. Credentials are only ever the *names* of environment variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker_core.config_errors import ConfigError

ROTATION_MODELS = ("rotation_core", "rotation_bull", "rotation_bear", "rotation_adaptive")
US_STRATEGIES = (*ROTATION_MODELS, "swing_ml")
KRX_STRATEGIES = ("kmp", "kpr", "nulrimok", "pcim")
BROKER_MARKET = {"alpaca": "us", "kis": "krx", "paper": "us"}
"""The market each broker of an account trades (a paper account here is a US paper account)."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class AccountsConfigError(ConfigError):
    """``accounts.yaml`` is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class AccountSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: Literal["alpaca", "kis", "paper"]
    paper: bool = True
    key_env: str | None = None
    secret_env: str | None = None
    oms_port: int = Field(ge=1024, le=65535)
    strategies: list[str] = Field(default_factory=list)
    budgets: dict[str, float] = Field(default_factory=dict)
    """``budget_fraction`` per model (M6); models not named share the rest equally."""
    paper_date: str | None = None
    """A paper account's first session (``YYYY-MM-DD``); default the clock's."""


class AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    accounts: dict[str, AccountSpec]


@dataclass(frozen=True)
class Account:
    name: str
    spec: AccountSpec

    @property
    def market(self) -> str:
        return BROKER_MARKET[self.spec.broker]

    @property
    def instance_id(self) -> str:
        return self.name

    def strategy_id(self, strategy: str) -> str:
        return strategy.upper()

    def budgets(self) -> dict[str, float]:
        """M6: each strategy's ``budget_fraction`` (given ones as written, the rest share what is left equally)."""
        given = dict(self.spec.budgets)
        rest = [s for s in self.spec.strategies if s not in given]
        left = max(0.0, 1.0 - sum(given.values()))
        return {**given, **{s: left / len(rest) for s in rest}} if rest else given


def load_accounts(path: str | Path, env: Mapping[str, str], *, check_credentials: bool = True) -> list[Account]:
    """The accounts of ``path``; AccountsConfigError listing every problem (nothing may start then).
    ``check_credentials=False`` (a backtest of an account's mix) does not ask for the credential variables."""
    source = Path(path)
    if not source.is_file():
        raise AccountsConfigError([f"{source}: not found"])
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except yaml.YAMLError as exc:
        raise AccountsConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    try:
        parsed = AccountsFile.model_validate(raw)
    except ValidationError as exc:
        raise AccountsConfigError([_describe(source, e) for e in exc.errors()]) from exc
    problems = _check(source, parsed, env, check_credentials)
    if problems:
        raise AccountsConfigError(problems)
    return [Account(name, spec) for name, spec in parsed.accounts.items()]


def _describe(source: Path, err: object) -> str:
    assert isinstance(err, dict)
    loc = ".".join(str(p) for p in err["loc"]) or "(root)"
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    return f"{source}: {loc}: {msg}"


def _check(source: Path, parsed: AccountsFile, env: Mapping[str, str], check_credentials: bool = True) -> list[str]:
    problems: list[str] = []
    if not parsed.accounts:
        problems.append(f"{source}: accounts: no account")
    ports: dict[int, str] = {}
    for name, spec in parsed.accounts.items():
        where = f"{source}: accounts.{name}"
        if not _NAME.match(name):
            problems.append(f"{where}: the account name must be lower-case letters, digits, - or _ (≤ 24)")
        if spec.oms_port in ports:
            problems.append(f"{where}.oms_port: {spec.oms_port} is also accounts.{ports[spec.oms_port]}'s port")
        ports.setdefault(spec.oms_port, name)
        market = BROKER_MARKET[spec.broker]
        allowed = US_STRATEGIES if market == "us" else KRX_STRATEGIES
        for strategy in spec.strategies:
            if strategy not in (*US_STRATEGIES, *KRX_STRATEGIES):
                problems.append(f"{where}.strategies: unknown strategy {strategy!r} (one of {', '.join(allowed)})")
            elif strategy not in allowed:
                problems.append(f"{where}.strategies: {strategy!r} trades another market than a {spec.broker} account")
        if len(set(spec.strategies)) != len(spec.strategies):
            problems.append(f"{where}.strategies: a strategy is listed twice")
        for model in spec.budgets:
            if model not in spec.strategies:
                problems.append(f"{where}.budgets.{model}: not one of this account's strategies")
            elif not 0 < spec.budgets[model] <= 1:
                problems.append(f"{where}.budgets.{model}: must be in (0, 1]")
        if sum(spec.budgets.values()) > 1 + 1e-9:
            problems.append(f"{where}.budgets: the fractions add up to more than 1")
        needs_keys = spec.broker in ("alpaca", "kis")
        for key in ("key_env", "secret_env"):
            var = getattr(spec, key)
            if var is None:
                if needs_keys:
                    problems.append(f"{where}.{key}: required for a {spec.broker} account (the variable's name)")
                continue
            if not _ENV.match(var):
                problems.append(f"{where}.{key}: {var!r} is not an environment variable name")
            elif check_credentials and not env.get(var):
                problems.append(f"{where}.{key}: the variable {var} is not set")
    return problems
