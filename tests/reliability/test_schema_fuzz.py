"""Schema fuzzing of the OpenAPI document: ``/openapi.json`` must describe what the service returns.

A bounded, deterministic Schemathesis campaign (every phase its engine runs — examples, coverage,
fuzzing, stateful — with **all** checks: no server error, status codes, content types, headers and
bodies conform to the schema, schema-violating input refused, schema-valid input accepted, auth not
ignored, ``Allow`` on 405 …) against a running OMS, once with a strategy key and once with the admin
key, must find nothing. Admin actions (flatten-all, safe mode, pause) are fair game: they change what
later intents are told, not whether the API answers as documented.

One kind of generated body is left out, because JSON Schema cannot state the rule the OMS enforces
(``broker_core.contract.bounds.json_problem``): a heartbeat ``status`` with a control character, too
deep a nesting or too many items below the level the schema describes. Everything else is sent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from broker_core.contract.bounds import json_problem
from tests.support.oms_server import ADMIN_KEY, STRATEGY_KEYS, auth, oms_settings, running_oms, sim_clock
from tests.support.pg import create_database, drop_database

MAX_EXAMPLES = 10
"""Per operation and phase; with the coverage phase's own cases about 700 requests per campaign."""


@dataclass
class Campaign:
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    stop_reason: str = ""
    operations: set[str] = field(default_factory=set)


def _describable(body: Any) -> bool:
    """False for a heartbeat body whose ``status`` breaks a rule the schema cannot state."""
    status = body.get("status") if isinstance(body, dict) else None
    return not isinstance(status, dict) or json_problem(status) is None


def run_campaign(url: str, key: str, max_examples: int = MAX_EXAMPLES) -> Campaign:
    """One Schemathesis run with every check (blocking: run it in a thread while the OMS serves)."""
    config = SchemathesisConfig()
    config.update(seed=20260227, max_failures=None)
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    schema.config.update(headers=auth(key), base_url=url, workers=1, request_timeout=30)
    schema.config.checks.update(included_check_names=["all"])
    schema.config.generation.update(max_examples=max_examples, deterministic=True)

    @schema.hook("filter_body")
    def _only_describable(_: Any, body: Any) -> bool:
        return _describable(body)

    result = Campaign()
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            result.cases += len(recorder.cases)
            result.operations.add(recorder.label)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        interaction = recorder.interactions.get(case_id)
                        sent = interaction.request if interaction else None
                        got = interaction.response if interaction and interaction.response else None
                        result.failures.append(
                            f"{recorder.label} [{check.name}] {sent.method if sent else ''} {sent.uri if sent else ''} "
                            f"body={(sent.body or b'')[:200]!r} -> {got.status_code if got else '-'} "
                            f"{(got.content or b'')[:300]!r}"
                        )
        elif isinstance(event, events.NonFatalError):
            result.failures.append(f"error in {event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            result.failures.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            result.stop_reason = str(event.stop_reason)
    result.wall_s = time.monotonic() - started
    return result


def _report(name: str, c: Campaign) -> str:
    return (
        f"schemathesis {schemathesis.SCHEMATHESIS_VERSION} [{name}]: {c.cases} cases on {len(c.operations)} "
        f"operations/scenarios, {len(c.failures)} failures, {c.wall_s:.1f} s, stop={c.stop_reason}"
    )


async def _fuzz(url: str, key: str, name: str) -> Campaign:
    campaign = await asyncio.to_thread(run_campaign, url, key)
    print(_report(name, campaign))
    assert campaign.stop_reason == "completed", _report(name, campaign)
    assert campaign.cases >= 200 and len(campaign.operations) >= 30, _report(name, campaign)
    assert not campaign.failures, _report(name, campaign) + "\n" + "\n".join(campaign.failures[:20])
    return campaign


@pytest.mark.parametrize("who", ["strategy", "admin"])
async def test_the_schema_describes_every_reply(tmp_path: Path, who: str) -> None:
    key = ADMIN_KEY if who == "admin" else STRATEGY_KEYS["KMP"]
    async with running_oms(oms_settings(tmp_path), clock=sim_clock(9, 30, speed=30)) as oms:
        await _fuzz(oms.url, key, f"sqlite/{who}")
        health = (await oms.http.get("/health")).json()
        assert health["status"] in ("ok", "degraded"), health  # the campaign left the OMS serving


@pytest.mark.postgres
async def test_the_schema_holds_on_postgres(tmp_path: Path) -> None:
    name, url = create_database()
    try:
        settings = oms_settings(tmp_path, database_url=url)
        async with running_oms(settings, clock=sim_clock(9, 30, speed=30)) as oms:
            await _fuzz(oms.url, ADMIN_KEY, "postgres/admin")
    finally:
        drop_database(name)


async def test_the_document_declares_the_apps_error_shapes(tmp_path: Path) -> None:
    """The 422 of every operation with input is the app's ``{"detail": [{field, msg, type}]}``; every
    authenticated operation declares 401; FastAPI's ``HTTPValidationError`` (never sent) is gone."""
    async with running_oms(oms_settings(tmp_path)) as oms:
        doc = (await oms.http.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["FieldError"]["required"] == ["field", "msg", "type"]
    public = {"/health", "/metrics"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            replies = op["responses"]
            where = f"{method.upper()} {path}"
            if op.get("parameters") or op.get("requestBody"):
                assert replies["422"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ValidationErrorOut"
                }, where
            if op.get("requestBody"):
                assert {"400", "413"} <= set(replies), where
            if path not in public:
                assert {"401", "503"} <= set(replies), where
            assert "default" not in replies, where
            for code, reply in replies.items():
                content = reply.get("content", {}).get("application/json")
                assert content is None or content.get("schema"), (where, code)
