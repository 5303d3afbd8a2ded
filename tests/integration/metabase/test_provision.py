"""``trader metabase provision`` against a fake Metabase API (tests/support/fake_metabase.py): it creates the
reader connection, the collection, every question and every dashboard once, and a second run updates them in
place."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.fake_metabase import FakeMetabase
from trader.cli import app
from trader.metabase import DEFAULT_DIR, Metabase, MetabaseError, load_spec, provision

DASHBOARDS = {
    "Daily P&L by strategy",
    "Intent success and rejection rates",
    "Position heat map",
    "Fill latency",
    "Account",
    "Risk",
}


@pytest.fixture
def fake() -> Iterator[FakeMetabase]:
    server = FakeMetabase()
    try:
        yield server
    finally:
        server.close()


def _run(fake: FakeMetabase, *extra: str) -> str:
    result = CliRunner().invoke(
        app,
        [
            "metabase",
            "provision",
            "--url",
            fake.url,
            "--user",
            fake.user,
            "--password",
            fake.password,
            "--db-password",
            "reader-pw-0123456789",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_definitions_name_the_dashboards_the_trader_asked_for() -> None:
    spec = load_spec()
    assert {d.name for d in spec.dashboards} == DASHBOARDS
    assert spec.database.user == "trading_reader"
    for d in spec.dashboards:
        cells = {(c.col + x, c.row + y) for c in d.cards for x in range(c.size_x) for y in range(c.size_y)}
        assert len(cells) == sum(c.size_x * c.size_y for c in d.cards), f"{d.name}: cards overlap"
    for key, q in spec.questions.items():
        assert q.sql and "v_" in q.sql, f"{key}: a question reads the dashboard views"


def test_provisioning_twice_creates_each_object_once(fake: FakeMetabase) -> None:
    spec = load_spec()
    first = _run(fake)
    assert "dashboards   6 created, 0 updated" in first, first
    expected = {
        "database": 1,
        "collection": 1,
        "card": len(spec.questions),
        "dashboard": len(spec.dashboards),
        "dashcard": sum(len(d.cards) for d in spec.dashboards),
    }
    assert dict(fake.created) == expected
    snapshot = {k: {i: dict(o) for i, o in objs.items()} for k, objs in fake.objects.items()}

    second = _run(fake)
    assert "cards        0 created, 17 updated" in second, second
    assert dict(fake.created) == expected, "the second run created something"
    assert {k: set(v) for k, v in fake.objects.items()} == {k: set(v) for k, v in snapshot.items()}

    (db,) = fake.objects["database"].values()
    assert db["engine"] == "postgres" and db["details"]["user"] == "trading_reader"
    assert db["details"]["password"] == "reader-pw-0123456789" and db["details"]["dbname"] == "trading"
    (collection,) = fake.objects["collection"].values()
    by_name = {c["name"]: c for c in fake.objects["card"].values()}
    for q in spec.questions.values():
        card = by_name[q.name]
        assert card["collection_id"] == collection["id"] and card["display"] == q.display
        assert card["dataset_query"] == {
            "type": "native",
            "native": {"query": q.sql, "template-tags": {}},
            "database": db["id"],
        }
    assert {d["name"] for d in fake.objects["dashboard"].values()} == DASHBOARDS
    heat = next(d for d in fake.objects["dashboard"].values() if d["name"] == "Position heat map")
    placed = {
        fake.objects["card"][dc["card_id"]]["name"]
        for dc in fake.objects["dashcard"].values()
        if dc["dashboard_id"] == heat["id"]
    }
    assert "Position heat map (value, day P&L %)" in placed


def test_a_changed_definition_is_updated_in_place(fake: FakeMetabase, tmp_path: Path) -> None:
    copy = tmp_path / "metabase"
    shutil.copytree(DEFAULT_DIR, copy)
    _run(fake, "--dir", str(copy))
    sql = copy / "questions" / "recent_fills.sql"
    sql.write_text(sql.read_text().replace("LIMIT 200", "LIMIT 50"))
    spec_file = copy / "dashboards.yaml"
    spec_file.write_text(
        spec_file.read_text().replace(
            "{question: recent_fills, col: 0, row: 8", "{question: recent_fills, col: 0, row: 9"
        )
    )
    before = dict(fake.created)
    _run(fake, "--dir", str(copy), "--db-host", "10.0.0.2")
    assert dict(fake.created) == before
    card = next(c for c in fake.objects["card"].values() if c["name"] == "Latest fills")
    assert "LIMIT 50" in card["dataset_query"]["native"]["query"]
    rows = {dc["row"] for dc in fake.objects["dashcard"].values() if dc["card_id"] == card["id"]}
    assert rows == {9}
    assert next(iter(fake.objects["database"].values()))["details"]["host"] == "10.0.0.2"


def test_bad_credentials_and_bad_definitions_are_clear(fake: FakeMetabase, tmp_path: Path) -> None:
    with pytest.raises(MetabaseError, match="sign-in"):
        Metabase(fake.url, fake.user, "wrong")
    copy = tmp_path / "metabase"
    shutil.copytree(DEFAULT_DIR, copy)
    (copy / "questions" / "day_loss.sql").unlink()
    result = CliRunner().invoke(
        app,
        [
            "metabase",
            "provision",
            "--url",
            fake.url,
            "--user",
            fake.user,
            "--password",
            fake.password,
            "--db-password",
            "x",
            "--dir",
            str(copy),
        ],
    )
    assert result.exit_code == 2 and "day_loss.sql: missing" in result.output, result.output
    assert not fake.created


def test_provision_function_reports_ids(fake: FakeMetabase) -> None:
    mb = Metabase(fake.url, fake.user, fake.password)
    try:
        report = provision(mb, load_spec(), db_password="pw")
    finally:
        mb.close()
    assert set(report.ids["dashboard"]) == DASHBOARDS
    assert report.created["card"] and not report.updated
