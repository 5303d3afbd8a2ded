"""Auth roles and bad input over HTTP: 401/403/422 with the field named, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.oms_server import ADMIN_KEY, GOOD_ENTER, READ_KEY, STRATEGY_KEYS, auth, oms_settings, running_oms

KMP = STRATEGY_KEYS["KMP"]
GOOD = GOOD_ENTER


def _tables_written(oms: object) -> int:
    return oms.runtime.journal.last_seq()  # type: ignore[attr-defined]


async def test_roles_and_bad_bodies(tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        http = oms.http
        before = _tables_written(oms)
        assert (await http.post("/api/v1/intents", json=GOOD)).status_code == 401
        assert (await http.post("/api/v1/intents", json=GOOD, headers=auth("wrong-key-123456"))).status_code == 401
        other = await http.post("/api/v1/intents", json={**GOOD, "strategy_id": "KPR"}, headers=auth(KMP))
        assert other.status_code == 403 and "KPR" in other.json()["detail"]
        assert (await http.post("/api/v1/intents", json=GOOD, headers=auth(READ_KEY))).status_code == 403
        for path, body in [
            ("/api/v1/risk/safe-mode", {"enabled": True}),
            ("/api/v1/admin/flatten-all", None),
            ("/api/v1/admin/pause-strategy/KMP", None),
            ("/api/v1/risk/regime", {"regime": "RISK_OFF"}),
            ("/api/v1/admin/symbols/005930/disable", None),
        ]:
            for key in (READ_KEY, KMP):
                resp = await http.post(path, json=body, headers=auth(key))
                assert resp.status_code == 403, (path, key, resp.text)
        assert _tables_written(oms) == before, "refused requests must write nothing"

        cases = [
            ({**GOOD, "desired_qty": -1}, "desired_qty"),
            ({**GOOD, "intent_type": "BUY"}, "intent_type"),
            ({**GOOD, "symbol": "bad symbol!"}, "symbol"),
            ({**GOOD, "constraints": {"order_type": "LIMIT"}}, "constraints"),
            ({**GOOD, "constraints": {"limit_price": -5}}, "constraints.limit_price"),
            ({**GOOD, "unexpected": 1}, "unexpected"),
            ({k: v for k, v in GOOD.items() if k != "strategy_id"}, "strategy_id"),
            ({**GOOD, "risk_payload": {"stop_px": "abc"}}, "risk_payload.stop_px"),
        ]
        for body, field in cases:
            resp = await http.post("/api/v1/intents", json=body, headers=auth(KMP))
            assert resp.status_code == 422, (body, resp.text)
            fields = [e["field"] for e in resp.json()["detail"]]
            assert any(f == field or f.startswith(field) for f in fields), (field, fields)
        bad_json = await http.post(
            "/api/v1/intents", content=b"{not json", headers={**auth(KMP), "content-type": "application/json"}
        )
        assert bad_json.status_code == 422
        assert _tables_written(oms) == before, "invalid bodies must write nothing"
        assert await oms.get("/api/v1/intents") == []

        admin = await http.post("/api/v1/risk/safe-mode", json={"enabled": "maybe"}, headers=auth(ADMIN_KEY))
        assert admin.status_code == 422 and admin.json()["detail"][0]["field"] == "enabled"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/positions",
        "/api/v1/orders",
        "/api/v1/fills",
        "/api/v1/intents",
        "/api/v1/state/account",
        "/api/v1/strategies",
        "/api/v1/clock",
    ],
)
async def test_read_key_reads_everything(tmp_path: Path, path: str) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        assert (await oms.http.get(path, headers=auth(READ_KEY))).status_code == 200
        assert (await oms.http.get(path)).status_code == 401


async def test_admin_actions_are_audited(tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        assert (await oms.admin("/api/v1/admin/pause-strategy/KMP")).status_code == 200
        paused = (await oms.intent(KMP, **GOOD)).json()
        assert paused["status"] == "REJECTED" and paused["reason_code"] == "STRATEGY_PAUSED"
        assert (await oms.admin("/api/v1/admin/resume-strategy/KMP")).status_code == 200
        assert (await oms.admin("/api/v1/admin/symbols/005930/disable")).status_code == 200
        disabled = (await oms.intent(KMP, **{**GOOD, "idempotency_key": "k2"})).json()
        assert disabled["reason_code"] == "SYMBOL_DISABLED"
        audit = oms.runtime.journal.latest_rows(after_seq=0, table="audit_log").get("audit_log", {})
        actions = sorted(r["action"] for r in audit.values())
        assert actions == ["pause_strategy", "resume_strategy", "symbol_disable"]
        assert all(r["actor"] == "admin" for r in audit.values())


async def test_metrics_count_each_intent_once_by_its_final_status(tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        for i in range(3):
            reply = (
                await oms.intent(
                    KMP, **{**GOOD, "symbol": ["005930", "000660", "000270"][i], "idempotency_key": f"m{i}"}
                )
            ).json()
            assert reply["status"] in ("ACCEPTED", "EXECUTED"), reply
        text = (await oms.http.get("/metrics")).text
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("oms_intents_total{") and 'strategy="KMP"' in line
        )
        assert counted == 3, text
