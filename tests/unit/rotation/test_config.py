"""config/rotation.yaml: the spec's table as defaults, strict validation naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_core.config_errors import ConfigError
from strategies.rotation.config import RotationConfig, default_models, load_rotation_config
from strategies.rotation.models import MODEL_NAMES
from strategies.sdk.config import PROJECT_ROOT


def test_shipped_yaml_equals_the_defaults():
    assert (PROJECT_ROOT / "config" / "rotation.yaml").is_file()
    assert load_rotation_config() == RotationConfig()


def test_defaults_are_the_spec_table():
    m = default_models()
    assert tuple(m) == MODEL_NAMES
    row = {n: (p.active, p.bull.period, p.bull.top_n, p.bull.min_momentum, p.bull.leverage) for n, p in m.items()}
    assert row == {
        "rotation_core": ("always", 126, 3, 0.0, 1.0),
        "rotation_bull": ("bull", 80, 4, 0.03, 1.3),
        "rotation_bear": ("bear", 126, 2, 0.10, 1.0),
        "rotation_adaptive": ("always", 138, 4, 0.0, 1.86),
    }
    a = m["rotation_adaptive"]
    assert (a.bear.period, a.bear.top_n, a.bear.leverage, a.regime_symbol) == (175, 3, 2.0, "XLK")
    assert a.vol_scaling is not None and (a.vol_scaling.target, a.vol_scaling.floor, a.vol_scaling.cap) == (
        0.15,
        0.2,
        1.5,
    )
    assert a.early_exit is not None and (a.early_exit.take_profit_atr, a.early_exit.stop_atr) == (3.75, 1.46)
    o = RotationConfig().orders
    assert (o.symbol_cap, o.gross_cap, o.min_position_usd, o.min_delta_frac) == (0.40, 1.25, 100, 0.01)


def test_unknown_key_names_the_file_and_key(tmp_path: Path):
    p = tmp_path / "rotation.yaml"
    p.write_text("orders:\n  gross_cap: 1.0\n  symbol_capp: 0.3\n")
    with pytest.raises(ConfigError, match=r"rotation\.yaml: orders\.symbol_capp"):
        load_rotation_config(p)


def test_invalid_values_are_refused(tmp_path: Path):
    p = tmp_path / "rotation.yaml"
    p.write_text("defensive: XLK\n")
    with pytest.raises(ConfigError, match="defensive asset must not be a universe member"):
        load_rotation_config(p)
    p.write_text(
        "models:\n  Rotation-X: {bull: {period: 5, top_n: 1, min_momentum: 0, leverage: 1},\n"
        "               bear: {period: 5, top_n: 1, min_momentum: 0, leverage: 1}}\n"
    )
    with pytest.raises(ConfigError, match="model name"):
        load_rotation_config(p)


def test_an_unknown_model_name_is_refused_naming_the_known_ones():
    with pytest.raises(KeyError, match="rotation_core"):
        RotationConfig().model("rotation_turbo")
