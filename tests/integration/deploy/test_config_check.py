"""trader.config_check.check: a host's .env against the compose files, and the YAML configuration."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.deploy.conftest import COMPOSE_FILES, ENV_EXAMPLE, REPO
from trader.config_check import check, compose_variables, interpolate, parse_env_file

CONFIG = REPO / "config"


def _key(tag: str) -> str:
    return f"{tag.lower().replace('_', '')}0123456789abcdef"[:24]


VPS1 = {
    "COMPOSE_FILE": "docker-compose.vps1.yml",
    "COMPOSE_PROFILES": "",
    "OMS_ADMIN_KEY": _key("admin"),
    "OMS_READ_KEY": _key("read"),
    "OMS_KEY_KMP": _key("kmp"),
    "OMS_KEY_NULRIMOK": _key("nulrimok"),
    "KIS_IS_PAPER": "true",
    "KIS_HTS_ID": "myhtsid",
    "KIS_PAPER_APP_KEY": "PSpaperappkey",
    "KIS_PAPER_APP_SECRET": "paperappsecret",
    "KIS_PAPER_ACCOUNT_NO": "50123456",
    "KIS_ACCOUNT_PROD_CODE": "01",
    "POSTGRES_WRITER_PASSWORD": "0123456789abcdef0123",
    "VPS2_DB_HOST": "10.0.0.2",
}
VPS2 = {
    **{k: v for k, v in VPS1.items() if k not in ("OMS_KEY_KMP", "OMS_KEY_NULRIMOK", "VPS2_DB_HOST")},
    "COMPOSE_FILE": "docker-compose.vps2.yml",
    "OMS_KEY_KPR": _key("kpr"),
    "OMS_KEY_PCIM": _key("pcim"),
    "POSTGRES_PASSWORD": "superuserpassword01",
    "POSTGRES_READER_PASSWORD": "readerpassword0001",
    "METABASE_DB_PASSWORD": "metabasepassword01",
    "METABASE_ENCRYPTION_KEY": "0123456789abcdef0123",
}
ALPACA = {
    "COMPOSE_PROFILES": "alpaca",
    "OMS_KEY_SWING_ML": _key("swingml"),
    "ALPACA_API_KEY": "PKALPACA",
    "ALPACA_SECRET_KEY": "alpacasecret",
    "ALPACA_PAPER": "true",
}


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("# test .env\n" + "".join(f"{k}={v}\n" for k, v in values.items()))
    return path


@pytest.mark.parametrize("values", [VPS1, VPS2], ids=["vps1", "vps2"])
def test_complete_env_passes(tmp_path: Path, values: dict[str, str]) -> None:
    assert check(write_env(tmp_path / ".env", values), CONFIG) == []


def test_complete_alpaca_env_passes(tmp_path: Path) -> None:
    """The OMS owns an Alpaca account (``OMS_BROKER=alpaca``, config/oms.us.yaml): profile alpaca is accepted."""
    assert check(write_env(tmp_path / ".env", {**VPS2, **ALPACA}), CONFIG) == []


def test_env_example_as_is_lists_what_is_missing(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, env)
    problems = check(env, CONFIG)  # COMPOSE_FILE=docker-compose.vps1.yml in the example
    text = "\n".join(problems)
    for name in (
        "OMS_ADMIN_KEY",
        "OMS_KEY_KMP",
        "POSTGRES_WRITER_PASSWORD",
        "VPS2_DB_HOST",
        "KIS_HTS_ID",
        "KIS_PAPER_APP_KEY",
    ):
        assert f".env: {name}:" in text, text
    assert "POSTGRES_PASSWORD:" not in text, "host 2's variables are not required on host 1"
    assert "ALPACA" not in text, "profile services are only checked when the profile is on"


def test_each_missing_variable_is_named(tmp_path: Path) -> None:
    for name in ("OMS_ADMIN_KEY", "METABASE_DB_PASSWORD", "POSTGRES_READER_PASSWORD", "OMS_KEY_PCIM"):
        values = {k: v for k, v in VPS2.items() if k != name}
        problems = check(write_env(tmp_path / ".env", values), CONFIG)
        assert len([p for p in problems if f": {name}: not set" in p]) == 1, problems
    problems = check(write_env(tmp_path / ".env", {**VPS2, "COMPOSE_PROFILES": "alpaca"}), CONFIG)
    unset = {p.split(": ")[1] for p in problems if ": not set" in p}
    assert unset == {"ALPACA_API_KEY", "ALPACA_SECRET_KEY", "OMS_KEY_SWING_ML"}, problems


def test_form_of_values(tmp_path: Path) -> None:
    cases = {
        "KIS_IS_PAPER": ("maybe", "not true/false"),
        "POSTGRES_WRITER_PASSWORD": ("p@ss/word:123456", "database URL"),
        "OMS_KEY_KMP": ("short", "shorter than"),
        "OMS_KEY_NULRIMOK": ("abc:def,0123456789abcdef", "may not contain"),
        "KIS_PAPER_ACCOUNT_NO": ("50123456-01", "8-digit"),
        "OMS_READ_KEY": (VPS1["OMS_ADMIN_KEY"], "same value as"),
    }
    for name, (value, message) in cases.items():
        problems = check(write_env(tmp_path / ".env", {**VPS1, name: value}), CONFIG)
        assert any(name in p and message in p for p in problems), (name, problems)


def test_kis_mode_decides_which_credentials(tmp_path: Path) -> None:
    real = {**VPS1, "KIS_IS_PAPER": "false"}
    problems = check(write_env(tmp_path / ".env", real), CONFIG)
    assert sorted(p.split(": ")[1] for p in problems) == ["KIS_ACCOUNT_NO", "KIS_APP_KEY", "KIS_APP_SECRET"]
    real.update(KIS_APP_KEY="PSrealappkey", KIS_APP_SECRET="realsecret", KIS_ACCOUNT_NO="12345678")
    assert check(write_env(tmp_path / ".env", real), CONFIG) == []


def test_host_must_be_named(tmp_path: Path) -> None:
    values = {k: v for k, v in VPS1.items() if k != "COMPOSE_FILE"}
    problems = check(write_env(tmp_path / ".env", values), CONFIG)
    assert len(problems) == 1 and "COMPOSE_FILE" in problems[0]
    assert check(write_env(tmp_path / ".env", values), CONFIG, compose_files=["docker-compose.vps1.yml"]) == []
    problems = check(write_env(tmp_path / ".env", {**VPS1, "COMPOSE_FILE": "docker-compose.vps3.yml"}), CONFIG)
    assert any("not found" in p for p in problems)
    problems = check(write_env(tmp_path / ".env", {**VPS1, "COMPOSE_PROFILES": "alpaca"}), CONFIG)
    assert any("no profile 'alpaca'" in p for p in problems), "alpaca lives in the vps2 file"


def test_missing_env_file(tmp_path: Path) -> None:
    assert "not found" in check(tmp_path / "nope.env", CONFIG)[0]


def test_yaml_configs(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    assert check(None, cfg) == []
    (cfg / "oms.yaml").write_text((cfg / "oms.yaml").read_text() + "\nbogus_key: 1\n")
    (cfg / "accounts.yaml").write_text("accounts: [unclosed\n")
    problems = check(None, cfg)
    assert any("oms.yaml" in p and "bogus_key" in p and "unknown key" in p for p in problems), problems
    assert any("accounts.yaml" in p and "not valid YAML" in p for p in problems), problems
    (cfg / "oms.yaml").unlink()
    assert any("oms.yaml: not found" in p for p in check(None, cfg))
    assert "not found" in check(None, tmp_path / "missing")[0]


def test_strategy_config_validated_by_its_model(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    (cfg / "kmp.yaml").write_text("strategy_id: KMP\nnot_a_kmp_key: 1\n")  # strategies.kmp.config exists
    problems = check(None, cfg)
    assert any("kmp.yaml" in p and "not_a_kmp_key" in p for p in problems), problems
    (cfg / "zzz_notes.yaml").write_text("anything: [1, 2]\n")  # no model: syntax only
    assert not any("zzz_notes" in p for p in check(None, cfg))


def test_env_parser_and_interpolation(tmp_path: Path) -> None:
    f = tmp_path / ".env"
    f.write_text("# c\nexport A=1\nB='x # y'\nC=\"q\"\nD=plain # comment\nE=\nnot a line\n")
    values, problems = parse_env_file(f)
    assert values == {"A": "1", "B": "x # y", "C": "q", "D": "plain", "E": ""}
    assert len(problems) == 1 and ":7:" in problems[0]
    env = {"A": "1", "E": ""}
    assert interpolate("${A}-${E:-d}-${E-d}-${X:-dx}-$A-$$A-${A:+set}", env) == "1-d--dx-1-$A-set"


def test_compose_variables_follow_profiles() -> None:
    base = {u.name for u in compose_variables(COMPOSE_FILES["vps2"])}
    with_alpaca = {u.name for u in compose_variables(COMPOSE_FILES["vps2"], ["alpaca"])}
    assert "ALPACA_API_KEY" not in base and {"ALPACA_API_KEY", "OMS_KEY_SWING_ML"} <= with_alpaca
    optional = {u.name for u in compose_variables(COMPOSE_FILES["vps1"]) if not u.required}
    assert {"KIS_APP_KEY", "KIS_IS_PAPER"} <= optional


def test_profile_us_checks_the_accounts_file_against_the_env(tmp_path: Path) -> None:
    """``trader accounts`` (profile us) reads the variables config/accounts.yaml names: missing ones are named
    with the account and key; set, they are not 'set but not used'."""
    creds = {
        "ALPACA_KEY_MAIN": "PKMAIN0001",
        "ALPACA_SECRET_MAIN": "secretmain01",
        "ALPACA_KEY_ADAPT": "PKADAPT001",
        "ALPACA_SECRET_ADAPT": "secretadapt1",
    }
    assert check(write_env(tmp_path / ".env", {**VPS2, "COMPOSE_PROFILES": "us", **creds}), CONFIG) == []
    missing = {k: v for k, v in creds.items() if k != "ALPACA_SECRET_ADAPT"}
    problems = check(write_env(tmp_path / ".env", {**VPS2, "COMPOSE_PROFILES": "us", **missing}), CONFIG)
    assert len(problems) == 1 and "accounts.paper-adaptive.secret_env: the variable ALPACA_SECRET_ADAPT" in problems[0]
    unused = check(write_env(tmp_path / ".env", {**VPS2, **creds}), CONFIG)
    assert all("set but not used" in p for p in unused) and len(unused) == 4, unused
