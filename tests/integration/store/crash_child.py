"""Child process for the crash tests: appends (and optionally drains) forever, printing
``i seq`` after every append returned, until the parent SIGKILLs it."""

from __future__ import annotations

import asyncio
import sys

from oms.store.drain import Drainer
from oms.store.journal import Journal
from oms.store.migrate import make_engine
from tests.integration.store import factories as f


def records(i: int) -> list[object]:
    if i % 3 == 0:
        return [f.order(i), f.fill(i)]
    if i % 3 == 1:
        return [f.intent(i)]
    return [f.order(i - 2, state=f.OrderState.FILLED, filled=10)]  # an update of an earlier key


async def main(journal_path: str, db_url: str | None, instance_id: str | None) -> None:
    journal = Journal(journal_path)
    drainer = None
    if db_url:
        drainer = Drainer(journal, make_engine(db_url), instance_id or "crash", batch_size=7)
    for i in range(1_000_000):
        seq = journal.append(records(i))
        print(i, seq, flush=True)
        if drainer is not None:
            await drainer.drain_once()


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None, sys.argv[3] if len(sys.argv) > 3 else None)
    )
