"""Runner: registry lookup and configuration errors (the happy path runs in tests/integration/sdk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_core.config_errors import ConfigError
from strategies.sdk.runner import config_model, resolve, run_strategy

PKG = "tests.unit.sdk.fixtures"


def test_unknown_strategy_is_named_with_the_available_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown strategy 'nope': no module tests.unit.sdk.fixtures.nope.strategy "
        r"\(available: demo, nobuild\)",
    ):
        resolve("nope", PKG)
    with pytest.raises(ConfigError, match="lower-case"):
        resolve("../etc", PKG)


def test_module_without_build_is_refused() -> None:
    with pytest.raises(ConfigError, match="no build"):
        resolve("nobuild", PKG)


def test_config_model_from_the_build_annotation() -> None:
    assert config_model(resolve("demo", PKG)).__name__ == "DemoConfig"


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "demo.yaml").write_text("symbols: ['005930']\n")
    monkeypatch.setenv("TRADER_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("OMS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OMS_API_KEY", "k")
    monkeypatch.delenv("TRADER_CLOCK", raising=False)
    return tmp_path


def test_missing_api_key_is_named(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMS_API_KEY")
    with pytest.raises(ConfigError, match="OMS_API_KEY: not set"):
        run_strategy("demo", package=PKG)


def test_bad_clock_spec_is_a_config_error(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADER_CLOCK", "sim speed=60")
    with pytest.raises(ConfigError, match="TRADER_CLOCK"):
        run_strategy("demo", package=PKG)


def test_bad_config_names_file_and_key(demo_env: Path) -> None:
    (demo_env / "demo.yaml").write_text("symbols: 5\nextra: 1\n")
    with pytest.raises(ConfigError, match=r"demo.yaml: symbols: Input should be a valid list") as info:
        run_strategy("demo", package=PKG)
    assert "demo.yaml: extra: unknown key" in str(info.value)
