"""``trader metabase provision``: Metabase's data source, collection, questions and dashboards from files.

The definitions live in ``infra/metabase/`` (``dashboards.yaml`` and one ``questions/<key>.sql`` per question,
native SQL on the dashboard views). Provisioning goes through Metabase's REST API (``POST /api/session``,
``/api/database``, ``/api/collection``, ``/api/card``, ``/api/dashboard`` with its ``dashcards``) and is
idempotent: every object is looked up by name — the database by its name, the collection at the root, the
questions and dashboards inside the collection — and updated in place; only what is missing is created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker_core.config_errors import ConfigError, describe

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "infra" / "metabase"
SPEC_FILE = "dashboards.yaml"
GRID_WIDTH = 24


class DatabaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    engine: str = "postgres"
    host: str
    port: int = 5432
    dbname: str
    user: str


class CollectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""


class QuestionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    display: str = "table"
    columns: list[str] = Field(min_length=1)
    """The result columns, in order (checked by the tests against Postgres)."""
    visualization: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    sql: str = ""
    """Filled from ``questions/<key>.sql``."""


class CardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    col: int = Field(ge=0, lt=GRID_WIDTH)
    row: int = Field(ge=0)
    size_x: int = Field(ge=1, le=GRID_WIDTH)
    size_y: int = Field(ge=1)


class DashboardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""
    cards: list[CardSpec] = Field(min_length=1)


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database: DatabaseSpec
    collection: CollectionSpec
    questions: dict[str, QuestionSpec]
    dashboards: list[DashboardSpec]


def load_spec(directory: Path = DEFAULT_DIR) -> Spec:
    """The definitions in ``directory``; a ConfigError names the file and the problem."""
    path = directory / SPEC_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found")
    try:
        spec = Spec.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(describe(exc, str(path)) if isinstance(exc, ValidationError) else f"{path}: {exc}") from exc
    problems = []
    for key, q in spec.questions.items():
        sql_file = directory / "questions" / f"{key}.sql"
        if not sql_file.is_file():
            problems.append(f"{sql_file}: missing (question {key!r})")
            continue
        text = sql_file.read_text()
        comments = [ln[2:].strip() for ln in text.splitlines() if ln.startswith("--")]
        q.sql = text.strip()
        q.description = q.description or " ".join(comments)
    names = [q.name for q in spec.questions.values()]
    problems += [f"{path}: question name {n!r} is used twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for d in spec.dashboards:
        for card in d.cards:
            if card.question not in spec.questions:
                problems.append(f"{path}: dashboard {d.name!r} places unknown question {card.question!r}")
            if card.col + card.size_x > GRID_WIDTH:
                problems.append(f"{path}: dashboard {d.name!r}: {card.question} is wider than the grid")
    if problems:
        raise ConfigError("\n".join(problems))
    return spec


class MetabaseError(RuntimeError):
    pass


class Metabase:
    """The few REST calls provisioning needs, with a session from ``POST /api/session``."""

    def __init__(self, url: str, user: str, password: str, *, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        resp = self.http.post("/api/session", json={"username": user, "password": password})
        if resp.status_code != 200:
            raise MetabaseError(f"{url}: sign-in as {user} failed ({resp.status_code}: {resp.text[:200]})")
        self.http.headers["X-Metabase-Session"] = str(resp.json()["id"])

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        resp = self.http.request(method, path, json=body, params=params or None)
        if resp.status_code >= 400:
            raise MetabaseError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    def close(self) -> None:
        self.http.close()


def _data(reply: Any) -> list[dict[str, Any]]:
    """List endpoints answer a list or ``{"data": [...]}`` depending on the Metabase version."""
    items = reply.get("data", []) if isinstance(reply, dict) else reply
    return [i for i in items or [] if isinstance(i, dict)]


@dataclass
class Report:
    created: dict[str, list[str]] = field(default_factory=dict)
    updated: dict[str, list[str]] = field(default_factory=dict)
    ids: dict[str, dict[str, int]] = field(default_factory=dict)

    def note(self, kind: str, name: str, object_id: int, created: bool) -> int:
        (self.created if created else self.updated).setdefault(kind, []).append(name)
        self.ids.setdefault(kind, {})[name] = object_id
        return object_id


def provision(mb: Metabase, spec: Spec, *, db_password: str, db_host: str | None = None) -> Report:
    """Create or update everything in ``spec``; returns what was created and what was updated."""
    report = Report()
    db = spec.database
    details = {
        "host": db_host or db.host,
        "port": db.port,
        "dbname": db.dbname,
        "user": db.user,
        "password": db_password,
        "ssl": False,
    }
    db_body = {"name": db.name, "engine": db.engine, "details": details, "is_full_sync": True}
    found = next((d for d in _data(mb.call("GET", "/api/database")) if d.get("name") == db.name), None)
    if found is None:
        db_id = report.note("database", db.name, int(mb.call("POST", "/api/database", db_body)["id"]), True)
    else:
        db_id = report.note("database", db.name, int(found["id"]), False)
        mb.call("PUT", f"/api/database/{db_id}", db_body)

    col = spec.collection
    col_body = {"name": col.name, "description": col.description or None, "color": "#509EE3", "parent_id": None}
    found = next(
        (
            c
            for c in _data(mb.call("GET", "/api/collection"))
            if c.get("name") == col.name and not c.get("archived") and c.get("location", "/") == "/"
        ),
        None,
    )
    if found is None:
        col_id = report.note("collection", col.name, int(mb.call("POST", "/api/collection", col_body)["id"]), True)
    else:
        col_id = report.note("collection", col.name, int(found["id"]), False)
        mb.call("PUT", f"/api/collection/{col_id}", col_body)

    items = _data(mb.call("GET", f"/api/collection/{col_id}/items", models=["card", "dashboard"]))
    cards = {i["name"]: int(i["id"]) for i in items if i.get("model") == "card"}
    dashboards = {i["name"]: int(i["id"]) for i in items if i.get("model") == "dashboard"}

    card_ids: dict[str, int] = {}
    for key, q in spec.questions.items():
        body = {
            "name": q.name,
            "description": q.description or None,
            "display": q.display,
            "collection_id": col_id,
            "dataset_query": {"type": "native", "native": {"query": q.sql, "template-tags": {}}, "database": db_id},
            "visualization_settings": q.visualization,
        }
        if q.name in cards:
            card_ids[key] = report.note("card", q.name, cards[q.name], False)
            mb.call("PUT", f"/api/card/{cards[q.name]}", body)
        else:
            card_ids[key] = report.note("card", q.name, int(mb.call("POST", "/api/card", body)["id"]), True)

    for d in spec.dashboards:
        head = {"name": d.name, "description": d.description or None, "collection_id": col_id}
        if d.name in dashboards:
            dash_id = report.note("dashboard", d.name, dashboards[d.name], False)
        else:
            dash_id = report.note("dashboard", d.name, int(mb.call("POST", "/api/dashboard", head)["id"]), True)
        current = mb.call("GET", f"/api/dashboard/{dash_id}") or {}
        existing: dict[int, list[int]] = {}
        for dc in current.get("dashcards") or current.get("ordered_cards") or []:
            if dc.get("card_id") is not None:
                existing.setdefault(int(dc["card_id"]), []).append(int(dc["id"]))
        dashcards = []
        for n, card in enumerate(d.cards, 1):
            card_id = card_ids[card.question]
            reuse = existing.get(card_id) or []
            dashcards.append(
                {
                    "id": reuse.pop(0) if reuse else -n,
                    "card_id": card_id,
                    "col": card.col,
                    "row": card.row,
                    "size_x": card.size_x,
                    "size_y": card.size_y,
                    "parameter_mappings": [],
                    "visualization_settings": {},
                    "series": [],
                }
            )
        mb.call("PUT", f"/api/dashboard/{dash_id}", {**head, "dashcards": dashcards})
    return report


def provision_command(
    url: str = typer.Option("http://127.0.0.1:3000", help="Metabase base URL"),
    user: str = typer.Option(..., help="Metabase admin user (e-mail)"),
    password: str = typer.Option(..., help="Metabase admin password", envvar="METABASE_ADMIN_PASSWORD"),
    db_password: str = typer.Option(
        "", help="trading_reader's password (default: POSTGRES_READER_PASSWORD)", envvar="POSTGRES_READER_PASSWORD"
    ),
    db_host: str | None = typer.Option(None, help="Postgres host as Metabase sees it (default: the file's)"),
    directory: Path = typer.Option(DEFAULT_DIR, "--dir", help="Definitions (dashboards.yaml, questions/)"),
) -> None:
    """Create or update Metabase's data source (reader role), collection, questions and dashboards."""
    from rich.console import Console

    console = Console()
    try:
        spec = load_spec(directory)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if not db_password:
        console.print("[red]the reader's password is needed: --db-password or POSTGRES_READER_PASSWORD[/red]")
        raise typer.Exit(2)
    try:
        mb = Metabase(url, user, password)
    except (MetabaseError, httpx.HTTPError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    try:
        report = provision(mb, spec, db_password=db_password, db_host=db_host)
    except (MetabaseError, httpx.HTTPError) as exc:
        console.print(f"[red]provisioning stopped: {exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        mb.close()
    for kind in ("database", "collection", "card", "dashboard"):
        made, kept = len(report.created.get(kind, [])), len(report.updated.get(kind, []))
        console.print(f"{kind + 's':<12} {made} created, {kept} updated")
    dash = report.ids.get("dashboard", {})
    for name, dash_id in dash.items():
        console.print(f"  {name}: {url.rstrip('/')}/dashboard/{dash_id}")
