from datetime import UTC, datetime

import pytest

from oms.core import ids
from oms.core.ids import (
    CROCKFORD,
    MAX_CLIENT_ORDER_ID_LEN,
    id_time,
    instance_tag,
    new_client_order_id,
    new_id,
    ulid,
    ulid_of,
)


def test_ulid_shape():
    u = ulid()
    assert len(u) == 26
    assert set(u) <= set(CROCKFORD)


def test_new_id_prefix_and_bare():
    assert new_id().__len__() == 26
    ev = new_id("ev")
    assert ev.startswith("ev_") and len(ev) == 29
    assert ulid_of(ev) == ev[3:]


def test_ids_are_unique():
    made = {new_id("x") for _ in range(5000)}
    assert len(made) == 5000


def test_sorted_by_time_regardless_of_randomness():
    early = ulid(ts_ms=1_700_000_000_000, randomness=(1 << 80) - 1)
    late = ulid(ts_ms=1_700_000_000_001, randomness=0)
    assert early < late
    assert sorted([late, early]) == [early, late]


def test_encodes_time_exactly():
    ts = 1_795_000_000_250
    u = ulid(ts_ms=ts, randomness=12345)
    assert id_time(u) == datetime.fromtimestamp(ts / 1000, tz=UTC)
    assert id_time("ev_" + u) == id_time(u)


def test_known_encoding():
    assert ulid(ts_ms=0, randomness=0) == "0" * 26
    assert ulid(ts_ms=0, randomness=31) == "0" * 25 + "Z"


def test_uses_wall_clock_time(monkeypatch):
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_700_000_000_123_456_789)
    assert id_time(new_id("a")) == datetime.fromtimestamp(1_700_000_000.123, tz=UTC)


def test_ulid_range_checks():
    with pytest.raises(ValueError):
        ulid(ts_ms=1 << 48)
    with pytest.raises(ValueError):
        ulid(ts_ms=0, randomness=1 << 80)
    with pytest.raises(ValueError):
        ulid_of("short")
    with pytest.raises(ValueError):
        ulid_of("ev_" + "U" * 26)  # U is not in Crockford base32


def test_client_order_id_short_and_tagged():
    cid = new_client_order_id("vps1")
    assert cid.startswith("VPS1-")
    assert len(cid) <= MAX_CLIENT_ORDER_ID_LEN
    assert len(ulid_of(cid)) == 26


@pytest.mark.parametrize("instance", ["", "a", "host-number-one-with-a-very-long-name", "한글", "x" * 200])
def test_client_order_id_length_bound(instance):
    cid = new_client_order_id(instance)
    assert len(cid) <= MAX_CLIENT_ORDER_ID_LEN
    assert cid.replace("-", "").isalnum() and cid.isascii()


def test_instance_tags_distinguish_long_names():
    assert instance_tag("vps-1") == "VPS1"
    a, b = instance_tag("production-host-a"), instance_tag("production-host-b")
    assert len(a) == len(b) == 5
    assert a != b
    assert instance_tag("production-host-a") == a  # deterministic


def test_client_order_ids_unique():
    assert len({new_client_order_id("vps1") for _ in range(2000)}) == 2000
