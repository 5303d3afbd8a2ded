from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker_core.clock import KST
from strategies.sdk.keys import MAX_KEY_LEN, bucket_start, decision_key, random_key


def test_buckets_align_to_kst_midnight() -> None:
    ts = datetime(2026, 2, 27, 0, 7, 30, tzinfo=UTC)  # 09:07:30 KST
    assert bucket_start(ts, 60) == datetime(2026, 2, 27, 9, 7, tzinfo=KST)
    assert bucket_start(ts, 300) == datetime(2026, 2, 27, 9, 5, tzinfo=KST)
    assert bucket_start(ts, 86400) == datetime(2026, 2, 27, tzinfo=KST)


def test_decision_key_is_stable_and_bounded() -> None:
    ts = datetime(2026, 2, 27, 9, 16, 1, tzinfo=KST)
    assert decision_key("kmp", "005930", "exit", ts, tag="STOP") == "KMP:005930:EXIT:20260227T091600:STOP"
    long = decision_key("KMP", "005930", "EXIT", ts, tag="x" * 500)
    assert len(long) < MAX_KEY_LEN and long == decision_key("KMP", "005930", "EXIT", ts, tag="x" * 500)
    with pytest.raises(ValueError, match="timezone-aware"):
        decision_key("KMP", "005930", "EXIT", datetime(2026, 2, 27, 9, 16))
    assert random_key() != random_key()
