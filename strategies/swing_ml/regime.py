"""S3.2: market regime = 3-state Gaussian HMM on SPY + sector strength.

* Observations per session: SPY daily log return and its 20-day realised vol (sample std, ddof 1, of
  the last 20 log returns). **[interpreted]** both are standardised with the training sample's mean
  and std before fitting: hmmlearn adds ``min_covar`` = 1e-3 to every variance, which would swamp raw
  daily returns (variance ≈ 1e-4).
* :func:`fit_hmm`: ``GaussianHMM(3, "full")`` with a fixed ``random_state`` (deterministic); states are
  named by their mean return, ascending → BEAR, NEUTRAL, BULL.
* The state *today* is the argmax of the **filtered** probabilities (forward pass over the data up to
  today, :func:`filtered_probs`): no look-ahead, also when a whole history is labelled.
* Sector strength = share of the sector ETFs (with 50 sessions of history) whose close is above
  their SMA50. RISK_ON = BULL ∧ strength ≥ 50 %; RISK_OFF = BEAR ∨ strength < 30 %; else NEUTRAL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from scipy.stats import multivariate_normal

from strategies.swing_ml.data import BENCHMARK, SECTOR_ETFS, Panel


class HmmState(StrEnum):
    BEAR = "BEAR"
    NEUTRAL = "NEUTRAL"
    BULL = "BULL"


class Regime(StrEnum):
    RISK_ON = "RISK_ON"
    NEUTRAL = "NEUTRAL"
    RISK_OFF = "RISK_OFF"


REGIME_VOTE: dict[Regime, int] = {Regime.RISK_ON: 1, Regime.NEUTRAL: 0, Regime.RISK_OFF: -1}
"""S3.5: the regime's vote in the synthesizer."""

HMM_FEATURES = ("log_ret", "rv_20")


def hmm_observations(spy_close: pd.Series, vol_window: int = 20) -> pd.DataFrame:
    """``log_ret`` and ``rv_20`` per session (rows with both defined)."""
    r = np.log(spy_close / spy_close.shift(1))
    rv = r.rolling(vol_window, min_periods=vol_window).std(ddof=1)
    return pd.DataFrame({"log_ret": r, "rv_20": rv}).dropna()


@dataclass(frozen=True)
class FittedHmm:
    model: GaussianHMM
    mean: np.ndarray
    """Training mean of the observations (standardisation)."""
    std: np.ndarray
    labels: tuple[HmmState, ...]
    """labels[k] = the name of hidden state k."""
    state_mean_return: tuple[float, ...]
    """Mean daily log return of hidden state k, in original units."""
    train_start: date
    train_end: date

    def standardise(self, obs: pd.DataFrame) -> np.ndarray:
        return (obs[list(HMM_FEATURES)].to_numpy(dtype=float) - self.mean) / self.std


def fit_hmm(obs: pd.DataFrame, random_state: int = 0, n_iter: int = 200, n_states: int = 3) -> FittedHmm:
    """Fit on the observations' rows (all of them: slice before calling); deterministic."""
    if n_states != 3:
        raise ValueError("the regime has exactly three states (BEAR/NEUTRAL/BULL)")
    x = obs[list(HMM_FEATURES)].to_numpy(dtype=float)
    if len(x) < 100:
        raise ValueError(f"too few observations to fit the HMM: {len(x)} < 100")
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=0)
    model = GaussianHMM(n_components=n_states, covariance_type="full", n_iter=n_iter, random_state=random_state)
    model.fit((x - mean) / std)
    ret_means = model.means_[:, 0] * std[0] + mean[0]
    order = np.argsort(ret_means, kind="stable")
    labels: list[HmmState] = [HmmState.NEUTRAL] * n_states
    for rank, k in enumerate(order.tolist()):
        labels[k] = (HmmState.BEAR, HmmState.NEUTRAL, HmmState.BULL)[rank]
    idx = pd.DatetimeIndex(obs.index)
    return FittedHmm(
        model,
        mean,
        std,
        tuple(labels),
        tuple(float(v) for v in ret_means),
        idx[0].date(),
        idx[-1].date(),
    )


def filtered_probs(fitted: FittedHmm, obs: pd.DataFrame) -> pd.DataFrame:
    """P(state_t | observations ≤ t) per row (forward algorithm, normalised each step); columns are
    the state names."""
    x = fitted.standardise(obs)
    m = fitted.model
    k = m.n_components
    loglik = np.column_stack(
        [multivariate_normal(mean=m.means_[j], cov=m.covars_[j], allow_singular=True).logpdf(x) for j in range(k)]
    ).reshape(len(x), k)
    out = np.empty((len(x), k))
    prev: np.ndarray | None = None
    for t in range(len(x)):
        prior = m.startprob_ if prev is None else prev @ m.transmat_
        logp = np.log(np.maximum(prior, 1e-300)) + loglik[t]
        p = np.exp(logp - logp.max())
        prev = p / p.sum()
        out[t] = prev
    return pd.DataFrame(out, index=obs.index, columns=[str(s) for s in fitted.labels])


def hmm_state_series(fitted: FittedHmm, obs: pd.DataFrame) -> pd.Series:
    """The filtered state name per row."""
    probs = filtered_probs(fitted, obs)
    names = [HmmState(str(v)) for v in probs.idxmax(axis=1)]
    return pd.Series(names, index=probs.index, dtype=object, name="hmm_state")


def sector_strength(close: pd.DataFrame, etfs: Sequence[str] = SECTOR_ETFS, window: int = 50) -> pd.Series:
    """Per date: share of ``etfs`` (those with ``window`` sessions of history) whose close > SMA."""
    cols = [e for e in etfs if e in close.columns]
    c = close[cols]
    sma = c.rolling(window, min_periods=window).mean()
    valid = sma.notna() & c.notna()
    above = (c > sma) & valid
    n = valid.sum(axis=1)
    return (above.sum(axis=1) / n.where(n > 0)).rename("sector_strength")


def combine(state: HmmState, strength: float, on_min: float = 0.5, off_below: float = 0.3) -> Regime:
    """RISK_ON = BULL ∧ strength ≥ on_min; RISK_OFF = BEAR ∨ strength < off_below; else NEUTRAL."""
    if state is HmmState.BEAR or strength < off_below:
        return Regime.RISK_OFF
    if state is HmmState.BULL and strength >= on_min:
        return Regime.RISK_ON
    return Regime.NEUTRAL


@dataclass(frozen=True)
class RegimeReading:
    day: date
    hmm_state: HmmState
    probs: dict[str, float]
    strength: float
    regime: Regime

    @property
    def vote(self) -> int:
        return REGIME_VOTE[self.regime]

    def fields(self) -> dict[str, object]:
        return {
            "day": self.day.isoformat(),
            "hmm_state": str(self.hmm_state),
            "hmm_probs": {k: round(v, 4) for k, v in self.probs.items()},
            "sector_strength": round(self.strength, 4),
            "regime": str(self.regime),
        }


def regime_on(
    panel: Panel,
    day: date | pd.Timestamp,
    *,
    lookback_sessions: int = 2520,
    vol_window: int = 20,
    sma_window: int = 50,
    on_min: float = 0.5,
    off_below: float = 0.3,
    random_state: int = 0,
    benchmark: str = BENCHMARK,
    etfs: Sequence[str] = SECTOR_ETFS,
) -> RegimeReading:
    """The regime job: fit the HMM on the last ``lookback_sessions`` sessions ≤ ``day``, read the
    filtered state of ``day`` and the sector strength of ``day``."""
    ts = pd.Timestamp(day)
    known = panel.until(ts)
    obs = hmm_observations(known.close[benchmark].dropna(), vol_window).iloc[-lookback_sessions:]
    if len(obs) == 0 or pd.Timestamp(obs.index[-1]) != ts:
        raise ValueError(f"no {benchmark} observation on {ts.date()}")
    fitted = fit_hmm(obs, random_state=random_state)
    probs = filtered_probs(fitted, obs).iloc[-1]
    state = HmmState(str(probs.idxmax()))
    strength = float(sector_strength(known.close, etfs, sma_window).loc[ts])
    if not np.isfinite(strength):
        raise ValueError(f"no sector strength on {ts.date()} (fewer than {sma_window} sessions of ETF history)")
    regime = combine(state, strength, on_min, off_below)
    return RegimeReading(ts.date(), state, {str(k): float(v) for k, v in probs.items()}, strength, regime)
