"""Clocks: TRADER_CLOCK parsing, virtual-time math, the manual clock, and cross-process agreement."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker_core import clock as clock_mod
from broker_core.clock import (
    ENV_VAR,
    KST,
    NEW_YORK,
    Clock,
    ClockSpecError,
    ManualClock,
    RealClock,
    VirtualClock,
    budget_sleep,
    budget_time,
    clock_from_env,
    parse_clock,
    sim_spec,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 2, 27, 8, 50, tzinfo=KST)
ANCHOR = 1_795_000_000.25


async def settle(rounds: int = 20) -> None:
    """Let every ready task run (yields to the loop; no wall-clock waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- parse_clock


@pytest.mark.parametrize("spec", ["real", None, "", "  real  "])
def test_parse_real(spec: str | None) -> None:
    c = parse_clock(spec)
    assert isinstance(c, RealClock)
    assert c.speed == 1.0
    assert c.spec() == "real"
    assert c.now().tzinfo is not None
    assert c.now().utcoffset() == timedelta(hours=9)


def test_parse_sim_full_spec() -> None:
    c = parse_clock("sim start=2026-02-27T08:50:00+09:00 speed=60 anchor=1795000000.25")
    assert isinstance(c, VirtualClock)
    assert c.start == START
    assert c.start.utcoffset() == timedelta(hours=9)
    assert c.speed == 60.0
    assert c.anchor == ANCHOR


def test_parse_sim_defaults_speed_one_and_anchor_now() -> None:
    before = time.time()
    c = parse_clock("sim start=2026-02-27T08:50:00+09:00")
    after = time.time()
    assert isinstance(c, VirtualClock)
    assert c.speed == 1.0
    assert before <= c.anchor <= after


def test_parse_sim_start_in_other_offset_is_same_instant_shown_in_kst() -> None:
    c = parse_clock("sim start=2026-02-26T23:50:00+00:00 speed=1 anchor=0")
    assert isinstance(c, VirtualClock)
    assert c.start == START
    assert c.start.tzinfo == KST
    c_z = parse_clock("sim start=2026-02-26T23:50:00Z speed=1 anchor=0")
    assert isinstance(c_z, VirtualClock)
    assert c_z.start == START


def test_parse_sim_order_of_parts_does_not_matter() -> None:
    a = parse_clock("sim anchor=5 speed=2 start=2026-02-27T08:50:00+09:00")
    b = parse_clock("sim start=2026-02-27T08:50:00+09:00 speed=2 anchor=5")
    assert isinstance(a, VirtualClock) and isinstance(b, VirtualClock)
    assert (a.start, a.speed, a.anchor) == (b.start, b.speed, b.anchor)


def test_clock_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert isinstance(clock_from_env(), RealClock)
    monkeypatch.setenv(ENV_VAR, "sim start=2026-02-27T08:50:00+09:00 speed=60 anchor=1795000000.25")
    c = clock_from_env()
    assert isinstance(c, VirtualClock)
    assert (c.start, c.speed, c.anchor) == (START, 60.0, ANCHOR)


@pytest.mark.parametrize(
    ("spec", "must_mention"),
    [
        ("sim speed=60 anchor=1", "start"),  # missing start
        ("sim", "start"),  # nothing at all
        ("sim start=2026-02-27T08:50:00+09:00 speed=fast", "speed"),  # bad speed
        ("sim start=2026-02-27T08:50:00+09:00 speed=0", "speed"),  # non-positive speed
        ("sim start=2026-02-27T08:50:00+09:00 speed=-2", "speed"),
        ("sim start=2026-02-27T08:50:00+09:00 speed=nan", "speed"),  # not finite
        ("sim start=2026-02-27T08:50:00+09:00 speed=inf", "speed"),
        ("sim start=2026-02-27T08:50:00+09:00 anchor=yesterday", "anchor"),  # bad anchor
        ("sim start=2026-02-27T08:50:00+09:00 anchor=nan", "anchor"),
        ("sim start=2026-02-27T08:50:00+09:00 speed=60 rate=2", "rate=2"),  # unknown key
        ("sim start=2026-02-27T08:50:00+09:00 speed60", "speed60"),  # malformed part
        ("sim start=not-a-date", "not-a-date"),  # bad start
        ("sim start=2026-02-27T08:50:00 speed=60", "2026-02-27T08:50:00"),  # naive start
        ("sim start=2026-02-27T08:50:00+09:00 speed=1 speed=2", "speed"),  # duplicate key
        ("simulate start=2026-02-27T08:50:00+09:00", "simulate"),  # unknown kind
        ("virtual", "virtual"),
    ],
)
def test_parse_errors_name_the_bad_part(spec: str, must_mention: str) -> None:
    with pytest.raises(ClockSpecError) as info:
        parse_clock(spec)
    assert must_mention in str(info.value)
    assert isinstance(info.value, ValueError)


def test_naive_start_error_mentions_offset() -> None:
    with pytest.raises(ClockSpecError, match="offset"):
        parse_clock("sim start=2026-02-27T08:50:00 speed=60")


# --------------------------------------------------------------------------- VirtualClock


def test_virtual_at_anchor_is_start() -> None:
    c = VirtualClock(START, speed=60, anchor=ANCHOR)
    assert c.at(ANCHOR) == START


@pytest.mark.parametrize("speed", [1, 2.5, 60, 600])
def test_virtual_speed_applied(speed: float) -> None:
    c = VirtualClock(START, speed=speed, anchor=ANCHOR)
    assert c.at(ANCHOR + 10) == START + timedelta(seconds=10 * speed)
    assert c.at(ANCHOR - 4) == START - timedelta(seconds=4 * speed)
    assert c.at(ANCHOR + 0.5) - c.at(ANCHOR) == timedelta(seconds=0.5 * speed)


def test_virtual_result_is_aware_and_in_kst() -> None:
    c = VirtualClock(START, speed=60, anchor=ANCHOR)
    t = c.at(ANCHOR + 3600)
    assert t.tzinfo == KST
    assert t.utcoffset() == timedelta(hours=9)
    assert t == datetime(2026, 3, 1, 20, 50, tzinfo=KST)  # one wall hour at speed 60 = 60 hours


def test_virtual_wall_time_of_is_inverse_of_at() -> None:
    c = VirtualClock(START, speed=60, anchor=ANCHOR)
    for virtual_offset in (0, 1, 59.5, 3600, -600):
        when = START + timedelta(seconds=virtual_offset)
        wall = c.wall_time_of(when)
        assert wall == pytest.approx(ANCHOR + virtual_offset / 60, abs=1e-6)
        assert abs((c.at(wall) - when).total_seconds()) < 1e-5
    # an instant given in another timezone maps to the same wall time
    assert c.wall_time_of(START.astimezone(UTC)) == ANCHOR


def test_virtual_now_follows_time_time(monkeypatch: pytest.MonkeyPatch) -> None:
    c = VirtualClock(START, speed=60, anchor=ANCHOR)
    monkeypatch.setattr(clock_mod.time, "time", lambda: ANCHOR + 30.0)
    assert c.now() == START + timedelta(minutes=30)


def test_virtual_clock_without_anchor_anchors_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_mod.time, "time", lambda: 1_000.0)
    c = VirtualClock(START, speed=10)
    assert c.anchor == 1_000.0
    assert c.now() == START


def test_virtual_clock_across_dst_is_exact_elapsed_time() -> None:
    # New York springs forward at 2026-03-08 02:00 EST -> 03:00 EDT.
    start = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)
    c = VirtualClock(start, speed=1, anchor=0.0, tz=NEW_YORK)
    later = c.at(24 * 3600.0)
    assert (later.astimezone(UTC) - start.astimezone(UTC)) == timedelta(hours=24)
    assert later.hour == 13 and later.utcoffset() == timedelta(hours=-4)
    assert c.wall_time_of(later) == pytest.approx(24 * 3600.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": datetime(2026, 2, 27, 8, 50)}, "offset"),
        ({"start": START, "speed": 0}, "speed"),
        ({"start": START, "speed": -1}, "speed"),
        ({"start": START, "speed": float("nan")}, "speed"),
        ({"start": START, "speed": float("inf")}, "speed"),
        ({"start": START, "anchor": float("nan")}, "anchor"),
    ],
)
def test_virtual_clock_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ClockSpecError, match=match):
        VirtualClock(**kwargs)  # type: ignore[arg-type]


def test_clocks_satisfy_protocol() -> None:
    assert isinstance(RealClock(), Clock)
    assert isinstance(VirtualClock(START, 60, ANCHOR), Clock)
    assert isinstance(ManualClock(START), Clock)


# --------------------------------------------------------------------------- sim_spec


@pytest.mark.parametrize("speed", [1, 60, 2.5, 1 / 3, 1234567, 0.001])
@pytest.mark.parametrize("anchor", [ANCHOR, 1_795_000_000, 1_700_000_000.123456])
def test_sim_spec_round_trip(speed: float, anchor: float) -> None:
    spec = sim_spec(START, speed, anchor)
    c = parse_clock(spec)
    assert isinstance(c, VirtualClock)
    assert c.start == START
    assert c.speed == float(speed)  # exact, not to 6 significant digits
    assert c.anchor == float(anchor)
    assert c.spec() == spec
    original = VirtualClock(START, speed, anchor)
    assert original.spec() == spec
    for wall in (anchor, anchor + 1.5, anchor + 12345.678):
        assert c.at(wall) == original.at(wall)


def test_sim_spec_readable_for_integral_speed() -> None:
    assert sim_spec(START, 60, ANCHOR) == "sim start=2026-02-27T08:50:00+09:00 speed=60 anchor=1795000000.25"


def test_sim_spec_with_microseconds_round_trips() -> None:
    start = START.replace(microsecond=123456)
    c = parse_clock(sim_spec(start, 60, ANCHOR))
    assert isinstance(c, VirtualClock)
    assert c.start == start


def test_sim_spec_without_anchor_uses_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_mod.time, "time", lambda: 1_234.5)
    assert sim_spec(START, 60).endswith("anchor=1234.5")


def test_sim_spec_rejects_naive_start() -> None:
    with pytest.raises(ClockSpecError):
        sim_spec(datetime(2026, 2, 27, 8, 50), 60, ANCHOR)


# --------------------------------------------------------------------------- ManualClock


async def test_manual_sleep_until_wakes_when_advanced() -> None:
    c = ManualClock(START)
    woke: list[datetime] = []

    async def sleeper() -> None:
        await c.sleep_until(START + timedelta(seconds=10))
        woke.append(c.now())

    task = asyncio.create_task(sleeper())
    await settle()
    assert not task.done()
    c.advance(5)
    await settle()
    assert not task.done()
    c.advance(5)
    await settle()
    assert task.done()
    assert woke == [START + timedelta(seconds=10)]


async def test_manual_several_sleepers_wake_in_turn() -> None:
    c = ManualClock(START)
    order: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await c.sleep(seconds)
        order.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 30), ("a", 10), ("b", 20))]
    await settle()
    assert order == []
    c.advance(15)
    await settle()
    assert order == ["a"]
    c.set(START + timedelta(seconds=100))
    await settle()
    assert sorted(order) == ["a", "b", "c"]
    assert all(t.done() for t in tasks)


async def test_manual_sleep_until_past_returns_immediately() -> None:
    c = ManualClock(START)
    await c.sleep_until(START - timedelta(seconds=1))
    await c.sleep_until(START)
    await c.sleep(0)
    assert c.now() == START


async def test_manual_set_never_goes_backwards() -> None:
    c = ManualClock(START)
    c.advance(10)
    c.set(START)
    assert c.now() == START + timedelta(seconds=10)
    c.advance(-5)
    assert c.now() == START + timedelta(seconds=10)


async def test_manual_sleep_until_accepts_other_timezone() -> None:
    c = ManualClock(START)
    task = asyncio.create_task(c.sleep_until((START + timedelta(seconds=60)).astimezone(UTC)))
    await settle()
    assert not task.done()
    c.advance(60)
    await settle()
    assert task.done()


def test_manual_clock_created_outside_a_loop_still_wakes_sleepers() -> None:
    c = ManualClock(START)  # no running loop here

    async def scenario() -> bool:
        task = asyncio.create_task(c.sleep(5))
        await settle()
        first = task.done()
        c.advance(5)
        await settle()
        return not first and task.done()

    assert asyncio.run(scenario())


def test_manual_clock_rejects_naive() -> None:
    with pytest.raises(ClockSpecError):
        ManualClock(datetime(2026, 2, 27, 9, 0))
    c = ManualClock(START)
    with pytest.raises(ValueError):
        c.set(datetime(2026, 2, 27, 9, 0))


def test_manual_advance_across_dst_is_exact_elapsed_time() -> None:
    start = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)
    c = ManualClock(start)
    c.advance(24 * 3600)
    assert c.now().astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=24)


# --------------------------------------------------------------------------- RealClock


async def test_real_clock_sleep_until_computes_real_elapsed_seconds() -> None:
    asked: list[float] = []

    class Recording(RealClock):
        def now(self) -> datetime:  # frozen, so the check does not depend on elapsed time
            return START

        async def sleep(self, seconds: float) -> None:
            asked.append(seconds)

    c = Recording()
    await c.sleep_until(START - timedelta(hours=1))
    await c.sleep_until((START + timedelta(hours=2)).astimezone(NEW_YORK))
    assert asked == [-3600.0, 7200.0]


async def test_real_clock_negative_sleep_returns() -> None:
    await RealClock().sleep(-3)  # clamped to asyncio.sleep(0): just yields


# --------------------------------------------------------------------------- cross-process

CHILD = r"""
import sys
from broker_core.clock import clock_from_env, VirtualClock
c = clock_from_env()
assert isinstance(c, VirtualClock), type(c)
walls = [float(w) for w in sys.argv[1:]]
print(c.start.isoformat(), repr(c.speed), repr(c.anchor))
for w in walls:
    print(c.at(w).isoformat())
print("NOW", c.now().isoformat())
"""


def _spawn(env_value: str, walls: list[float]) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env[ENV_VAR] = env_value
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *map(repr, walls)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_virtual_clock_gives_the_same_now_in_two_processes_started_with_the_same_trader_clock() -> None:
    """Acceptance: two processes started with the same TRADER_CLOCK agree on "now"."""
    anchor = 1_700_000_000.25  # fixed, far in the past
    spec = sim_spec(START, 1, anchor)
    walls = [anchor, anchor + 0.5, anchor + 3_600.125, 1_795_000_000.75]

    wall_before = time.time()
    children = [_spawn(spec, walls), _spawn(spec, walls)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(out.splitlines())
    wall_after = time.time()

    first, second = outputs
    # the deterministic part (everything but the live NOW line) is identical in both children
    assert first[:-1] == second[:-1]

    parent = parse_clock(spec)
    assert isinstance(parent, VirtualClock)
    assert first[0] == f"{parent.start.isoformat()} {parent.speed!r} {parent.anchor!r}"
    assert first[1:-1] == [parent.at(w).isoformat() for w in walls]
    # and matches the definition: start + (wall - anchor) * speed
    assert first[1] == START.isoformat()
    assert first[3] == (START + timedelta(seconds=3_600.125)).isoformat()

    # each child's live now() lies between the parent's virtual time before spawning and after exit
    for lines in outputs:
        tag, stamp = lines[-1].split(" ")
        assert tag == "NOW"
        child_now = datetime.fromisoformat(stamp)
        assert parent.at(wall_before) <= child_now <= parent.at(wall_after)


def test_two_processes_agree_with_a_fractional_speed() -> None:
    spec = sim_spec(START, 1 / 3, ANCHOR)
    walls = [ANCHOR + 1, ANCHOR + 7.77, ANCHOR - 100.01]
    children = [_spawn(spec, walls), _spawn(spec, walls)]
    outs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outs.append(out.splitlines()[:-1])
    assert outs[0] == outs[1]
    parent = VirtualClock(START, 1 / 3, ANCHOR)  # the launcher's own clock, never parsed
    assert outs[0][1:] == [parent.at(w).isoformat() for w in walls]


# ---- anchor file and multi-day windows ----------------------------------------------------------
def _multi(start: str = "2026-02-26T15:00:00+09:00", speed: float = 60.0, anchor: float = 1_000.0) -> VirtualClock:
    spec = f"sim start={start} speed={speed:g} anchor={anchor!r} days=2026-02-26..2026-03-03 window=08:00-16:00"
    clock = parse_clock(spec)
    assert isinstance(clock, VirtualClock)
    return clock


def test_multi_day_clock_jumps_nights_and_weekends() -> None:
    clock = _multi()
    # 15:00 → 16:00 on Thursday is 3,600 virtual s = 60 wall s at 60×; then the jump to Friday 08:00
    assert clock.at(1_000.0 + 59.0).isoformat() == "2026-02-26T15:59:00+09:00"
    assert clock.at(1_000.0 + 60.0).isoformat() == "2026-02-27T08:00:00+09:00"
    # a full 8-hour day later: Friday 16:00 → Monday 08:00 (the weekend and the 1 March holiday skipped)
    monday = clock.at(1_000.0 + 60.0 + 8 * 60.0)
    assert monday.isoformat() == "2026-03-03T08:00:00+09:00"
    # after the last window time runs on
    assert clock.at(1_000.0 + 60.0 + 16 * 60.0 + 1.0) > datetime.fromisoformat("2026-03-03T16:00:00+09:00")


def test_an_instant_in_a_gap_wakes_at_the_jump() -> None:
    clock = _multi()
    night = datetime.fromisoformat("2026-02-26T22:00:00+09:00")
    assert clock.wall_time_of(night) == pytest.approx(1_060.0)
    assert clock.at(clock.wall_time_of(night)) >= night
    for wall in (1_010.0, 1_200.0, 1_555.5):
        assert clock.wall_time_of(clock.at(wall)) == pytest.approx(wall)


def test_two_processes_compute_the_same_jumps() -> None:
    a, b = _multi(), parse_clock(_multi().spec())
    assert isinstance(b, VirtualClock)
    assert [a.at(1_000.0 + w) for w in range(0, 2_000, 37)] == [b.at(1_000.0 + w) for w in range(0, 2_000, 37)]


def test_anchor_file_holds_time_at_start_until_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from broker_core.clock import write_anchor

    path = tmp_path / "anchor"
    clock = parse_clock(f"sim start=2026-02-27T08:00:00+09:00 speed=100 anchor=@{path}")
    assert isinstance(clock, VirtualClock) and not clock.anchored
    assert clock.now().isoformat() == "2026-02-27T08:00:00+09:00"
    written = write_anchor(path, 5_000.0)
    assert clock.anchored and clock.anchor == written
    assert clock.at(5_001.0).isoformat() == "2026-02-27T08:01:40+09:00"
    assert f"anchor=@{path}" in clock.spec()


async def test_sleepers_wait_for_the_anchor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from broker_core.clock import write_anchor

    path = tmp_path / "anchor"
    clock = parse_clock(f"sim start=2026-02-27T08:00:00+09:00 speed=1000 anchor=@{path}")
    assert isinstance(clock, VirtualClock)
    sleeper = asyncio.create_task(clock.sleep(1.0))
    await asyncio.sleep(0.1)
    assert not sleeper.done()
    write_anchor(path)
    await asyncio.wait_for(sleeper, 2.0)
    assert clock.now() > clock.start


@pytest.mark.parametrize(
    "extra",
    [
        "days=2026-03-05..2026-03-01",
        "days=2026-03-01",
        "window=08:00-16:00",
        "days=2026-03-02..2026-03-03 window=16-8",
        "days=2026-03-02..2026-03-03 market=lse",
    ],
)
def test_bad_multi_day_parts_name_the_problem(extra: str) -> None:
    with pytest.raises(ClockSpecError):
        parse_clock(f"sim start=2026-02-27T08:00:00+09:00 speed=1 {extra}")


async def test_a_budget_runs_at_the_clock_speed_while_the_clock_waits_for_its_anchor(tmp_path: Path) -> None:
    anchor = tmp_path / "clock.anchor"
    clock = VirtualClock(datetime(2026, 2, 27, 7, 55, tzinfo=KST), 100, anchor_file=str(anchor))
    t0 = budget_time(clock)
    await asyncio.wait_for(budget_sleep(clock, 5.0), 30)  # 0.05 s of wall at 100x; clock.sleep would never end
    assert clock.now() == clock.start
    assert budget_time(clock) - t0 >= 5.0
    anchor.write_text(repr(time.time()))
    assert abs(budget_time(clock) - clock.now().timestamp()) < 1.0  # anchored: the clock's own time
    manual = ManualClock(datetime(2026, 2, 27, 9, 0, tzinfo=KST))
    assert budget_time(manual) == manual.now().timestamp()
