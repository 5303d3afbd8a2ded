"""``config/accounts.yaml`` is validated whole before anything starts: each bad variant is one line naming the
file, the account and the key (sector_rotation.md A2), and ``trader accounts --check`` exits 2 on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trader.accounts import AccountsConfigError, load_accounts

ROOT = Path(__file__).resolve().parents[3]
ENV = {
    "ALPACA_KEY_MAIN": "PKMAIN",
    "ALPACA_SECRET_MAIN": "s1",
    "ALPACA_KEY_ADAPT": "PKADAPT",
    "ALPACA_SECRET_ADAPT": "s2",
}


def write(tmp_path: Path, accounts: dict[str, object]) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"accounts": accounts}, sort_keys=False))
    return path


def shipped() -> dict[str, object]:
    data = yaml.safe_load((ROOT / "config" / "accounts.yaml").read_text())
    return dict(data["accounts"])


def problems(path: Path, env: dict[str, str] = ENV) -> list[str]:
    with pytest.raises(AccountsConfigError) as info:
        load_accounts(path, env)
    return info.value.problems


def test_the_shipped_file_is_valid_when_its_variables_are_set() -> None:
    accounts = load_accounts(ROOT / "config" / "accounts.yaml", ENV)
    assert [(a.name, a.spec.oms_port, a.market) for a in accounts] == [
        ("paper-main", 8101, "us"),
        ("paper-adaptive", 8102, "us"),
    ]
    assert "PKMAIN" not in repr(accounts), "credentials are only variable names in the file"


def test_a_port_clash_names_both_accounts(tmp_path: Path) -> None:
    accounts = shipped()
    accounts["paper-adaptive"] = {**accounts["paper-adaptive"], "oms_port": 8101}  # type: ignore[dict-item]
    found = problems(write(tmp_path, accounts))
    assert found == [
        f"{tmp_path / 'accounts.yaml'}: accounts.paper-adaptive.oms_port: 8101 is also accounts.paper-main's port"
    ]


def test_a_missing_credential_variable_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "ALPACA_SECRET_ADAPT"}
    found = problems(write(tmp_path, shipped()), env)
    assert (
        len(found) == 1
        and "accounts.paper-adaptive.secret_env: the variable ALPACA_SECRET_ADAPT is not set" in found[0]
    )


def test_a_typo_key_is_named(tmp_path: Path) -> None:
    accounts = shipped()
    main = dict(accounts.pop("paper-main"))  # type: ignore[call-overload]
    main["oms_prot"] = main.pop("oms_port")
    found = problems(write(tmp_path, {"paper-main": main}))
    assert any("accounts.paper-main.oms_prot: unknown key" in p for p in found), found
    assert any("accounts.paper-main.oms_port" in p for p in found), found


def test_unknown_strategy_and_wrong_market_are_named(tmp_path: Path) -> None:
    accounts = shipped()
    accounts["paper-main"] = {**accounts["paper-main"], "strategies": ["rotation_core", "rotation_turbo", "kmp"]}  # type: ignore[dict-item]
    found = problems(write(tmp_path, accounts))
    assert len(found) == 2, found
    assert "accounts.paper-main.strategies: unknown strategy 'rotation_turbo'" in found[0]
    assert "'kmp' trades another market" in found[1]


def test_trader_accounts_check_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    accounts = shipped()
    accounts["paper-adaptive"] = {**accounts["paper-adaptive"], "oms_port": 8101}  # type: ignore[dict-item]
    path = write(tmp_path, accounts)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}, **ENV}
    bad = subprocess.run(
        [sys.executable, "-m", "trader", "accounts", "--file", str(path), "--state-dir", str(tmp_path / "state")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "oms_port: 8101 is also" in bad.stdout, bad.stdout + bad.stderr
    assert not (tmp_path / "state").exists(), "nothing may start on an invalid file"
    good = subprocess.run(
        [sys.executable, "-m", "trader", "accounts", "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0 and "OK — paper-main, paper-adaptive" in good.stdout, good.stdout + good.stderr
