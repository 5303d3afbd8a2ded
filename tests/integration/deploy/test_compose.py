"""The compose files: valid against the Compose Specification and consistent with the repository."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from tests.integration.deploy.conftest import (
    COMPOSE_FILES,
    REPO,
    env_example,
    health_check_containers,
    load_compose,
    trader_command,
)
from trader.config_check import interpolate

HOSTS = sorted(COMPOSE_FILES)
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [*_strings(k), *_strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def _interpolated(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolated(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolated(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def _trader_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if trader_command(s)[:1] == ["trader"]}


def _role(service: dict[str, Any]) -> str | None:
    cmd = trader_command(service)
    return cmd[1] if len(cmd) > 1 and cmd[0] == "trader" else None


@pytest.mark.parametrize("host", HOSTS)
def test_valid_against_compose_spec(host: str, compose_schema: dict[str, Any]) -> None:
    raw = load_compose(host)
    validator = jsonschema.Draft7Validator(compose_schema)
    filled = {k: v or "x" for k, v in env_example().items()}
    for label, doc in (("as written", raw), ("interpolated with .env.example", _interpolated(raw, filled))):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, f"{COMPOSE_FILES[host].name} ({label}) violates the Compose Specification:\n" + "\n".join(
            f"  {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors
        )


@pytest.mark.parametrize("host", HOSTS)
def test_every_variable_is_in_env_example(host: str) -> None:
    text = COMPOSE_FILES[host].read_text().replace("$$", "")
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    used = {a or b for a, b in VAR.findall(text)}
    assert used, "no variables found: the parser is broken"
    missing = sorted(used - set(env_example()))
    assert not missing, f"{COMPOSE_FILES[host].name} reads variables that .env.example does not list: {missing}"


def test_env_example_holds_no_secret() -> None:
    secretish = re.compile(r"(KEY|SECRET|PASSWORD|APP_KEY)$")
    filled = {k: v for k, v in env_example().items() if secretish.search(k) and v}
    assert not filled, f".env.example must leave secrets empty: {sorted(filled)}"


@pytest.mark.parametrize("host", HOSTS)
def test_build_contexts_and_dockerfiles_exist(host: str) -> None:
    builds = [s["build"] for s in load_compose(host)["services"].values() if "build" in s]
    assert builds, "the trader services are built from this repository"
    for build in builds:
        context = REPO / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        assert context.is_dir(), f"build context {context} does not exist"
        assert dockerfile.is_file(), f"Dockerfile {dockerfile} does not exist"


@pytest.mark.parametrize("host", HOSTS)
def test_named_volumes_are_declared(host: str) -> None:
    compose = load_compose(host)
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for svc in compose["services"].values():
        for vol in svc.get("volumes") or []:
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/", "~", "$")):
                used.add(source)
    assert used <= declared, f"named volumes used but not declared: {sorted(used - declared)}"
    assert declared <= used, f"declared volumes nobody uses: {sorted(declared - used)}"


def test_container_names_match_health_check() -> None:
    expected = health_check_containers()
    for host in HOSTS:
        services = load_compose(host)["services"]
        base = {s["container_name"] for s in services.values() if not s.get("profiles")}
        assert base == expected[host.upper()], (
            f"{host}: compose {sorted(base)} vs health_check.sh {sorted(expected[host.upper()])}"
        )
    profiled = {
        s["container_name"]
        for h in HOSTS
        for s in load_compose(h)["services"].values()
        if "alpaca" in (s.get("profiles") or [])
    }
    assert profiled == expected["ALPACA"]


def test_required_container_names() -> None:
    names = {
        h: {n: s.get("container_name") for n, s in load_compose(h)["services"].items() if not s.get("profiles")}
        for h in HOSTS
    }
    assert names["vps1"] == {"oms": "oms_vps1", "kmp": "strategy_kmp", "nulrimok": "strategy_nulrimok"}
    assert {k: v for k, v in names["vps2"].items() if k in ("postgres", "oms", "kpr", "pcim")} == {
        "postgres": "trading_db",
        "oms": "oms_vps2",
        "kpr": "strategy_kpr",
        "pcim": "strategy_pcim",
    }


@pytest.mark.parametrize("host", HOSTS)
def test_every_service_has_healthcheck_restart_and_log_rotation(host: str) -> None:
    for name, svc in load_compose(host)["services"].items():
        test = (svc.get("healthcheck") or {}).get("test")
        assert test and not svc["healthcheck"].get("disable"), f"{host}: {name} has no healthcheck"
        assert svc.get("restart") == "unless-stopped", f"{host}: {name} restart policy is {svc.get('restart')!r}"
        logging = svc.get("logging") or {}
        assert logging.get("driver") == "json-file", f"{host}: {name} has no json-file log driver"
        assert {"max-size", "max-file"} <= set(logging.get("options") or {}), f"{host}: {name} logs are not rotated"


@pytest.mark.parametrize("host", HOSTS)
def test_strategies_start_after_a_healthy_oms(host: str) -> None:
    services = load_compose(host)["services"]
    strategies = {n: s for n, s in services.items() if _role(s) == "strategy"}
    assert strategies
    for name, svc in strategies.items():
        deps = svc.get("depends_on")
        assert isinstance(deps, dict), f"{host}: {name} must use the long depends_on form"
        oms_deps = [d for d in deps if _role(services[d]) == "oms"]
        assert len(oms_deps) == 1, f"{host}: {name} must depend on exactly one OMS ({list(deps)})"
        assert deps[oms_deps[0]].get("condition") == "service_healthy", (
            f"{host}: {name} starts before its OMS is healthy"
        )
        env = svc["environment"]
        assert env["OMS_URL"] == f"http://{oms_deps[0]}:8000", f"{host}: {name} talks to another OMS than it waits for"
        assert env["TRADER_CLOCK"] == "real"
        assert env["TRADER_CONFIG_DIR"] == "/app/config", f"{host}: {name} must read the mounted config"
        assert re.fullmatch(r"\$\{OMS_KEY_[A-Z_]+\}", env["OMS_API_KEY"]), f"{host}: {name} OMS_API_KEY"
        sid = env["STRATEGY_ID"]
        assert env["OMS_API_KEY"] == f"${{OMS_KEY_{sid}}}"
        assert f"{sid}:${{OMS_KEY_{sid}}}" in services[oms_deps[0]]["environment"]["OMS_STRATEGY_KEYS"], (
            f"{host}: the OMS does not know {sid}'s key"
        )


def test_oms_on_host2_waits_for_postgres() -> None:
    services = load_compose("vps2")["services"]
    for name, svc in services.items():
        if _role(svc) == "oms":
            assert svc["depends_on"]["postgres"]["condition"] == "service_healthy", name
    assert "pg_isready" in " ".join(trader_command(services["postgres"]) + services["postgres"]["healthcheck"]["test"])
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "./infra/postgres/init:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]
    assert (REPO / "infra/postgres/init/01-roles.sh").is_file()


@pytest.mark.parametrize("host", HOSTS)
def test_oms_wiring(host: str) -> None:
    services = load_compose(host)["services"]
    oms = {n: s for n, s in services.items() if _role(s) == "oms"}
    assert "oms" in oms
    for name, svc in oms.items():
        env = svc["environment"]
        assert trader_command(svc) == ["trader", "oms", "--host", "0.0.0.0", "--port", "8000"]
        assert env["OMS_JOURNAL_PATH"] == "/var/lib/oms/journal.db" and env["OMS_DATA_DIR"] == "/var/lib/oms"
        journal_vol = [v for v in svc["volumes"] if v.endswith(":/var/lib/oms")]
        assert journal_vol and not journal_vol[0].startswith((".", "/")), (
            f"{host}: {name} journal is not on a named volume"
        )
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://trading_writer:${POSTGRES_WRITER_PASSWORD}@")
        assert env["DATABASE_URL"].endswith(":5432/trading")
        assert env["OMS_ADMIN_KEY"] == "${OMS_ADMIN_KEY}" and env["OMS_READ_KEY"] == "${OMS_READ_KEY}"
        for port in svc.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{host}: {name} publishes {port} beyond loopback"
    assert services["oms"]["environment"]["OMS_BROKER"] == "kis"
    assert services["oms"]["environment"]["OMS_INSTANCE_ID"] == host
    assert "127.0.0.1:8000:8000" in services["oms"]["ports"]
    if host == "vps1":
        assert "@${VPS2_DB_HOST}:5432/" in services["oms"]["environment"]["DATABASE_URL"]


@pytest.mark.parametrize("host", HOSTS)
def test_config_is_mounted_read_only(host: str) -> None:
    for name, svc in _trader_services(load_compose(host)).items():
        assert "./config:/app/config:ro" in svc.get("volumes", []), f"{host}: {name} lacks ./config:/app/config:ro"


def test_kis_variables_on_every_kis_oms() -> None:
    names = {
        "KIS_IS_PAPER",
        "KIS_APP_KEY",
        "KIS_APP_SECRET",
        "KIS_ACCOUNT_NO",
        "KIS_ACCOUNT_PROD_CODE",
        "KIS_HTS_ID",
        "KIS_PAPER_APP_KEY",
        "KIS_PAPER_APP_SECRET",
        "KIS_PAPER_ACCOUNT_NO",
    }
    for host in HOSTS:
        env = load_compose(host)["services"]["oms"]["environment"]
        assert names <= set(env), f"{host}: missing {sorted(names - set(env))}"
        for n in names:
            assert env[n].startswith(f"${{{n}"), f"{host}: {n} must come from the host's .env"


def test_metabase_uses_its_own_database() -> None:
    mb = load_compose("vps2")["services"]["metabase"]
    env = mb["environment"]
    assert env["MB_DB_TYPE"] == "postgres" and env["MB_DB_DBNAME"] == "metabase" and env["MB_DB_HOST"] == "postgres"
    assert env["MB_DB_USER"].startswith("${") and env["MB_DB_PASS"].startswith("${")
    assert any(str(p).endswith(":3000") for p in mb["ports"])


def test_alpaca_profile() -> None:
    services = load_compose("vps2")["services"]
    assert services["oms_alpaca"]["profiles"] == ["alpaca"]
    assert services["swing_ml"]["profiles"] == ["alpaca"], "swing_ml trades the Alpaca account's OMS"
    assert services["swing_ml"]["environment"]["SWING_ML_MODELS_DIR"].startswith("/data/"), "models in the volume"
    assert services["oms_alpaca"]["environment"]["OMS_BROKER"] == "alpaca"
    assert {p for s in load_compose("vps1")["services"].values() for p in s.get("profiles") or []} == {"monitoring"}


@pytest.mark.parametrize("host", HOSTS)
def test_monitoring_profile(host: str) -> None:
    services = load_compose(host)["services"]
    monitoring = {n: s for n, s in services.items() if "monitoring" in (s.get("profiles") or [])}
    assert set(monitoring) == {"prometheus", "alertmanager"}
    prom = monitoring["prometheus"]
    assert f"./infra/prometheus/prometheus.{host}.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "./infra/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prom["volumes"]
    for svc in monitoring.values():
        for port in svc["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{host}: {port} beyond loopback"
        for vol in svc["volumes"]:
            source = vol.split(":", 1)[0]
            assert not source.startswith("./") or (REPO / source).exists(), f"{host}: {source} missing"
    assert monitoring["alertmanager"]["environment"]["ALERT_WEBHOOK_URL"] == "${ALERT_WEBHOOK_URL}"
