"""scripts/backup_db.sh on the real Postgres: a gzipped dump, rotation by age, and the restore
procedure of its header (drop, then replay the dump) bringing the rows back."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.deploy.conftest import REPO, run
from tests.support.pg import PG_ADMIN_DSN, admin_execute, fetch_value, pg_url, run_sync

BACKUP = REPO / "scripts" / "backup_db.sh"
pytestmark = pytest.mark.postgres


def _pg_args() -> list[str]:
    parts = urlsplit(PG_ADMIN_DSN)
    return ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]


def test_backup_rotation_and_restore(tmp_path: Path) -> None:
    db = f"deploy_backup_{uuid.uuid4().hex[:10]}"
    run_sync(admin_execute(f'CREATE DATABASE "{db}"'))
    try:
        psql = ["psql", "-X", "-v", "ON_ERROR_STOP=1", *_pg_args(), "-d", db]
        subprocess.run(
            [
                *psql,
                "-c",
                "CREATE TABLE fills (id int PRIMARY KEY, symbol text);"
                "INSERT INTO fills VALUES (1, '005930'), (2, '000660');",
            ],
            check=True,
            capture_output=True,
        )
        backups = tmp_path / "backups"
        backups.mkdir()
        day = 86400
        stale = backups / f"{db}_20000101_000000.sql.gz"
        recent = backups / f"{db}_20000102_000000.sql.gz"
        other = backups / "otherdb_20000101_000000.sql.gz"
        for f, age in ((stale, 10 * day), (recent, 2 * day), (other, 10 * day)):
            f.write_bytes(gzip.compress(b"-- old\n"))
            os.utime(f, (time.time() - age, time.time() - age))

        env = {
            "PATH": os.environ.get("PATH", ""),
            "PG_DUMP": "pg_dump " + " ".join(_pg_args()),
            "DBS": db,
            "KEEP_DAYS": "7",
        }
        result = run(["bash", str(BACKUP), str(backups)], env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        dumps = sorted(p for p in backups.glob(f"{db}_*.sql.gz") if p not in (stale, recent))
        assert len(dumps) == 1 and not list(backups.glob("*.partial"))
        sql = gzip.decompress(dumps[0].read_bytes()).decode()
        assert "CREATE DATABASE" in sql and "005930" in sql
        assert not stale.exists(), "dumps older than KEEP_DAYS are removed"
        assert recent.exists() and other.exists(), "younger dumps and other databases' dumps are kept"

        # restore as the header says: drop, then replay the dump through the maintenance database
        run_sync(admin_execute(f'DROP DATABASE "{db}" WITH (FORCE)'))
        restore = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *_pg_args(), "-d", "postgres"],
            input=sql,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restore.returncode == 0, restore.stderr
        assert (
            run_sync(fetch_value(pg_url(db), "SELECT string_agg(symbol, ',' ORDER BY id) FROM fills"))
            == "005930,000660"
        )

        failed = run(["bash", str(BACKUP), str(backups)], env={**env, "DBS": f"{db}_missing"})
        assert (
            failed.returncode == 1 and not list(backups.glob("*.partial")) and not list(backups.glob(f"{db}_missing*"))
        )
    finally:
        run_sync(admin_execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
