"""infra/prometheus: the alert rules name only metrics the OMS really exports (scraped from a running OMS),
each alert the issue asks for exists, and the scrape configs point at the OMS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.deploy.conftest import REPO
from tests.support.oms_server import oms_settings, running_oms
from tests.support.trading import heartbeat

PROM = REPO / "infra" / "prometheus"
RULES = PROM / "alerts.yml"
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
FUNCTIONS_AND_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "inf",
    "nan",
}
REQUIRED = {
    "OmsDown",
    "CircuitBreakerOpen",
    "JournalBacklogGrowing",
    "ReconciliationFail",
    "DriftFrozenSymbols",
    "StrategyHeartbeatStale",
    "DayLossHalt",
    "DatabaseUnavailable",
}
_SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, ranges, strings and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        tail = text[m.end() :].lstrip()
        if tail.startswith("(") or m.group(0).lower() in FUNCTIONS_AND_KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", m.group(0)):
            continue
        names.add(m.group(0))
    return names


def exported(metrics_text: str) -> set[str]:
    """Every sample name a scrape can hold: the families' TYPE lines with their suffixes, and the samples."""
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "counter":
                names.update({f"{name}_total", f"{name}_created"})
            if kind in ("histogram", "summary"):
                names.update(f"{name}{s}" for s in _SUFFIXES[1:])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def unknown_metrics(rules: dict[str, Any], available: set[str]) -> dict[str, set[str]]:
    out = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            missing = metric_names(rule["expr"]) - available - PROMETHEUS_OWN
            if missing:
                out[rule.get("alert") or rule.get("record")] = missing
    return out


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text())


async def test_every_rule_reads_metrics_the_oms_exports(rules: dict[str, Any], tmp_path: Path) -> None:
    async with running_oms(oms_settings(tmp_path)) as oms:
        await heartbeat(oms, "KMP")
        text = (await oms.http.get("/metrics")).text
    available = exported(text)
    assert "oms_strategy_heartbeat_age_seconds" in available and 'strategy="KMP"' in text
    assert unknown_metrics(rules, available) == {}

    broken = {"groups": [{"name": "x", "rules": [{"alert": "Typo", "expr": "oms_circuit_breaker_status == 2"}]}]}
    assert unknown_metrics(broken, available) == {"Typo": {"oms_circuit_breaker_status"}}, "the check catches a typo"


def test_the_alerts_the_issue_asks_for(rules: dict[str, Any]) -> None:
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert REQUIRED <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"], name
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), name
    assert metric_names(alerts["JournalBacklogGrowing"]["expr"]) == {"oms_journal_backlog"}
    assert metric_names('sum by (strategy) (rate(oms_fills_total{strategy="KMP"}[5m])) > 0') == {"oms_fills_total"}


@pytest.mark.parametrize("host", ["vps1", "vps2"])
def test_scrape_config_points_at_the_oms_and_the_rules(host: str) -> None:
    cfg = yaml.safe_load((PROM / f"prometheus.{host}.yml").read_text())
    assert cfg["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (job,) = cfg["scrape_configs"]
    assert job["job_name"] == "oms" and job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["oms:8000"]
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    am = yaml.safe_load((PROM / "alertmanager.yml").read_text())
    assert am["route"]["receiver"] == am["receivers"][0]["name"]
    assert am["receivers"][0]["slack_configs"][0]["api_url_file"] == "/alertmanager/webhook_url"
