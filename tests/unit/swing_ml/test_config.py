"""swing-ML configuration: spec defaults, explicit mode, strict keys naming file and key."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from broker_core.config_errors import ConfigError
from strategies.sdk.config import CONFIG_DIR_ENV
from strategies.swing_ml.config import DEFAULT_CONFIG_YAML, Mode, SwingMlConfig, load_swing_ml_config
from strategies.swing_ml.factors import FEATURES
from strategies.swing_ml.universe import DEFAULT_SECTOR_MAP, DEFAULT_UNIVERSE


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "swing_ml.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_spec():
    c = SwingMlConfig(mode=Mode.DRY_RUN)
    d, r, s, m, g = c.decide, c.risk, c.sizing, c.model, c.regime
    assert (d.quant_weight, d.regime_weight, d.extras_weight) == (0.6, 0.25, 0.15)
    assert (d.buy_score_min, d.sell_score_max, d.max_positions, d.max_hold_days, d.limit_band_pct) == (
        0.4,
        -0.2,
        10,
        10,
        0.002,
    )
    assert (r.take_profit_pct, r.stop_loss_pct, r.trail_arm_pct, r.trail_drop_pct, r.atr_dynamic) == (
        0.04,
        0.025,
        0.02,
        0.015,
        False,
    )
    assert (r.atr_take_profit_mult, r.atr_stop_mult, r.atr_trail_mult, r.atr_period) == (2.5, 1.5, 1.5, 14)
    assert (s.kelly_fraction, s.max_position_pct) == (0.5, 0.10)
    assert (m.train_months, m.promote_min_auc, m.promote_max_drop, m.keep_versions, m.purge_days) == (
        18,
        0.52,
        0.01,
        8,
        5,
    )
    assert (g.risk_on_strength_min, g.risk_off_strength_below, g.sma_window, g.vol_window) == (0.5, 0.3, 50, 20)
    assert len(g.sector_etfs) == 11 and g.benchmark == "SPY"
    assert len(c.universe.symbols) == 97 and c.universe.symbols == DEFAULT_UNIVERSE
    assert set(DEFAULT_SECTOR_MAP.values()) <= set(g.sector_etfs)
    assert (c.schedule.decide_start, c.schedule.decide_end, c.schedule.risk_check_start) == (
        time(9, 45),
        time(15, 45),
        time(9, 35),
    )
    assert len(FEATURES) == 13


def test_default_sector_map_matches_the_reference_data(us_data):
    ref = {s: e for s, e in us_data.sector_map().items() if s != e}
    assert ref == DEFAULT_SECTOR_MAP


def test_shipped_text_loads_as_the_defaults_in_dry_run(tmp_path):
    cfg = load_swing_ml_config(_write(tmp_path, DEFAULT_CONFIG_YAML))
    assert cfg == SwingMlConfig(mode=Mode.DRY_RUN)
    assert cfg.mode is Mode.DRY_RUN and not cfg.sends_intents


def test_loader_reads_config_dir(tmp_path, monkeypatch):
    _write(tmp_path, "mode: paper\n")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    cfg = load_swing_ml_config()
    assert cfg.mode is Mode.PAPER and cfg.sends_intents


def test_mode_is_required(tmp_path):
    path = _write(tmp_path, "decide:\n  max_positions: 8\n")
    with pytest.raises(ConfigError) as err:
        load_swing_ml_config(path)
    assert str(path) in str(err.value) and "mode: Field required" in str(err.value)
    with pytest.raises(ConfigError, match="mode"):
        load_swing_ml_config(_write(tmp_path, "mode: LIVE\n"))


def test_unknown_keys_name_file_and_key(tmp_path):
    path = _write(tmp_path, "mode: dry_run\nrisk:\n  take_proft_pct: 0.05\n")
    with pytest.raises(ConfigError) as err:
        load_swing_ml_config(path)
    assert str(path) in str(err.value) and "risk.take_proft_pct: unknown key" in str(err.value)
    with pytest.raises(ConfigError, match=r"colour: unknown key"):
        load_swing_ml_config(_write(tmp_path, "mode: dry_run\ncolour: red\n"))


def test_inconsistent_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="purge_days"):
        load_swing_ml_config(_write(tmp_path, "mode: dry_run\nmodel:\n  purge_days: 3\n"))
    with pytest.raises(ConfigError, match="sector"):
        load_swing_ml_config(_write(tmp_path, "mode: dry_run\nuniverse:\n  symbols: [AAPL, ZZZZ]\n"))
    with pytest.raises(ConfigError, match="quoted"):
        load_swing_ml_config(_write(tmp_path, "mode: dry_run\nschedule:\n  regime_at: 9:00\n"))
