"""infra/postgres/init/01-roles.sh on the real Postgres (127.0.0.1:5432): roles and grants, the
OMS migrations run as the writer, the reader limited to SELECT, and no password in any file.

The script is run the way the postgres image runs it (psql as POSTGRES_USER), pointed at the test
server with PGHOST/PGPORT, with uniquely named roles and databases (TRADING_DB, WRITER_ROLE,
READER_ROLE, METABASE_DB, METABASE_DB_USER) that are dropped afterwards. It fails, never skips,
when Postgres is missing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import pytest

from oms.store.migrate import migrate
from tests.integration.deploy.conftest import REPO, run
from tests.support.pg import PG_ADMIN_DSN, admin_execute, run_sync

INIT_SCRIPT = REPO / "infra" / "postgres" / "init" / "01-roles.sh"
pytestmark = pytest.mark.postgres


@dataclass
class Cluster:
    host: str
    port: int
    admin: str
    trading_db: str
    writer: str
    reader: str
    metabase_db: str
    metabase_role: str
    writer_pw: str
    reader_pw: str
    metabase_pw: str

    def dsn(self, user: str, db: str) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{db}"

    def script_env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "POSTGRES_USER": self.admin,
            "POSTGRES_DB": "postgres",
            "TRADING_DB": self.trading_db,
            "WRITER_ROLE": self.writer,
            "READER_ROLE": self.reader,
            "METABASE_DB": self.metabase_db,
            "METABASE_DB_USER": self.metabase_role,
            "POSTGRES_WRITER_PASSWORD": self.writer_pw,
            "POSTGRES_READER_PASSWORD": self.reader_pw,
            "METABASE_DB_PASSWORD": self.metabase_pw,
        }


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    parts = urlsplit(PG_ADMIN_DSN)
    tag = uuid.uuid4().hex[:10]
    c = Cluster(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        admin=parts.username or "postgres",
        trading_db=f"deploy_trading_{tag}",
        writer=f"deploy_writer_{tag}",
        reader=f"deploy_reader_{tag}",
        metabase_db=f"deploy_metabase_{tag}",
        metabase_role=f"deploy_mb_{tag}",
        writer_pw=secrets.token_hex(16),  # goes into a database URL
        reader_pw=f"r'e\"a d:@/{secrets.token_hex(6)}",  # any character must survive quoting
        metabase_pw=f"m$b'{secrets.token_hex(6)}",
    )
    run_sync(admin_execute("SELECT 1"))  # fails the test clearly when Postgres is not there
    try:
        yield c
    finally:
        for db in (c.trading_db, c.metabase_db):
            run_sync(admin_execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        for role in (c.writer, c.reader, c.metabase_role):
            run_sync(admin_execute(f'DROP ROLE IF EXISTS "{role}"'))


def _run_init(c: Cluster) -> None:
    result = run(["bash", str(INIT_SCRIPT)], env=c.script_env())
    assert result.returncode == 0, f"01-roles.sh failed:\n{result.stdout}\n{result.stderr}"
    output = result.stdout + result.stderr
    for pw in (c.writer_pw, c.reader_pw, c.metabase_pw):
        assert pw not in output, "the init script printed a password"


def _scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier from pg_authid was made from ``password`` (RFC 5802/7677)."""
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier)
    assert m, f"not a SCRAM-SHA-256 verifier: {verifier[:20]}..."
    iterations, salt, stored_key = int(m.group(1)), base64.b64decode(m.group(2)), base64.b64decode(m.group(3))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


async def _connect(c: Cluster, user: str, db: str) -> asyncpg.Connection:
    return await asyncpg.connect(c.dsn(user, db), timeout=5)


def test_roles_grants_and_migrations_as_writer(cluster: Cluster) -> None:
    c = cluster
    _run_init(c)
    _run_init(c)  # idempotent: a second run (e.g. by hand) changes nothing and does not fail

    async def verify() -> None:
        admin = await _connect(c, c.admin, "postgres")
        try:
            rows = {
                r["rolname"]: r
                for r in await admin.fetch(
                    "SELECT rolname, rolpassword, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_authid "
                    "WHERE rolname = ANY($1::text[])",
                    [c.writer, c.reader, c.metabase_role],
                )
            }
            assert set(rows) == {c.writer, c.reader, c.metabase_role}
            for role, pw in ((c.writer, c.writer_pw), (c.reader, c.reader_pw), (c.metabase_role, c.metabase_pw)):
                r = rows[role]
                assert r["rolcanlogin"] and not (r["rolsuper"] or r["rolcreatedb"] or r["rolcreaterole"]), role
                assert _scram_matches(r["rolpassword"], pw), f"{role}: the stored password is not the one from the env"
            owners = dict(
                await admin.fetch(
                    "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY($1::text[])",
                    [c.trading_db, c.metabase_db],
                )
            )
            assert owners == {c.trading_db: c.writer, c.metabase_db: c.metabase_role}
        finally:
            await admin.close()

        # the OMS migrations, run as the writer (as the OMS does on start)
        await migrate(f"postgresql+asyncpg://{c.writer}:{c.writer_pw}@{c.host}:{c.port}/{c.trading_db}")

        writer = await _connect(c, c.writer, c.trading_db)
        try:
            tables = [
                r[0]
                for r in await writer.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            ]
            assert "alembic_version" in tables and len(tables) > 3, tables
            assert {
                r[0]
                for r in await writer.fetch("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
            } == {c.writer}
            # a table created later by the writer; the writer reads and writes everything
            await writer.execute("CREATE TABLE deploy_probe (id serial PRIMARY KEY, note text)")
            await writer.execute("INSERT INTO deploy_probe (note) VALUES ('written by the writer')")
            tables.append("deploy_probe")
            for t in tables:
                await writer.execute(await _insert_nothing(writer, t))
                await writer.fetchval(f'SELECT count(*) FROM "{t}"')
        finally:
            await writer.close()

        reader = await _connect(c, c.reader, c.trading_db)
        try:
            for t in tables:  # SELECT on every table, including those created after the init script
                await reader.fetchval(f'SELECT count(*) FROM "{t}"')
            assert await reader.fetchval("SELECT note FROM deploy_probe") == "written by the writer"
            for t in tables:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await reader.execute(await _insert_nothing(reader, t))
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await reader.execute("INSERT INTO deploy_probe (note) VALUES ('nope')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await reader.execute("UPDATE deploy_probe SET note = 'nope'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await reader.execute("DELETE FROM deploy_probe")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await reader.execute("CREATE TABLE reader_table (id int)")
        finally:
            await reader.close()

        # the Metabase role owns its application database and cannot even connect to trading
        mb = await _connect(c, c.metabase_role, c.metabase_db)
        try:
            await mb.execute("CREATE TABLE mb_probe (id int)")
        finally:
            await mb.close()
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await _connect(c, c.metabase_role, c.trading_db)

    run_sync(verify())


def test_missing_password_stops_the_script(cluster: Cluster) -> None:
    env = cluster.script_env()
    del env["POSTGRES_READER_PASSWORD"]
    result = run(["bash", str(INIT_SCRIPT)], env=env)
    assert result.returncode != 0
    assert "POSTGRES_READER_PASSWORD" in result.stderr


def test_no_password_in_committed_sql(cluster: Cluster) -> None:
    _run_init(cluster)
    files = [p for p in (REPO / "infra").rglob("*") if p.is_file()]
    assert INIT_SCRIPT in files
    for path in files:
        text = path.read_text()
        for pw in (cluster.writer_pw, cluster.reader_pw, cluster.metabase_pw):
            assert pw not in text, f"{path}: holds a password"
        # passwords only as psql variables (PASSWORD :'var'), never as literals
        assert not re.search(r"PASSWORD\s+(E?'|\"|\$\$)", text, re.I), f"{path}: a literal password in SQL"
        if path.suffix == ".sql":
            assert "PASSWORD" not in text.upper(), f"{path}: .sql files must not set passwords"


async def _insert_nothing(conn: asyncpg.Connection, table: str) -> str:
    """An INSERT of no row into ``table`` that needs the INSERT privilege (generated columns left out)."""
    cols = [
        r[0]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 "
            "AND is_generated = 'NEVER' ORDER BY ordinal_position",
            table,
        )
    ]
    names = ", ".join(f'"{c}"' for c in cols)
    return f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "{table}" WHERE false'
