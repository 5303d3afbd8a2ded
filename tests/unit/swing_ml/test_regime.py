"""S3.2 regime: HMM state ordering on real SPY data, filtered (no look-ahead) states, sector strength."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from strategies.swing_ml.data import SECTOR_ETFS
from strategies.swing_ml.regime import (
    HmmState,
    Regime,
    combine,
    filtered_probs,
    fit_hmm,
    hmm_observations,
    hmm_state_series,
    regime_on,
    sector_strength,
)


@pytest.fixture(scope="module")
def spy_obs(panel):
    return hmm_observations(panel.close["SPY"].dropna())


def test_observations_by_hand():
    close = pd.Series([100.0, 101.0, 99.0, 102.0], index=pd.bdate_range("2024-01-01", periods=4))
    obs = hmm_observations(close, vol_window=3)
    assert len(obs) == 1
    logs = [math.log(101 / 100), math.log(99 / 101), math.log(102 / 99)]
    assert obs["log_ret"].iloc[0] == pytest.approx(logs[-1])
    assert obs["rv_20"].iloc[0] == pytest.approx(float(np.std(logs, ddof=1)))


def test_states_ordered_by_mean_return_on_real_spy(spy_obs):
    fitted = fit_hmm(spy_obs.loc[:"2024-12-31"], random_state=0)
    by_label = dict(zip(fitted.labels, fitted.state_mean_return, strict=True))
    assert set(by_label) == {HmmState.BEAR, HmmState.NEUTRAL, HmmState.BULL}
    means = [by_label[HmmState.BEAR], by_label[HmmState.NEUTRAL], by_label[HmmState.BULL]]
    assert means == sorted(means) and means[0] < means[2]
    # deterministic: a refit gives the same model and labels
    again = fit_hmm(spy_obs.loc[:"2024-12-31"], random_state=0)
    assert again.labels == fitted.labels and np.allclose(again.model.means_, fitted.model.means_)
    # the bear state is the turbulent one: COVID crash and mid-2022 read BEAR
    states = hmm_state_series(fitted, spy_obs)
    assert states.loc["2020-03-16"] is HmmState.BEAR
    print(f"\nHMM state mean daily log returns (BEAR, NEUTRAL, BULL): {[f'{m:.5f}' for m in means]}")


def test_filtered_probs_do_not_look_ahead(spy_obs):
    obs = spy_obs.loc["2021-01-01":"2024-12-31"]
    fitted = fit_hmm(obs)
    full = filtered_probs(fitted, obs)
    t = pd.Timestamp("2023-06-30")
    cut = filtered_probs(fitted, obs.loc[:t])
    pd.testing.assert_frame_equal(full.loc[:t], cut)
    assert np.allclose(full.sum(axis=1), 1.0)


def test_sector_strength_by_hand():
    idx = pd.bdate_range("2024-01-01", periods=4)
    close = pd.DataFrame(
        {"XLK": [1, 2, 3, 4], "XLF": [4, 3, 2, 1], "XLE": [1, 1, 1, 5], "XLU": [np.nan, np.nan, 1, 2]},
        index=idx,
        dtype=float,
    )
    st = sector_strength(close, ("XLK", "XLF", "XLE", "XLU"), window=3)
    assert st.iloc[:2].isna().all()
    assert st.iloc[2] == pytest.approx(1 / 3)  # XLK above its SMA3 (3 > 2); XLF, XLE not; XLU too short
    assert st.iloc[3] == pytest.approx(2 / 3)  # XLK 4 > 3, XLE 5 > 7/3, XLF 1 < 2


def test_combine_rules():
    assert combine(HmmState.BULL, 0.5) is Regime.RISK_ON
    assert combine(HmmState.BULL, 0.49) is Regime.NEUTRAL
    assert combine(HmmState.BULL, 0.29) is Regime.RISK_OFF
    assert combine(HmmState.NEUTRAL, 0.9) is Regime.NEUTRAL
    assert combine(HmmState.NEUTRAL, 0.3) is Regime.NEUTRAL
    assert combine(HmmState.BEAR, 1.0) is Regime.RISK_OFF


def test_regime_job_on_real_data(panel):
    sub = panel.select(["SPY", *SECTOR_ETFS])
    crash = regime_on(sub, "2020-03-20")
    assert crash.hmm_state is HmmState.BEAR and crash.regime is Regime.RISK_OFF and crash.vote == -1
    reading = regime_on(sub, "2024-12-31")
    assert 0.0 <= reading.strength <= 1.0
    assert reading.regime in set(Regime)
    assert reading.regime is combine(reading.hmm_state, reading.strength)
