"""Configuration errors name the file and key (YAML) or the variable (env) and stop the start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker_core.config_errors import ConfigError
from oms.settings import DEFAULT_CONFIG, OmsConfig, load_config, load_settings


def test_shipped_config_is_valid() -> None:
    assert isinstance(load_config(DEFAULT_CONFIG), OmsConfig)


def test_unknown_yaml_key_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "oms.yaml"
    path.write_text("risk:\n  max_gross_exposure: 0.8\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert (
        str(path) in str(exc.value) and "risk.max_gross_exposure" in str(exc.value) and "unknown key" in str(exc.value)
    )


def test_bad_yaml_value_names_key(tmp_path: Path) -> None:
    path = tmp_path / "oms.yaml"
    path.write_text("reconcile:\n  min_interval_s: -1\n")
    with pytest.raises(ConfigError, match=r"reconcile\.min_interval_s"):
        load_config(path)


def test_yaml_syntax_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "oms.yaml"
    path.write_text("risk: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_config_file_named_when_explicit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "OMS_ADMIN_KEY"),
        ({"OMS_ADMIN_KEY": "k" * 20, "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"OMS_ADMIN_KEY": "k" * 20, "OMS_STRATEGY_KEYS": "KMP"}, "OMS_STRATEGY_KEYS"),
        ({"OMS_ADMIN_KEY": "k" * 20, "OMS_BROKER": "ib"}, "OMS_BROKER"),
    ],
)
def test_env_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str) -> None:
    for key in ("OMS_ADMIN_KEY", "DATABASE_URL", "OMS_STRATEGY_KEYS", "OMS_BROKER"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=needle):
        load_settings()


def test_trader_oms_refuses_to_start_without_admin_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "trader", "oms", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "OMS_ADMIN_KEY" in proc.stderr + proc.stdout
