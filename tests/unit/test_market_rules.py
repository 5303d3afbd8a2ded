"""KRX tick table, grid rounding/stepping, ±30% limits, marketable limits and session phases.

The expected values come from an independent reference built in this file: the full list of grid
prices is enumerated band by band from the spec table (strategies.md §0.4 B1, kis.md §7), and
rounding/stepping are answered by bisecting that list with exact ``Decimal`` arithmetic.
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from broker_core import market_rules as mr
from broker_core.clock import KST
from broker_core.market_rules import SessionPhase

# --------------------------------------------------------------------------- reference

# (lower bound inclusive, upper bound exclusive, tick) straight from the spec table.
SPEC_BANDS = [
    (1, 2_000, 1),
    (2_000, 5_000, 5),
    (5_000, 20_000, 10),
    (20_000, 50_000, 50),
    (50_000, 200_000, 100),
    (200_000, 500_000, 500),
    (500_000, 5_000_000, 1_000),
]
REF_MAX = 5_000_000


def _build_grid() -> list[int]:
    grid: list[int] = []
    for lo, hi, tick in SPEC_BANDS:
        grid.extend(range(lo, hi, tick))
    grid.append(REF_MAX)
    return grid


GRID = _build_grid()
GRID_SET = set(GRID)


def ref_tick(price: int) -> int:
    for lo, hi, tick in SPEC_BANDS:
        if lo <= price < hi:
            return tick
    return 1_000


def ref_round_down(x: Decimal | int) -> int:
    """Largest grid price ≤ x."""
    i = bisect.bisect_right(GRID, Decimal(x))
    return GRID[i - 1]


def ref_round_up(x: Decimal | int) -> int:
    """Smallest grid price ≥ x."""
    i = bisect.bisect_left(GRID, Decimal(x))
    return GRID[i]


def ref_up(p: int, n: int = 1) -> int:
    return GRID[GRID.index(p) + n]


def ref_down(p: int, n: int = 1) -> int:
    return GRID[GRID.index(p) - n]


def ref_limits(base: int) -> tuple[int, int]:
    lo = Decimal(base) * Decimal("0.7")
    hi = Decimal(base) * Decimal("1.3")
    return ref_round_up(lo), ref_round_down(hi)


def test_reference_grid_sanity() -> None:
    # the reference itself agrees with the spec's literal examples
    assert ref_round_up(4996) == 5000 and ref_round_down(50049) == 50000
    assert ref_down(5000) == 4995 and ref_up(19990) == 20000
    assert ref_limits(56_200) == (39_350, 73_000)


# --------------------------------------------------------------------------- tick_size

EDGES = [2_000, 5_000, 20_000, 50_000, 200_000, 500_000]


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        (1, 1),
        (999, 1),
        (1_999, 1),
        (2_000, 5),
        (3_500, 5),
        (4_999, 5),
        (5_000, 10),
        (12_340, 10),
        (19_999, 10),
        (20_000, 50),
        (33_350, 50),
        (49_999, 50),
        (50_000, 100),
        (123_400, 100),
        (199_999, 100),
        (200_000, 500),
        (350_500, 500),
        (499_999, 500),
        (500_000, 1_000),
        (1_234_000, 1_000),
        (9_999_000, 1_000),
    ],
)
def test_tick_size_table(price: int, tick: int) -> None:
    assert mr.tick_size(price) == tick
    assert mr.tick_size(float(price)) == tick


@pytest.mark.parametrize("edge", EDGES)
def test_tick_size_changes_exactly_at_band_edge(edge: int) -> None:
    assert mr.tick_size(edge - 1) == ref_tick(edge - 1)
    assert mr.tick_size(edge) == ref_tick(edge)
    assert mr.tick_size(edge) > mr.tick_size(edge - 1)
    # a fractional price just under the edge still belongs to the lower band
    assert mr.tick_size(edge - 0.5) == ref_tick(edge - 1)


def test_tick_size_matches_reference_everywhere_on_a_sweep() -> None:
    for p in list(range(1, 60_000, 7)) + list(range(60_000, 1_200_000, 997)):
        assert mr.tick_size(p) == ref_tick(p), p


# --------------------------------------------------------------------------- is_on_tick


@pytest.mark.parametrize(
    ("price", "on"),
    [
        (1_999, True),
        (2_000, True),
        (2_001, False),
        (2_003, False),
        (2_005, True),
        (4_995, True),
        (4_999, False),
        (5_000, True),
        (5_005, False),
        (5_010, True),
        (19_990, True),
        (19_995, False),
        (20_000, True),
        (20_010, False),
        (20_050, True),
        (49_950, True),
        (49_990, False),
        (50_000, True),
        (50_050, False),
        (50_100, True),
        (199_900, True),
        (199_950, False),
        (200_000, True),
        (200_100, False),
        (200_500, True),
        (499_500, True),
        (499_900, False),
        (500_000, True),
        (500_500, False),
        (501_000, True),
        (1_234, True),
        (1_234.5, False),
        (0, False),
        (-5, False),
    ],
)
def test_is_on_tick(price: float, on: bool) -> None:
    assert mr.is_on_tick(price) is on


def test_is_on_tick_matches_reference_grid() -> None:
    for p in range(1, 60_000):
        assert mr.is_on_tick(p) is (p in GRID_SET), p
    for p in range(190_000, 520_000, 50):
        assert mr.is_on_tick(p) is (p in GRID_SET), p


def test_is_on_tick_tolerates_float_noise() -> None:
    assert mr.is_on_tick(1600 * 1.3)  # 2080.0000000000002
    assert mr.is_on_tick(0.1 * 3 * 10_000)  # 3000.0000000000005


# --------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(
    ("price", "down", "up", "nearest"),
    [
        (1_999, 1_999, 1_999, 1_999),
        (1_999.4, 1_999, 2_000, 1_999),
        (1_999.6, 1_999, 2_000, 2_000),
        (4_999.5, 4_995, 5_000, 5_000),
        (2_001, 2_000, 2_005, 2_000),
        (2_003, 2_000, 2_005, 2_005),
        (4_996, 4_995, 5_000, 4_995),
        (4_998, 4_995, 5_000, 5_000),
        (4_999, 4_995, 5_000, 5_000),
        (5_001, 5_000, 5_010, 5_000),
        (5_004, 5_000, 5_010, 5_000),
        (5_006, 5_000, 5_010, 5_010),
        (19_991, 19_990, 20_000, 19_990),
        (19_996, 19_990, 20_000, 20_000),
        (20_001, 20_000, 20_050, 20_000),
        (20_030, 20_000, 20_050, 20_050),
        (49_951, 49_950, 50_000, 49_950),
        (49_999, 49_950, 50_000, 50_000),
        (50_049, 50_000, 50_100, 50_000),
        (50_051, 50_000, 50_100, 50_100),
        (199_901, 199_900, 200_000, 199_900),
        (199_990, 199_900, 200_000, 200_000),
        (200_001, 200_000, 200_500, 200_000),
        (200_300, 200_000, 200_500, 200_500),
        (499_501, 499_500, 500_000, 499_500),
        (499_999, 499_500, 500_000, 500_000),
        (500_001, 500_000, 501_000, 500_000),
        (500_600, 500_000, 501_000, 501_000),
    ],
)
def test_round_around_edges(price: float, down: int, up: int, nearest: int) -> None:
    assert mr.round_down(price) == down
    assert mr.round_up(price) == up
    assert mr.round_to_tick(price) == nearest


def test_brief_examples() -> None:
    assert mr.round_up(4_996) == 5_000
    assert mr.round_up(19_991) == 20_000
    assert mr.round_down(50_049) == 50_000


def test_grid_prices_are_fixed_points() -> None:
    for p in GRID[::3]:
        if p > 3_000_000:
            break
        assert mr.round_down(p) == p
        assert mr.round_up(p) == p
        assert mr.round_to_tick(p) == p


def test_rounding_matches_reference_for_every_integer_near_edges() -> None:
    for edge in EDGES:
        for p in range(max(1, edge - 3 * ref_tick(edge)), edge + 3 * ref_tick(edge) + 1):
            assert mr.round_down(p) == ref_round_down(p), p
            assert mr.round_up(p) == ref_round_up(p), p
            lo, hi = ref_round_down(p), ref_round_up(p)
            if p - lo != hi - p:
                assert mr.round_to_tick(p) == (lo if p - lo < hi - p else hi), p


def test_rounding_matches_reference_on_fractional_prices() -> None:
    for p10 in range(19_000, 60_000, 13):  # 1,900.0 .. 5,999.9 step 1.3
        x = Decimal(p10) / 10
        assert mr.round_down(float(x)) == ref_round_down(x), x
        assert mr.round_up(float(x)) == ref_round_up(x), x


def test_rounding_absorbs_float_noise() -> None:
    # 1600 * 1.3 == 2080.0000000000002 and 0.7 * 3000 == 2099.9999999999995 in binary floats
    assert mr.round_up(1600 * 1.3) == 2_080
    assert mr.round_down(0.7 * 3_000) == 2_100


def test_rounding_results_are_on_grid_and_bracket_price() -> None:
    for p in range(1, 60_000, 3):
        lo, hi = mr.round_down(p), mr.round_up(p)
        assert lo in GRID_SET and hi in GRID_SET
        assert lo <= p <= hi
        assert mr.round_to_tick(p) in (lo, hi)


# --------------------------------------------------------------------------- up / down


@pytest.mark.parametrize(
    ("fn", "price", "n", "expected"),
    [
        (mr.down, 5_000, 1, 4_995),
        (mr.down, 20_000, 1, 19_990),
        (mr.down, 50_000, 1, 49_950),
        (mr.down, 200_000, 1, 199_900),
        (mr.down, 500_000, 1, 499_500),
        (mr.down, 2_000, 1, 1_999),
        (mr.up, 4_995, 1, 5_000),
        (mr.up, 19_990, 1, 20_000),
        (mr.up, 1_999, 1, 2_000),
        (mr.up, 49_950, 1, 50_000),
        (mr.up, 199_900, 1, 200_000),
        (mr.up, 499_500, 1, 500_000),
        (mr.up, 500_000, 1, 501_000),
        # several steps across an edge: tick re-read every step
        (mr.up, 4_990, 3, 5_010),  # 4995, 5000, 5010
        (mr.up, 19_980, 4, 20_100),  # 19990, 20000, 20050, 20100
        (mr.up, 1_998, 4, 2_010),  # 1999, 2000, 2005, 2010
        (mr.down, 5_010, 3, 4_990),  # 5000, 4995, 4990
        (mr.down, 20_050, 3, 19_980),  # 20000, 19990, 19980
        (mr.down, 500_000, 3, 498_500),  # 499500, 499000, 498500
        (mr.down, 2_010, 4, 1_998),  # 2005, 2000, 1999, 1998
        (mr.down, 200_500, 2, 199_900),  # 200000, 199900
        (mr.up, 199_800, 3, 200_500),  # 199900, 200000, 200500
        (mr.up, 12_340, 0, 12_340),
        (mr.down, 12_340, 0, 12_340),
    ],
)
def test_up_down_steps(fn, price: int, n: int, expected: int) -> None:  # type: ignore[no-untyped-def]
    assert expected == (ref_up(price, n) if fn is mr.up else ref_down(price, n))
    assert fn(price, n) == expected


def test_up_down_are_inverse_and_match_reference_on_whole_grid() -> None:
    for i, p in enumerate(GRID[1:-2], start=1):
        if p > 3_000_000:
            break
        assert mr.up(p) == GRID[i + 1], p
        assert mr.down(p) == GRID[i - 1], p
        assert mr.down(mr.up(p)) == p
        assert mr.up(mr.down(p)) == p


def test_step_many_ticks_matches_reference() -> None:
    for p in (1_990, 4_950, 19_900, 49_500, 199_000, 495_000):
        for n in (1, 2, 5, 10, 25):
            assert mr.up(p, n) == ref_up(p, n), (p, n)
            assert mr.down(p, n) == ref_down(p, n), (p, n)


def test_down_never_goes_below_one() -> None:
    assert mr.down(1) == 1
    assert mr.down(3, 10) == 1


# --------------------------------------------------------------------------- price limits


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (1_600, (1_120, 2_080)),  # upper lands in the 5-tick band
        (45_000, (31_500, 58_500)),  # upper lands in the 100-tick band
        (56_200, (39_350, 73_000)),  # lower lands in the 50-tick band
        (10_000, (7_000, 13_000)),
        (1_000, (700, 1_300)),
        (3_000, (2_100, 3_900)),
        (2_860, (2_005, 3_715)),  # 0.7·base = 2,002 rounds inward (up) to 2,005
        (2_850, (1_995, 3_705)),  # 0.7·base = 1,995 exactly, on the 1-tick band
        (7_130, (4_995, 9_260)),  # 4,991 rounds up to 4,995 (still the 5-tick band)
        (38_500, (26_950, 50_000)),  # upper exactly on the 50,000 edge
        (16_000, (11_200, 20_800)),
        (160_000, (112_000, 208_000)),
        (400_000, (280_000, 520_000)),
        (700_000, (490_000, 910_000)),
        (1_234_000, (864_000, 1_604_000)),
    ],
)
def test_price_limits_examples(base: int, expected: tuple[int, int]) -> None:
    ref = ref_limits(base)
    assert ref == expected
    assert mr.price_limits(base) == expected
    assert mr.price_limits(float(base)) == ref


def test_price_limits_brief_examples_literal() -> None:
    assert mr.price_limits(1_600)[1] == 2_080
    assert mr.price_limits(45_000)[1] == 58_500
    assert mr.price_limits(56_200) == (39_350, 73_000)


def test_price_limits_match_reference_for_every_grid_base() -> None:
    for base in GRID:
        if base * 13 // 10 >= REF_MAX:
            break
        lo, hi = mr.price_limits(base)
        assert (lo, hi) == ref_limits(base), base
        # inward: the limits never exceed ±30%
        assert Decimal(lo) >= Decimal(base) * Decimal("0.7")
        assert Decimal(hi) <= Decimal(base) * Decimal("1.3")
        assert lo in GRID_SET and hi in GRID_SET


# --------------------------------------------------------------------------- marketable limits


def ref_marketable(ref_price: int, buy: bool, pct: str = "0.003", ticks: int = 3) -> int:
    x = Decimal(ref_price) * (1 + Decimal(pct) if buy else 1 - Decimal(pct))
    if buy:
        return max(ref_round_up(x.to_integral_value(ROUND_CEILING)), ref_up(ref_price, ticks))
    return min(ref_round_down(x.to_integral_value(ROUND_FLOOR)), ref_down(ref_price, ticks))


@pytest.mark.parametrize(
    ("ref_price", "buy", "expected"),
    [
        (10_000, True, 10_030),  # 0.3% = 30 = 3 ticks
        (10_000, False, 9_970),
        (4_990, True, 5_010),  # crosses 5,000 edge: 5004.97 -> 5010
        (5_000, False, 4_985),  # 4985 either way
        (50_000, True, 50_300),  # 3 ticks (300) > 0.3% (150)
        (50_000, False, 49_850),  # 3 ticks down: 49950, 49900, 49850; 0.3% -> 49850
        (1_000, True, 1_003),
        (1_000, False, 997),
        (500_000, True, 503_000),
        (500_000, False, 498_500),
    ],
)
def test_marketable_limit_defaults(ref_price: int, buy: bool, expected: int) -> None:
    got = mr.marketable_limit(ref_price, buy)
    assert got == ref_marketable(ref_price, buy)
    assert got == expected
    assert got in GRID_SET


@pytest.mark.parametrize("pct", ["0.001", "0.005", "0.01", "0.02", "0.05", "0.1"])
@pytest.mark.parametrize("ref_price", [1_000, 1_990, 2_000, 4_995, 9_990, 19_990, 49_950, 123_400, 499_500, 777_000])
def test_marketable_limit_band_matches_reference(ref_price: int, pct: str) -> None:
    for buy in (True, False):
        got = mr.marketable_limit(ref_price, buy, band_pct=float(pct))
        assert got == ref_marketable(ref_price, buy, pct), (ref_price, buy, pct)
        assert got in GRID_SET
        assert (got > ref_price) if buy else (got < ref_price)


def test_marketable_limit_ticks_parameter() -> None:
    assert mr.marketable_limit(10_000, True, band_pct=0.0, ticks=1) == 10_010
    assert mr.marketable_limit(10_000, False, band_pct=0.0, ticks=1) == 9_990
    assert mr.marketable_limit(20_000, False, band_pct=0.0, ticks=2) == 19_980
    assert mr.marketable_limit(19_990, True, band_pct=0.0, ticks=2) == 20_050


# --------------------------------------------------------------------------- session phases

D = date(2026, 2, 27)


def kst(h: int, m: int, s: int = 0) -> datetime:
    return datetime.combine(D, time(h, m, s), tzinfo=KST)


@pytest.mark.parametrize(
    ("t", "phase"),
    [
        ((0, 0, 0), SessionPhase.CLOSED),
        ((8, 29, 59), SessionPhase.CLOSED),
        ((8, 30, 0), SessionPhase.PRE_OPEN_AUCTION),
        ((8, 59, 59), SessionPhase.PRE_OPEN_AUCTION),
        ((9, 0, 0), SessionPhase.CONTINUOUS),
        ((12, 0, 0), SessionPhase.CONTINUOUS),  # no lunch break
        ((15, 19, 59), SessionPhase.CONTINUOUS),
        ((15, 20, 0), SessionPhase.CLOSING_AUCTION),
        ((15, 29, 59), SessionPhase.CLOSING_AUCTION),
        ((15, 30, 0), SessionPhase.POST_CLOSE),
        ((17, 59, 59), SessionPhase.POST_CLOSE),
        ((18, 0, 0), SessionPhase.CLOSED),
        ((23, 59, 59), SessionPhase.CLOSED),
    ],
)
def test_session_phase_boundaries(t: tuple[int, int, int], phase: SessionPhase) -> None:
    now = kst(*t)
    assert mr.session_phase(now) is phase
    # the same instant expressed in UTC gives the same phase
    assert mr.session_phase(now.astimezone(UTC)) is phase


def test_session_phase_microsecond_before_open() -> None:
    assert mr.session_phase(kst(9, 0) - timedelta(microseconds=1)) is SessionPhase.PRE_OPEN_AUCTION
    assert mr.session_phase(kst(15, 20) - timedelta(microseconds=1)) is SessionPhase.CONTINUOUS


def test_session_phase_utc_input_is_evaluated_in_kst() -> None:
    # 00:00 UTC == 09:00 KST
    assert mr.session_phase(datetime(2026, 2, 27, 0, 0, tzinfo=UTC)) is SessionPhase.CONTINUOUS
    # 23:45 UTC the day before == 08:45 KST
    assert mr.session_phase(datetime(2026, 2, 26, 23, 45, tzinfo=UTC)) is SessionPhase.PRE_OPEN_AUCTION


@pytest.mark.parametrize("t", [(8, 45, 0), (9, 0, 0), (12, 0, 0), (15, 25, 0), (16, 0, 0)])
def test_session_phase_non_trading_day_is_closed(t: tuple[int, int, int]) -> None:
    assert mr.session_phase(kst(*t), is_trading_day=False) is SessionPhase.CLOSED
