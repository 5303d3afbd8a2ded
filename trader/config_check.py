"""``trader config check``: validate a host's ``.env`` and the YAML configuration before a deploy.

``check(env_file, config_dir)`` returns the problems found (one line each, naming the file and the
variable or key); an empty list means OK.

* ``.env``: the compose files say what a host needs. The ``.env`` names them itself, the way
  ``docker compose`` reads it: ``COMPOSE_FILE`` (``docker-compose.vps1.yml`` or ``…vps2.yml``) and
  ``COMPOSE_PROFILES`` (e.g. ``alpaca``); keyword arguments override both. Every ``${VAR}`` that an
  active service (or a top-level volume/network) reads without a default must be set and
  non-empty; then the values are checked where their form matters: the KIS credentials of the
  chosen mode (``KIS_IS_PAPER``), booleans, API keys (length, distinct, no ``,``/``:`` inside
  ``OMS_STRATEGY_KEYS``), passwords inside a database URL (URL-safe), the Metabase encryption key,
  and each OMS service's resulting environment through :class:`oms.settings.OmsSettings`.
* YAML: ``config/oms.yaml`` and the hosts' ``config/oms.<host>.yaml`` through
  :func:`oms.settings.load_config` (the compose files point each OMS at its host's file);
  ``config/<name>.yaml`` through the config model of strategy ``<name>`` (as ``trader strategy <name>``
  loads it) when that strategy exists, otherwise for YAML syntax only.
* Nothing silently ignored or unbuilt: a ``.env`` variable set (to other than ``.env.example``'s value) that
  no active service reads (e.g. a
  ``DATABASE_URL`` from an older deployment: the compose files build the OMS's own) is a problem, and so is an
  active service running a strategy (``trader strategy NAME``) or a broker adapter (``OMS_BROKER``) that
  this build does not have — it would exit at start and restart forever.

With ``env_file=None`` only the YAML configuration is checked.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["check", "check_configs", "check_env", "parse_env_file", "compose_variables", "interpolate"]

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]*$")
MIN_KEY_LEN = 16


@dataclass(frozen=True)
class VarUse:
    name: str
    required: bool
    """Used without a default (``${X}``, ``$X``, ``${X:?msg}``): compose has nothing to fall back on."""
    where: str
    """``<compose file>: services.<name>.<path>``"""
    service: str | None
    """The service that reads it (``None`` for top-level volumes/networks)."""
    in_url: bool
    """Part of a ``scheme://`` URL (so it must be URL-safe)."""


# ---- entry point ----------------------------------------------------------------------------------
def check(
    env_file: Path | None,
    config_dir: Path,
    *,
    compose_dir: Path | None = None,
    compose_files: Sequence[str] | None = None,
    profiles: Sequence[str] | None = None,
) -> list[str]:
    """Problems with ``env_file`` (``None``: not checked) and the YAML files in ``config_dir``.

    ``compose_dir`` is where the compose files are (default: ``config_dir``'s parent, the repository
    root); ``compose_files`` / ``profiles`` override ``COMPOSE_FILE`` / ``COMPOSE_PROFILES`` of the
    ``.env``."""
    config_dir = Path(config_dir)
    problems = check_configs(config_dir)
    if env_file is not None:
        problems += check_env(
            Path(env_file),
            Path(compose_dir) if compose_dir else config_dir.resolve().parent,
            compose_files=compose_files,
            profiles=profiles,
        )
    return problems


# ---- YAML configuration ---------------------------------------------------------------------------
def _strategy_loader(name: str) -> Callable[[Path], Any] | None:
    """How ``config/<name>.yaml`` is validated, if a strategy of that name exists: the SDK's way
    (``strategies.<name>.strategy``'s config model, as ``trader strategy`` loads it), else a
    ``load_<name>_config`` / ``load_config`` in ``strategies.<name>.config``."""
    try:
        if importlib.util.find_spec(f"strategies.{name}") is None:
            return None
        has_strategy = importlib.util.find_spec(f"strategies.{name}.strategy") is not None
        has_config = importlib.util.find_spec(f"strategies.{name}.config") is not None
    except (ImportError, ValueError):
        return None
    if has_strategy:
        from strategies.sdk.config import load_strategy_config
        from strategies.sdk.runner import config_model, resolve

        model = config_model(resolve(name))
        return lambda path: load_strategy_config(name, model, path)
    if has_config:
        module = importlib.import_module(f"strategies.{name}.config")
        for attr in (f"load_{name}_config", "load_config"):
            fn = getattr(module, attr, None)
            if callable(fn):
                return fn
    return None


def check_configs(config_dir: Path) -> list[str]:
    """Problems with the YAML files in ``config_dir``."""
    from broker_core.config_errors import ConfigError
    from oms.settings import load_config

    if not config_dir.is_dir():
        return [f"{config_dir}: configuration directory not found"]
    problems: list[str] = []
    oms_yaml = config_dir / "oms.yaml"
    if not oms_yaml.exists():
        problems.append(f"{oms_yaml}: not found (the OMS services read OMS_CONFIG=/app/config/oms.yaml)")
    else:
        try:
            load_config(oms_yaml)
        except ConfigError as exc:
            problems.extend(str(exc).splitlines() or [f"{oms_yaml}: invalid"])
    for path in sorted([*config_dir.glob("*.yaml"), *config_dir.glob("*.yml")]):
        if path.name == "oms.yaml":
            continue
        if path.name.startswith("oms."):  # a host's OMS config (oms.vps1.yaml: extends oms.yaml)
            try:
                load_config(path)
            except ConfigError as exc:
                problems.extend(str(exc).splitlines() or [f"{path}: invalid"])
            continue
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            problems.append(f"{path}: not valid YAML ({_one_line(exc)})")
            continue
        try:
            loader = _strategy_loader(path.stem)
        except Exception as exc:  # noqa: BLE001 - a broken validator module is itself a problem
            problems.append(
                f"{path}: cannot load the config model of strategy {path.stem!r} ({type(exc).__name__}: {exc})"
            )
            continue
        if loader is None:
            continue
        try:
            loader(path)
        except Exception as exc:  # noqa: BLE001 - the loaders raise their own ConfigError types
            problems.extend(str(exc).splitlines() or [f"{path}: invalid ({type(exc).__name__})"])
    return problems


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


# ---- .env ------------------------------------------------------------------------------------------
def parse_env_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """``(values, problems)`` of a compose-style ``.env``: ``KEY=value`` lines, ``#`` comments,
    optional ``export``, single or double quotes; an unquoted value ends at `` #``."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):
            problems.append(f"{path}:{lineno}: not a KEY=value line")
            continue
        value = value.strip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            end = value.find(quote, 1)
            if end < 0:
                problems.append(f"{path}:{lineno}: {key}: unterminated {quote} quote")
                continue
            value = value[1:end]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[key] = value
    return values, problems


def _walk(node: Any, path: str) -> Iterable[tuple[str, str]]:
    """``(path, string)`` for every string (keys included) under ``node``."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str):
                yield f"{path}.{k}" if path else k, k
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def _uses(text: str, where: str, service: str | None) -> Iterable[VarUse]:
    in_url = bool(re.match(r"^[a-z][a-z0-9+.-]*://", text))
    for m in _VAR.finditer(text):
        name = m.group("braced") or m.group("plain")
        if not name:
            continue
        op = m.group("op") or ""
        yield VarUse(name, required=op in ("", ":?", "?"), where=where, service=service, in_url=in_url)


def active_services(compose: dict[str, Any], profiles: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Services that ``docker compose up`` starts with ``profiles`` enabled."""
    active = set(profiles)
    out = {}
    for name, svc in (compose.get("services") or {}).items():
        svc_profiles = set((svc or {}).get("profiles") or [])
        if not svc_profiles or svc_profiles & active:
            out[name] = svc or {}
    return out


def compose_variables(compose_path: Path, profiles: Iterable[str] = ()) -> list[VarUse]:
    """Every variable the compose file reads for the active services and top-level resources
    (``x-`` extension fields are only templates: what they feed is read through the services)."""
    compose = yaml.safe_load(compose_path.read_text()) or {}
    uses: list[VarUse] = []
    for name, svc in active_services(compose, profiles).items():
        for path, text in _walk(svc, f"services.{name}"):
            uses.extend(_uses(text, f"{compose_path.name}: {path}", name))
    for key, value in compose.items():
        if key == "services" or str(key).startswith("x-"):
            continue
        for path, text in _walk(value, str(key)):
            uses.extend(_uses(text, f"{compose_path.name}: {path}", None))
    return uses


def interpolate(text: str, env: dict[str, str]) -> str:
    """``text`` with compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``,
    ``${VAR:+alt}`` and ``$$`` resolved against ``env`` (missing → empty)."""

    def repl(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op") or "", m.group("arg") or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if value is not None else ""
        return value or ""

    return _VAR.sub(repl, text)


def _bool_ok(value: str) -> bool:
    return value.strip().lower() in _TRUE | _FALSE


def check_env(
    env_file: Path,
    compose_dir: Path,
    *,
    compose_files: Sequence[str] | None = None,
    profiles: Sequence[str] | None = None,
) -> list[str]:
    """Problems with the ``.env`` of one host (see the module docstring)."""
    if not env_file.is_file():
        return [f"{env_file}: not found (copy .env.example to .env and fill it in)"]
    env, problems = parse_env_file(env_file)
    src = env_file.name

    if compose_files is None:
        raw = env.get("COMPOSE_FILE", "")
        compose_files = [p for p in re.split(r"[:;]", raw) if p.strip()]
        if not compose_files:
            return problems + [
                f"{src}: COMPOSE_FILE: not set; it says which host this is "
                "(docker-compose.vps1.yml or docker-compose.vps2.yml)"
            ]
    if profiles is None:
        profiles = [p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",") if p.strip()]

    uses: list[VarUse] = []
    composes: list[tuple[Path, dict[str, Any]]] = []
    for name in compose_files:
        path = Path(name) if Path(name).is_absolute() else compose_dir / name
        if not path.is_file():
            problems.append(f"{src}: COMPOSE_FILE: {path} not found")
            continue
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            problems.append(f"{path}: not valid YAML ({_one_line(exc)})")
            continue
        declared = {p for svc in (doc.get("services") or {}).values() for p in ((svc or {}).get("profiles") or [])}
        for unknown in sorted(set(profiles) - declared):
            problems.append(
                f"{src}: COMPOSE_PROFILES: {path.name} has no profile {unknown!r} "
                f"(profiles: {', '.join(sorted(declared)) or 'none'})"
            )
        composes.append((path, doc))
        uses.extend(compose_variables(path, profiles))

    # 1. every variable read without a default is set and non-empty
    required: dict[str, list[VarUse]] = {}
    for u in uses:
        if u.required:
            required.setdefault(u.name, []).append(u)
    for name in sorted(required):
        if not env.get(name, "").strip():
            readers = sorted({u.service for u in required[name] if u.service}) or [required[name][0].where]
            state = "empty" if name in env else "not set"
            problems.append(f"{src}: {name}: {state} (needed by {', '.join(readers)})")

    used = {u.name for u in uses}
    account_vars, account_problems = _accounts_variables(composes, profiles, env)
    used |= account_vars
    problems += account_problems
    problems += _unread_variables(env, src, composes, used, profiles)
    problems += _unbuilt_services(src, composes, profiles)

    # 2. values whose form matters
    def val(name: str) -> str:
        return env.get(name, "").strip()

    for name in sorted(used):
        if name.endswith("_IS_PAPER") or name == "ALPACA_PAPER":
            if val(name) and not _bool_ok(val(name)):
                problems.append(f"{src}: {name}: {val(name)!r} is not true/false")
    for name in sorted({u.name for u in uses if u.in_url}):
        if val(name) and not _URL_SAFE.match(val(name)):
            problems.append(
                f"{src}: {name}: used inside a database URL; use only letters, digits and "
                "'.', '_', '~', '-' (e.g. `openssl rand -hex 24`)"
            )

    kis_services = []
    for _path, doc in composes:
        for sname, svc in active_services(doc, profiles).items():
            envmap = svc.get("environment") or {}
            if isinstance(envmap, dict) and str(envmap.get("OMS_BROKER", "")) == "kis":
                kis_services.append(sname)
    if kis_services:
        paper = val("KIS_IS_PAPER").lower() in _TRUE if val("KIS_IS_PAPER") else True
        needed = (
            ["KIS_PAPER_APP_KEY", "KIS_PAPER_APP_SECRET", "KIS_PAPER_ACCOUNT_NO"]
            if paper
            else ["KIS_APP_KEY", "KIS_APP_SECRET", "KIS_ACCOUNT_NO"]
        )
        mode = "KIS_IS_PAPER=true (paper)" if paper else "KIS_IS_PAPER=false (real account)"
        for name in needed:
            if not val(name):
                problems.append(f"{src}: {name}: needed with {mode}")
        acct = "KIS_PAPER_ACCOUNT_NO" if paper else "KIS_ACCOUNT_NO"
        if val(acct) and not re.fullmatch(r"\d{8}", val(acct)):
            problems.append(f"{src}: {acct}: must be the 8-digit account number (CANO), without the product code")
        if val("KIS_ACCOUNT_PROD_CODE") and not re.fullmatch(r"\d{2}", val("KIS_ACCOUNT_PROD_CODE")):
            problems.append(f"{src}: KIS_ACCOUNT_PROD_CODE: must be 2 digits (e.g. 01)")

    keys = [n for n in sorted(used) if n in ("OMS_ADMIN_KEY", "OMS_READ_KEY") or n.startswith("OMS_KEY_")]
    for name in keys:
        v = val(name)
        if not v:
            continue
        if len(v) < MIN_KEY_LEN:
            problems.append(f"{src}: {name}: shorter than {MIN_KEY_LEN} characters (use `openssl rand -hex 24`)")
        if name.startswith("OMS_KEY_") and ("," in v or ":" in v):
            problems.append(f"{src}: {name}: may not contain ',' or ':' (it goes into OMS_STRATEGY_KEYS)")
    seen: dict[str, str] = {}
    for name in keys:
        v = val(name)
        if v and v in seen:
            problems.append(f"{src}: {name}: same value as {seen[v]}; every key must be different")
        elif v:
            seen[v] = name
    if (
        "METABASE_ENCRYPTION_KEY" in used
        and val("METABASE_ENCRYPTION_KEY")
        and len(val("METABASE_ENCRYPTION_KEY")) < 16
    ):
        problems.append(f"{src}: METABASE_ENCRYPTION_KEY: at least 16 characters")

    # 3. the environment each OMS service ends up with, through the OMS's own settings model
    if not problems:
        for path, doc in composes:
            for sname, svc in active_services(doc, profiles).items():
                envmap = svc.get("environment")
                if not isinstance(envmap, dict) or "OMS_BROKER" not in envmap:
                    continue
                resolved = {k: interpolate(str(v), env) for k, v in envmap.items() if v is not None}
                problems.extend(
                    f"{src}: {path.name}: services.{sname}: {line}" for line in _oms_settings_problems(resolved)
                )
    return problems


COMPOSE_OWN = frozenset({"COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME", "COMPOSE_PATH_SEPARATOR"})
"""Variables ``docker compose`` itself reads from ``.env``."""

_WHY_UNREAD = {
    "DATABASE_URL": (
        "each OMS's DATABASE_URL is set in the compose file from POSTGRES_WRITER_PASSWORD (and VPS2_DB_HOST on "
        "host 1), so this value would be ignored; remove it"
    ),
}


def _unread_variables(
    env: dict[str, str], src: str, composes: list[tuple[Path, dict[str, Any]]], used: set[str], profiles: Sequence[str]
) -> list[str]:
    """A non-empty variable that no active service reads is silently ignored by compose: one problem each."""
    if not composes:
        return []
    names = ", ".join(p.name for p, _ in composes)
    example = composes[0][0].parent / ".env.example"
    defaults = parse_env_file(example)[0] if example.is_file() else {}
    problems = []
    for name, value in env.items():
        if not value.strip() or name in used or name in COMPOSE_OWN or defaults.get(name) == value:
            continue
        other = sorted(_profiles_reading(composes).get(name, set()))
        if other:
            why = f"read only with profile {', '.join(other)}, which COMPOSE_PROFILES does not enable"
        else:
            why = _WHY_UNREAD.get(name, f"no service of {names} reads it, so it would be ignored; remove it")
        problems.append(f"{src}: {name}: set but not used: {why}")
    return problems


def _accounts_variables(
    composes: list[tuple[Path, dict[str, Any]]], profiles: Sequence[str], env: dict[str, str]
) -> tuple[set[str], list[str]]:
    """A ``trader accounts`` service (profile ``us``) reads the credential variables ``config/accounts.yaml``
    names (through ``env_file``): they count as used, and the file is validated against this ``.env``."""
    from trader.accounts.config import AccountsConfigError, load_accounts

    names: set[str] = set()
    problems: list[str] = []
    for path, doc in composes:
        for svc in active_services(doc, profiles).values():
            cmd = svc.get("command") or []
            cmd = cmd.split() if isinstance(cmd, str) else list(cmd)
            if cmd[:2] != ["trader", "accounts"]:
                continue
            accounts = path.parent / "config" / "accounts.yaml"
            try:
                raw = yaml.safe_load(accounts.read_text()) or {}
            except (OSError, yaml.YAMLError):
                raw = {}
            for spec in (raw.get("accounts") or {}).values():
                if isinstance(spec, dict):
                    names |= {str(spec[k]) for k in ("key_env", "secret_env") if spec.get(k)}
            try:
                load_accounts(accounts, env)
            except AccountsConfigError as exc:
                problems += exc.problems
    return names, problems


def _profiles_reading(composes: list[tuple[Path, dict[str, Any]]]) -> dict[str, set[str]]:
    """Variable → the profiles of the services (in any profile) that read it."""
    out: dict[str, set[str]] = {}
    for path, doc in composes:
        services = doc.get("services") or {}
        every = {p for svc in services.values() for p in ((svc or {}).get("profiles") or [])}
        for u in compose_variables(path, every):
            svc = services.get(u.service or "") or {}
            out.setdefault(u.name, set()).update(svc.get("profiles") or [])
    return out


def strategy_built(name: str) -> bool:
    """``trader strategy NAME`` would find the strategy (``strategies/<name>/strategy.py`` in this build)."""
    from strategies.sdk.runner import package_of

    return package_of(name) is not None


def _venue_kinds() -> tuple[str, ...]:
    from trader.venues import VENUE_KINDS

    return VENUE_KINDS


def broker_built(kind: str) -> bool:
    """The OMS of this build can own an ``OMS_BROKER=kind`` account (an adapter alone is not enough)."""
    return kind in _venue_kinds()


def _unbuilt_services(src: str, composes: list[tuple[Path, dict[str, Any]]], profiles: Sequence[str]) -> list[str]:
    """Active services that would exit at once and restart forever: a strategy or a broker adapter this build
    does not have."""
    problems = []
    for path, doc in composes:
        for sname, svc in active_services(doc, profiles).items():
            cmd = svc.get("command") or []
            cmd = cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]
            where = f"{src}: {path.name}: services.{sname}"
            enabled = (
                f" (remove profile {', '.join(svc['profiles'])} from COMPOSE_PROFILES)" if svc.get("profiles") else ""
            )
            if cmd[:2] == ["trader", "strategy"] and len(cmd) > 2 and not strategy_built(cmd[2]):
                problems.append(
                    f"{where}: strategy {cmd[2]!r} is not built in this version (no strategies/{cmd[2]}){enabled}"
                )
            envmap = svc.get("environment")
            broker = str(envmap.get("OMS_BROKER", "")) if isinstance(envmap, dict) else ""
            if broker and not broker_built(broker):
                problems.append(
                    f"{where}: OMS_BROKER={broker}: this broker adapter is not built in this version "
                    f"(its OMS owns {'/'.join(_venue_kinds())} accounts only){enabled}"
                )
    return problems


def _oms_settings_problems(environment: dict[str, str]) -> list[str]:
    from pydantic import ValidationError

    from broker_core.config_errors import ConfigError
    from oms.settings import OmsSettings

    fields = set(OmsSettings.model_fields)
    # init kwargs (not model_validate) so the settings sources still apply, as at OMS start-up;
    # typed Any because the plugin's __init__ also lists BaseSettings' non-str ``_...`` options
    kwargs: dict[str, Any] = {k.lower(): v for k, v in environment.items() if k.lower() in fields}
    try:
        settings = OmsSettings(**kwargs)
        settings.strategy_keys()
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()]
    except ConfigError as exc:
        return str(exc).splitlines()
    if settings.oms_admin_key is None or not settings.oms_admin_key.get_secret_value():
        return ["OMS_ADMIN_KEY: not set"]
    return []
