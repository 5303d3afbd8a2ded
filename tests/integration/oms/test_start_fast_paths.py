"""The cold-start and hot-path shortcuts of issue 21 keep the behaviour they replace.

- migrations: a database already at head is recognised by its ``alembic_version`` row (no Alembic run),
  and :func:`head_revision` (read from the migration files) is Alembic's own head;
- the key ring finds a principal by the key's digest with the old precedence (admin, read, strategy);
- the heap is frozen for the collector while the OMS runs and unfrozen when it stops.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from oms.api.auth import KeyRing, Principal
from oms.store.migrate import alembic_config, current_revision, head_revision, migrate
from tests.support.oms_server import oms_settings, running_oms


def test_head_revision_is_alembics_head() -> None:
    assert head_revision() is not None
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_a_database_at_head_is_not_migrated_again(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await migrate(database_url)
    assert await current_revision(database_url) == head_revision()

    def no_alembic(*_args: object) -> None:
        raise AssertionError("Alembic ran against a database already at head")

    # the module itself (``oms.store.migrate`` as an attribute is the function ``oms.store`` re-exports)
    monkeypatch.setattr(sys.modules["oms.store.migrate"], "_upgrade", no_alembic)
    await migrate(database_url)  # checked by revision: no upgrade
    assert await current_revision(database_url) == head_revision()


async def test_a_fresh_database_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    assert await current_revision(url) is None
    await migrate(url)
    assert await current_revision(url) == head_revision()


def test_key_ring_lookup() -> None:
    ring = KeyRing(admin="admin-key-123", read="read-key-123", strategies={"kmp-key-123": "KMP", "kpr-key-123": "KPR"})
    assert ring.lookup("admin-key-123") == Principal("admin")
    assert ring.lookup("read-key-123") == Principal("read")
    assert ring.lookup("kmp-key-123") == Principal("strategy", "KMP")
    assert ring.lookup("kpr-key-123") == Principal("strategy", "KPR")
    for bad in ("", "admin-key-12", "admin-key-1234", "kmp-key-123 ", "ключ-ключ", "\udcff" * 8):
        assert ring.lookup(bad) is None
    same = KeyRing(admin="shared-key-1", read="shared-key-1", strategies={"shared-key-1": "KMP"})
    assert same.lookup("shared-key-1") == Principal("admin")  # the old precedence: admin, read, strategy
    assert KeyRing(admin=None, read=None, strategies={}).lookup("anything") is None


async def test_heap_frozen_while_running(tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
