"""report.html: one self-contained page (inline CSS, PNGs embedded as base64 data URIs, no script, no
network) rendered from report.json's dictionary and the chart files."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from trader.report.funnel import STAGE_LABELS, STAGES

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 16px}
h1{font-size:1.5em;margin-bottom:0}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:4px}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:140px}
.card b{display:block;font-size:1.2em}.card span{color:#666;font-size:.85em}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}th,td{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pos{color:#2e7d32}.neg{color:#c62828}.why{background:#fff6e0;border-left:4px solid #e0a800;padding:8px 12px}
.why li{margin:2px 0}img{max-width:100%;height:auto;border:1px solid #eee}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:.85em}details{margin:6px 0}
"""

_METRICS = (
    ("start_value", "start value", "money"),
    ("end_value", "end value", "money"),
    ("total_return", "total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("max_drawdown", "max drawdown", "pct"),
    ("win_rate", "win rate (trades)", "pct"),
    ("day_win_rate", "win rate (days)", "pct"),
    ("exposure", "exposure (time in market)", "pct"),
    ("turnover", "turnover (traded / avg equity)", "ratio"),
    ("periods", "daily periods", "int"),
)


def _fmt(value: Any, kind: str = "auto", currency: str = "") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{float(value) * 100:.2f}%"
    if kind == "ratio":
        return f"{float(value):.2f}"
    if kind == "money":
        return f"{float(value):,.0f}" if currency == "KRW" else f"{float(value):,.2f}"
    if kind == "int" or isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "–"
    return str(value)


def _signed(value: float | None, currency: str) -> str:
    if value is None:
        return "<td class=n>–</td>"
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<td class="n {cls}">{escape(_fmt(value, "money", currency))}</td>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """A table; a cell that is already a ``<td ...>`` string is inserted as it is."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if isinstance(cell, str) and cell.startswith("<td"):
                cells.append(cell)
            else:
                cls = ' class="n"' if i in numeric else ""
                cells.append(f"<td{cls}>{escape(_fmt(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return f"<p>({escape(alt)}: no image)</p>"
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _cards(report: dict[str, Any]) -> str:
    cur = report.get("currency", "")
    p = report["metrics"]["portfolio"]
    b = report["metrics"].get("benchmark") or {}
    t = report["totals"]
    items = [
        ("start equity", _fmt(report.get("start_equity"), "money", cur)),
        ("end equity", _fmt(report.get("end_equity"), "money", cur)),
        ("return", _fmt(p.get("total_return"), "pct")),
        (f"{b.get('name', 'benchmark')} return", _fmt(b.get("total_return"), "pct")),
        ("realized P&L", _fmt(t["realized_pnl"], "money", cur)),
        ("intents · fills", f"{t['intents']:,} · {t['fills']:,}"),
        ("trades", f"{t['trades']:,}"),
    ]
    return (
        '<div class="cards">'
        + "".join(f"<div class=card><span>{escape(k)}</span><b>{escape(v)}</b></div>" for k, v in items)
        + "</div>"
    )


def _metrics_table(report: dict[str, Any]) -> str:
    cur = report.get("currency", "")
    p = report["metrics"]["portfolio"]
    b = report["metrics"].get("benchmark")
    headers = ["metric", "portfolio"] + ([b["name"]] if b else [])
    rows = []
    for key, label, kind in _METRICS:
        row = [label, _fmt(p.get(key), kind, cur)]
        if b:
            row.append(_fmt(b.get(key), kind, cur))
        rows.append(row)
    return _table(headers, rows, numeric=(1, 2))


def _strategy_table(report: dict[str, Any]) -> str:
    cur = report.get("currency", "")
    rows = []
    for sid, s in report["strategies"].items():
        rows.append(
            [
                sid,
                s["intents"],
                s["entries"],
                s["fills"],
                s["trades"],
                _fmt(s["trade_win_rate"], "pct"),
                _signed(s["realized_pnl"], cur),
                _signed(s.get("unrealized_pnl"), cur),
                s["rejections"],
                s.get("open_positions") or "–",
            ]
        )
    headers = ["strategy", "intents", "entries", "fills", "trades", "win rate", "realized P&L", "unrealized P&L"]
    return _table(headers + ["rejections (reason ×n)", "open positions"], rows, numeric=(1, 2, 3, 4, 5))


def _intents_tables(report: dict[str, Any]) -> str:
    statuses = sorted({k for s in report["strategies"].values() for k in s["intents_by_status"]})
    rows = [[sid] + [s["intents_by_status"].get(k, 0) for k in statuses] for sid, s in report["strategies"].items()]
    out = "<h3>By status</h3>" + _table(["strategy"] + statuses, rows, numeric=range(1, len(statuses) + 1))
    reason_rows = [
        [sid, status, reason, n]
        for sid, s in report["strategies"].items()
        for status, reasons in s["intents_by_status_reason"].items()
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])
    ]
    out += "<h3>By status and reason</h3>" + _table(["strategy", "status", "reason", "intents"], reason_rows, (3,))
    type_rows = [[sid, s["intents_by_type"], s["orders_by_state"]] for sid, s in report["strategies"].items()]
    headers = ["strategy", "intents by type", "orders by state"]
    out += "<h3>Intent types and order states</h3>" + _table(headers, type_rows)
    return out


def _funnel_section(report: dict[str, Any]) -> str:
    headers = ["strategy"] + [STAGE_LABELS[s][1] for s in STAGES] + ["stopped by (code ×n)"]
    rows = []
    for sid, s in report["strategies"].items():
        f = s["funnel"]
        blockers = ", ".join(f"{k} ×{v}" for k, v in list(f["blockers"].items())[:8]) or "–"
        rows.append([sid] + [f["stages"].get(k) for k in STAGES] + [blockers])
    sentences = "".join(f"<li>{escape(s['funnel']['sentence'])}</li>" for s in report["strategies"].values())
    return _table(headers, rows, numeric=range(1, len(STAGES) + 1)) + f"<ul>{sentences}</ul>"


def _days_table(report: dict[str, Any]) -> str:
    cur = report.get("currency", "")
    rows = [
        [
            d["date"] + ("" if d["session"] else " (no session)"),
            d["intents"],
            d["entries"],
            d["fills"],
            _signed(d["realized_pnl"], cur),
            _signed(d.get("pnl"), cur),
            _fmt(d.get("equity"), "money", cur),
            ", ".join(
                f"{sid} {v['intents']}/{v['entries']}/{v['fills']}"
                for sid, v in d["by_strategy"].items()
                if v["intents"] or v["fills"]
            )
            or "–",
        ]
        for d in report["days"]
    ]
    headers = ["day", "intents", "entries", "fills", "realized P&L", "day P&L", "equity at close"]
    return _table(headers + ["by strategy (intents/entries/fills)"], rows, numeric=(1, 2, 3, 6))


def _trades_table(report: dict[str, Any]) -> str:
    cur = report.get("currency", "")
    rows = [
        [
            t["strategy"],
            t["symbol"],
            t["qty"],
            t["entry_ts"] or "–",
            t["exit_ts"],
            t["entry_px"],
            t["exit_px"],
            _fmt(t["return_pct"] / 100 if t["return_pct"] is not None else None, "pct"),
            _signed(t["pnl"], cur),
            t["r_multiple"],
            t["exit_reason"] or "–",
        ]
        for t in report["trades"]
    ]
    headers = ["strategy", "symbol", "qty", "entry", "exit", "entry px", "exit px", "return", "P&L", "R", "exit reason"]
    return _table(headers, rows, numeric=(2, 5, 6, 7, 9))


def _decisions(report: dict[str, Any]) -> str:
    out = []
    for sid, s in report["strategies"].items():
        codes = s.get("decisions") or {}
        where = s.get("decision_log") or "no decision log"
        rows = list(codes.items())
        out.append(
            f"<details><summary>{escape(sid)}: {sum(codes.values()):,} decisions ({escape(where)})</summary>"
            + _table(["code", "count"], rows, numeric=(1,))
            + "</details>"
        )
    return "".join(out)


def _slots_section(report: dict[str, Any]) -> str:
    """The WebSocket slot budget at the end of the run: capacity, peak, and each owner's lease."""
    slots = report.get("slots")
    if not isinstance(slots, dict) or "leases" not in slots:
        return ""
    rows = []
    for owner, lease in sorted(slots["leases"].items()):
        window = lease.get("window") or {}
        span = f"{window.get('start') or '–'}–{window.get('end') or '–'}"
        rows.append((owner, lease.get("priority"), lease.get("max_slots"), span, lease.get("peak"), lease.get("count")))
    return (
        f'<h2>WebSocket slots</h2><p class="sub">capacity {slots.get("capacity")} · peak in use '
        f"{slots.get('peak_used')} · in use at the end {slots.get('used')}</p>"
        + _table(["owner", "priority", "max slots", "window", "peak", "at the end"], rows, numeric=(1, 2, 4, 5))
    )


def render_html(report: dict[str, Any], charts: dict[str, Path]) -> str:
    span = report["from"] if report["from"] == report["to"] else f"{report['from']} … {report['to']}"
    title = f"{report['market'].upper()} run {span}"
    why = report.get("why_nothing_traded") or []
    why_html = (
        '<div class="why"><b>Why nothing traded</b><ul>' + "".join(f"<li>{escape(s)}</li>" for s in why) + "</ul></div>"
        if why
        else ""
    )
    notes = report.get("notes") or []
    extra_keys = {k: v for k, v in report.items() if k in ("kind", "speed", "wall_seconds", "exit_codes", "run_dir")}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{report["sessions"]} session(s) · amounts in {escape(str(report.get("currency", "")))} · '
        f"times in {escape(str(report.get('timezone', '')))} · generated {escape(str(report.get('generated_at')))} · "
        f"database {escape(str(report.get('database')))}</p>",
        _cards(report),
        why_html,
        "<h2>Equity and drawdown against the benchmark</h2>",
        _img(charts.get("equity"), "equity curve"),
        _img(charts.get("drawdown"), "drawdown"),
        f'<p class="sub">{escape(report.get("equity_method", ""))}</p>',
        "<h2>Metrics</h2>",
        _metrics_table(report),
        "<h2>P&amp;L per strategy</h2>",
        _img(charts.get("pnl_by_strategy"), "P&L by strategy"),
        _strategy_table(report),
        "<h2>Funnel per strategy</h2>",
        _img(charts.get("funnel"), "funnel"),
        _funnel_section(report),
        "<h2>Per day</h2>",
        _days_table(report),
        _slots_section(report),
        "<h2>Intents by status and reason</h2>",
        _intents_tables(report),
        f"<h2>Trades ({len(report['trades'])})</h2>",
        _trades_table(report),
        "<h2>Strategy decisions (reason codes from the logs)</h2>",
        _decisions(report),
    ]
    if notes:
        parts += ["<h2>Notes</h2><ul>", "".join(f"<li>{escape(n)}</li>" for n in notes), "</ul>"]
    if extra_keys:
        run_json = escape(json.dumps(extra_keys, indent=2, default=str))
        parts += ["<details><summary>run</summary><pre>", run_json, "</pre></details>"]
    parts.append("</body></html>")
    return "\n".join(parts)
