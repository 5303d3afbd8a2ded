"""Strategy config loading: errors name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_core.config_errors import ConfigError
from strategies.sdk.config import PROJECT_ROOT, StrictModel, display_path, load_strategy_config


class Params(StrictModel):
    or_minutes: int = 15
    surge_min: float = 3.0


class KmpConfig(StrictModel):
    enabled: bool = True
    params: Params = Params()


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "kmp.yaml"
    p.write_text(text)
    return p


def test_valid_file_loads(tmp_path: Path) -> None:
    cfg = load_strategy_config("kmp", KmpConfig, write(tmp_path, "params:\n  or_minutes: 10\n"))
    assert cfg.params.or_minutes == 10 and cfg.params.surge_min == 3.0


def test_bad_value_names_file_and_key(tmp_path: Path) -> None:
    p = write(tmp_path, "params:\n  or_minutes: fifteen\n")
    with pytest.raises(ConfigError) as info:
        load_strategy_config("kmp", KmpConfig, p)
    assert str(info.value).startswith(f"{p}: params.or_minutes: Input should be a valid integer")


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kmp.yaml: params.or_minute: unknown key"):
        load_strategy_config("kmp", KmpConfig, write(tmp_path, "params:\n  or_minute: 10\n"))


def test_missing_invalid_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_strategy_config("kmp", KmpConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_strategy_config("kmp", KmpConfig, write(tmp_path, "params: [\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_strategy_config("kmp", KmpConfig, write(tmp_path, "- 1\n- 2\n"))
    assert load_strategy_config("kmp", KmpConfig, write(tmp_path, "")) == KmpConfig()


def test_default_location_and_project_relative_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert display_path(PROJECT_ROOT / "config" / "kmp.yaml") == "config/kmp.yaml"
    monkeypatch.setenv("TRADER_CONFIG_DIR", str(tmp_path))
    write(tmp_path, "enabled: false\n")
    assert load_strategy_config("kmp", KmpConfig).enabled is False
