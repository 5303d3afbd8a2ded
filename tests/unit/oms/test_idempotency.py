from datetime import date

import pytest

from oms.core.idempotency import AUTO_PREFIX, derive_idempotency_key, scoped_key
from oms.core.types import IntentType

DAY = date(2026, 2, 27)


def key(**kw):
    args = dict(
        strategy_id="KMP",
        symbol="005930",
        intent_type=IntentType.ENTER,
        trading_day=DAY,
        signal_hash="abc",
        rationale_code="ORB",
        qty=10,
    )
    args.update(kw)
    return derive_idempotency_key(**args)


def test_shape_and_determinism():
    k = key()
    assert k.startswith(AUTO_PREFIX)
    assert len(k) == len(AUTO_PREFIX) + 64
    int(k[len(AUTO_PREFIX) :], 16)
    assert key() == k


@pytest.mark.parametrize(
    "field,value",
    [
        ("strategy_id", "KPR"),
        ("symbol", "000660"),
        ("intent_type", IntentType.EXIT),
        ("trading_day", date(2026, 3, 3)),
        ("signal_hash", "abd"),
        ("signal_hash", None),
        ("rationale_code", "VWAP"),
        ("rationale_code", None),
        ("qty", 11),
        ("qty", None),
    ],
)
def test_every_field_matters(field, value):
    assert key(**{field: value}) != key()


def test_none_differs_from_empty_string():
    assert key(signal_hash=None) != key(signal_hash="")


def test_intent_type_as_string_is_the_same():
    assert key(intent_type="ENTER") == key()
    assert key(intent_type="enter") == key()


def test_whitespace_is_canonicalised():
    assert key(symbol=" 005930 ") == key()


def test_qty_must_be_int():
    with pytest.raises(TypeError):
        key(qty=1.5)


def test_no_field_concatenation_ambiguity():
    # "ab" + "c" vs "a" + "bc" must not collide.
    assert key(signal_hash="ab", rationale_code="c") != key(signal_hash="a", rationale_code="bc")


def test_scoped_key_separates_strategies():
    assert scoped_key("KMP", "k1") == "KMP:k1"
    assert scoped_key("KMP", "k1") != scoped_key("KPR", "k1")
    assert scoped_key("KMP", "k1") == scoped_key("KMP", "k1")


def test_scoped_key_is_injective_with_colons():
    assert scoped_key("A:B", "c") != scoped_key("A", "B:c")
    assert scoped_key("A%3AB", "c") != scoped_key("A:B", "c")


def test_scoped_key_rejects_empty():
    with pytest.raises(ValueError):
        scoped_key("", "k")
    with pytest.raises(ValueError):
        scoped_key("KMP", "")


def test_scoped_key_with_a_trading_day_is_per_day():
    d1, d2 = DAY, date(2026, 3, 3)
    assert scoped_key("KMP", "k1", d1) == "KMP:2026-02-27:k1"
    assert scoped_key("KMP", "k1", d1) != scoped_key("KMP", "k1", d2)
    assert scoped_key("KMP", "k1", d1) == scoped_key("KMP", "k1", d1)
    assert scoped_key("A:B", "c", d1) != scoped_key("A", "B:c", d1)
