"""KPR configuration: spec defaults (§2.1), config/kpr.yaml, strict validation naming file and key."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from broker_core.config_errors import ConfigError
from strategies.kpr.config import KprConfig, KprParams, ProgramMode, load_kpr_config
from strategies.sdk.config import PROJECT_ROOT


def test_defaults_are_the_spec_table():
    p = KprParams()
    assert (p.panic_drop_min, p.panic_max_minutes, p.drift_drop_min, p.drift_min_minutes) == (0.03, 15, 0.02, 60)
    assert (p.depth_min, p.depth_max, p.reclaim_offset, p.stop_offset) == (0.02, 0.05, 0.003, 0.003)
    assert p.base_closes == 2 and p.max_per_sector == 2 and p.base_risk_pct == 0.005
    assert [(w.start, w.end) for w in p.entry_windows] == [(time(9, 30), time(11, 20)), (time(13, 10), time(14, 30))]
    assert [b.mult for b in p.tod_bands] == [1.0, 0.8, 0.9, 0.5]
    assert (p.partial_r, p.partial_frac, p.time_stop_min, p.flatten_time) == (1.5, 0.5, 45, time(15, 15))
    assert (p.target_r_high, p.target_r_normal, p.target_r_low) == (2.5, 2.0, 1.5)
    assert (p.stale_sec, p.stale_micro_sec, p.warm_poll_sec, p.warm_poll_micro_sec, p.cold_poll_sec) == (
        120,
        30,
        30,
        15,
        180,
    )
    assert (p.hot_max, p.warm_max, p.invalidation_on, p.program_mode) == (20, 30, "low", ProgramMode.AUTO)
    assert (p.program_unavailable_adder, p.flow_reduce, p.adaptive_targets) == (False, False, True)
    assert p.micro_window_starts == (time(9, 30), time(10, 0), time(11, 30), time(13, 0), time(14, 30))


def test_shipped_yaml_loads_and_equals_the_defaults():
    assert load_kpr_config() == KprConfig()
    assert (PROJECT_ROOT / "config" / "kpr.yaml").is_file()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kpr.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_file_and_key(tmp_path):
    path = _write(tmp_path, "params:\n  hot_maxx: 12\n")
    with pytest.raises(ConfigError) as err:
        load_kpr_config(path)
    assert str(path) in str(err.value) and "params.hot_maxx: unknown key" in str(err.value)


def test_unknown_nested_key_in_a_window_is_named(tmp_path):
    path = _write(tmp_path, 'params:\n  entry_windows:\n    - {start: "09:30", end: "11:20", stop: "x"}\n')
    with pytest.raises(ConfigError, match=r"params\.entry_windows\.0\.stop: unknown key"):
        load_kpr_config(path)


def test_unquoted_time_is_refused(tmp_path):
    path = _write(tmp_path, "params:\n  flatten_time: 15:15\n")
    with pytest.raises(ConfigError, match=r"params\.flatten_time: .*quoted"):
        load_kpr_config(path)


def test_bad_enum_and_inconsistent_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"params\.invalidation_on"):
        load_kpr_config(_write(tmp_path, "params:\n  invalidation_on: high\n"))
    with pytest.raises(ConfigError, match=r"params\.program_mode"):
        load_kpr_config(_write(tmp_path, "params:\n  program_mode: SOMETIMES\n"))
    with pytest.raises(ConfigError, match="depth_min must be below depth_max"):
        load_kpr_config(_write(tmp_path, "params:\n  depth_min: 0.06\n"))
    with pytest.raises(ConfigError, match="start must be before end"):
        load_kpr_config(_write(tmp_path, 'params:\n  entry_windows: [{start: "11:20", end: "09:30"}]\n'))


def test_yaml_overrides_apply(tmp_path):
    cfg = load_kpr_config(
        _write(
            tmp_path,
            'params:\n  hot_max: 12\n  invalidation_on: close\n  flatten_time: "15:10"\n'
            "universe:\n  symbols: ['005930']\n  market_overrides: {'005930': KOSPI}\n",
        )
    )
    assert (cfg.params.hot_max, cfg.params.invalidation_on, cfg.params.flatten_time) == (12, "close", time(15, 10))
    assert cfg.universe.symbols == ["005930"]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_kpr_config(tmp_path / "nope.yaml")
