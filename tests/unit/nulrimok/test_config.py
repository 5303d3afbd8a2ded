"""config/nulrimok.yaml: the spec's defaults, every parameter listed, strict validation naming file and key."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
import yaml

from broker_core.config_errors import ConfigError
from strategies.nulrimok.config import (
    DATA_DIR_ENV,
    LrsConfig,
    NulrimokConfig,
    NulrimokConfigError,
    NulrimokParams,
    load_nulrimok_config,
)
from strategies.nulrimok.strategy import CONFIG_MODEL
from strategies.sdk.config import PROJECT_ROOT, load_strategy_config

SHIPPED = PROJECT_ROOT / "config" / "nulrimok.yaml"


def test_shipped_yaml_is_the_spec_defaults_and_lists_every_parameter() -> None:
    cfg = load_nulrimok_config(SHIPPED)
    assert cfg == NulrimokConfig()
    data = yaml.safe_load(SHIPPED.read_text())
    assert set(data["params"]) == set(NulrimokParams.model_fields)
    assert set(data["lrs"]) == set(LrsConfig.model_fields)
    assert CONFIG_MODEL is NulrimokConfig
    assert load_strategy_config("nulrimok", CONFIG_MODEL) == cfg  # what `trader strategy nulrimok` loads


def test_defaults_are_the_spec_numbers() -> None:
    p = NulrimokParams()
    assert (p.dse_time, p.entry_start, p.entry_end, p.time_stop_time) == (time(8), time(10), time(15, 10), time(15, 10))
    assert (p.w_price, p.w_breadth, p.w_vol, p.w_fx, p.tier_a_above, p.tier_b_from) == (
        0.25,
        0.30,
        0.25,
        0.20,
        0.65,
        0.40,
    )
    assert (p.persistence_min, p.flow_w_persistence, p.flow_w_intensity, p.flow_w_accel) == (0.6, 0.40, 0.35, 0.25)
    assert (p.leader_pct_a, p.leader_pct_b, p.tradable_frac_a, p.tradable_frac_b) == (0.60, 0.70, 0.30, 0.20)
    assert (p.trigger_vol_frac, p.confirm_upper_mult, p.disarm_mult, p.bonus_vol_frac) == (0.60, 1.003, 0.998, 0.40)
    assert (p.base_risk_pct, p.daily_risk_budget_pct, p.sector_risk_frac, p.min_size_frac) == (0.005, 0.03, 0.35, 0.30)
    assert (p.avwap_break_mult, p.avwap_break_vol_mult, p.failed_min_pnl) == (0.993, 1.5, 0.01)
    assert p.refresh_times == [time(11, 30), time(13, 0), time(14, 30)]


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "nulrimok.yaml"
    f.write_text(text)
    return f


def test_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    f = _write(tmp_path, "params:\n  trigger_volume_frac: 0.5\n")
    with pytest.raises(NulrimokConfigError) as e:
        load_nulrimok_config(f)
    assert "nulrimok.yaml" in str(e.value) and "params.trigger_volume_frac: unknown key" in str(e.value)
    assert isinstance(e.value, ConfigError)  # the trader command prints it and exits 2


def test_unknown_top_level_and_nested_sections(tmp_path: Path) -> None:
    with pytest.raises(NulrimokConfigError, match=r"lrs\.dbfile: unknown key"):
        load_nulrimok_config(_write(tmp_path, "lrs:\n  dbfile: x.sqlite\n"))
    with pytest.raises(NulrimokConfigError, match=r"extras: unknown key"):
        load_nulrimok_config(_write(tmp_path, "extras: 1\n"))


def test_unquoted_time_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NulrimokConfigError, match=r"params\.entry_start: .*quoted"):
        load_nulrimok_config(_write(tmp_path, "params:\n  entry_start: 10:00\n"))
    with pytest.raises(NulrimokConfigError, match=r"params\.refresh_times"):
        load_nulrimok_config(_write(tmp_path, "params:\n  refresh_times: [11:30]\n"))


def test_inconsistent_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NulrimokConfigError, match="entry_start < entry_end"):
        load_nulrimok_config(_write(tmp_path, 'params:\n  entry_end: "09:59"\n'))
    with pytest.raises(NulrimokConfigError, match="tier_b_from"):
        load_nulrimok_config(_write(tmp_path, "params:\n  tier_b_from: 0.7\n"))
    with pytest.raises(NulrimokConfigError, match=r"params\.persistence_min"):
        load_nulrimok_config(_write(tmp_path, "params:\n  persistence_min: 1.5\n"))
    with pytest.raises(NulrimokConfigError, match=r"lrs\.progress"):
        load_nulrimok_config(_write(tmp_path, "lrs:\n  progress: fancy\n"))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(NulrimokConfigError, match="not found"):
        load_nulrimok_config(tmp_path / "absent.yaml")


def test_data_dir_from_config_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "vol"))
    assert NulrimokConfig().data_dir() == tmp_path / "vol"
    cfg = NulrimokConfig.model_validate({"lrs": {"data_dir": str(tmp_path / "own")}})
    assert cfg.data_dir() == tmp_path / "own"
    assert cfg.file_path("/abs/x.csv") == Path("/abs/x.csv")
    assert cfg.file_path("x.csv") == PROJECT_ROOT / "config" / "x.csv"
