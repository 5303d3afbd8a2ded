"""A fake Metabase REST API (a real local HTTP server) for ``trader metabase provision``.

Modelled on Metabase's documented endpoints (docs/api: session, database, collection, card, dashboard):
``POST /api/session`` returns ``{"id": token}`` and every other call needs ``X-Metabase-Session``;
``GET /api/database`` answers ``{"data": [...]}``; ``GET /api/collection`` a list;
``GET /api/collection/:id/items?models=...`` ``{"data": [...]}`` with each item's ``model``;
``PUT /api/dashboard/:id`` with ``dashcards`` replaces the dashboard's cards: an existing id is updated, a
negative id is created, an existing card left out is deleted. Required fields are checked as Metabase checks
them (400 otherwise). Every object ever created is counted per kind.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeMetabase:
    def __init__(self, user: str = "admin@example.com", password: str = "metabase-admin-pw") -> None:
        self.user, self.password = user, password
        self.sessions: set[str] = set()
        self.objects: dict[str, dict[int, dict[str, Any]]] = {
            "database": {},
            "collection": {},
            "card": {},
            "dashboard": {},
            "dashcard": {},
        }
        self.created: Counter[str] = Counter()
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    self._send(400, {"message": "malformed JSON"})
                    return
                with fake._lock:
                    fake.requests.append((method, url.path))
                    status, reply = fake.handle(
                        method, url.path, parse_qs(url.query), body, self.headers.get("X-Metabase-Session")
                    )
                self._send(status, reply)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._handle("PUT")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- the API --------------------------------------------------------------------------------------------
    def _new(self, kind: str, values: dict[str, Any]) -> dict[str, Any]:
        obj = {**values, "id": next(self._ids)}
        self.objects[kind][obj["id"]] = obj
        self.created[kind] += 1
        return obj

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any], session: str | None
    ) -> tuple[int, Any]:
        if (method, path) == ("POST", "/api/session"):
            if body.get("username") != self.user or body.get("password") != self.password:
                return 401, {"errors": {"password": "did not match stored password"}}
            token = str(uuid.uuid4())
            self.sessions.add(token)
            return 200, {"id": token}
        if session not in self.sessions:
            return 401, "Unauthenticated"
        m = re.fullmatch(r"/api/(database|collection|card|dashboard)/?(\d+)?(/items)?", path)
        if m is None:
            return 404, "API endpoint does not exist."
        kind, ident, items = m.group(1), m.group(2), m.group(3)
        store = self.objects[kind]
        if ident is not None and int(ident) not in store:
            return 404, "Not found."
        if method == "GET" and ident is None:
            listing = [o for o in store.values() if not o.get("archived")]
            return 200, listing if kind == "collection" else {"data": listing, "total": len(listing)}
        if method == "GET" and items:
            models = set(query.get("models", [])) or {"card", "dashboard"}
            found = [
                {"id": o["id"], "name": o["name"], "model": k}
                for k in ("card", "dashboard")
                if k in models
                for o in self.objects[k].values()
                if o.get("collection_id") == int(ident or 0) and not o.get("archived")
            ]
            return 200, {"data": found, "total": len(found)}
        if method == "GET":
            obj = dict(store[int(ident or 0)])
            if kind == "dashboard":
                obj["dashcards"] = [
                    dict(d) for d in self.objects["dashcard"].values() if d["dashboard_id"] == obj["id"]
                ]
            return 200, obj
        problem = self._invalid(kind, body, creating=method == "POST")
        if problem:
            return 400, {"errors": problem}
        if method == "POST" and ident is None:
            values = {k: v for k, v in body.items() if k != "dashcards"}
            if kind == "collection":
                values.setdefault("location", "/")
            return 200, self._new(kind, values)
        if method == "PUT" and ident is not None:
            obj = store[int(ident)]
            obj.update({k: v for k, v in body.items() if k not in ("dashcards", "id")})
            if kind == "dashboard" and "dashcards" in body:
                return self._put_dashcards(obj, body["dashcards"])
            return 200, obj
        return 405, "Method not allowed"

    def _invalid(self, kind: str, body: dict[str, Any], creating: bool) -> dict[str, str]:
        errors: dict[str, str] = {}
        if (creating or "name" in body) and not str(body.get("name") or "").strip():
            errors["name"] = "value must be a non-blank string."
        if kind == "database" and creating:
            if not body.get("engine"):
                errors["engine"] = "value must be a valid database engine."
            if not isinstance(body.get("details"), dict):
                errors["details"] = "Value must be a map."
        if kind == "card" and creating:
            if not str(body.get("display") or "").strip():
                errors["display"] = "value must be a non-blank string."
            query = body.get("dataset_query")
            if not isinstance(query, dict):
                errors["dataset_query"] = "Value must be a map."
            elif query.get("database") not in self.objects["database"]:
                errors["dataset_query"] = "unknown database"
            if not isinstance(body.get("visualization_settings"), dict):
                errors["visualization_settings"] = "Value must be a map."
        return errors

    def _put_dashcards(self, dashboard: dict[str, Any], dashcards: list[dict[str, Any]]) -> tuple[int, Any]:
        ids = [d.get("id") for d in dashcards]
        if len(ids) != len(set(ids)):
            return 400, {"errors": {"dashcards": "value must be seq of maps in which ids are unique"}}
        mine = {i for i, d in self.objects["dashcard"].items() if d["dashboard_id"] == dashboard["id"]}
        keep = set()
        for dc in dashcards:
            if dc.get("card_id") not in self.objects["card"]:
                return 400, {"errors": {"dashcards": f"unknown card {dc.get('card_id')}"}}
            if dc["id"] < 0:
                self._new("dashcard", {**{k: v for k, v in dc.items() if k != "id"}, "dashboard_id": dashboard["id"]})
            elif dc["id"] in mine:
                self.objects["dashcard"][dc["id"]].update(dc)
                keep.add(dc["id"])
            else:
                return 400, {"errors": {"dashcards": f"dashcard {dc['id']} is not on this dashboard"}}
        for gone in mine - keep:
            del self.objects["dashcard"][gone]
        return 200, {
            **dashboard,
            "dashcards": [d for d in self.objects["dashcard"].values() if d["dashboard_id"] == dashboard["id"]],
        }
