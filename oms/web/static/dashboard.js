// The OMS dashboard's live updates: polls the OMS API (the login cookie stands for the read key on GETs)
// and redraws the server-rendered sections in place. No build step, no other library than uPlot.
(function () {
  "use strict";
  const POLL_MS = Number(document.body.dataset.pollMs || 2000);
  const $ = (id) => document.getElementById(id);
  let polls = 0;
  let chart = null;

  const esc = (v) =>
    v === null || v === undefined
      ? ""
      : String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const num = (v, digits) =>
    v === null || v === undefined || v === ""
      ? ""
      : Number(v).toLocaleString("en-US", { minimumFractionDigits: digits || 0, maximumFractionDigits: digits || 0 });
  const hms = (iso) => {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return esc(iso);
    return d.toLocaleTimeString("en-GB", { timeZone: "Asia/Seoul", hour12: false });
  };
  const signed = (v) => `<span class="${Number(v) < 0 ? "neg" : "pos"}">${num(v)}</span>`;

  function rows(tbodyOf, list, cols, empty) {
    const body = $(tbodyOf).querySelector("tbody");
    body.innerHTML = list.length
      ? list.map((r) => "<tr>" + r.map((c) => `<td>${c}</td>`).join("") + "</tr>").join("")
      : `<tr class="empty"><td colspan="${cols}">${esc(empty)}</td></tr>`;
  }

  async function get(path) {
    const resp = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (resp.status === 401) {
      window.location.assign("/dashboard");
      throw new Error("signed out");
    }
    if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
    return resp.json();
  }

  function setText(id, html) {
    const el = $(id);
    if (el) el.innerHTML = html;
  }

  function drawRisk(h, a) {
    const status = $("status");
    status.textContent = h.status;
    status.dataset.status = h.status;
    setText("h-status", esc(h.status));
    setText("h-db", esc(h.db));
    setText("h-breaker", esc(h.kis_circuit_breaker));
    setText("h-recon", esc(h.recon_status));
    setText("h-backlog", num(h.journal_backlog));
    setText("a-safe", esc(a.safe_mode));
    setText("a-halt", esc(a.halt_new_entries));
    setText("a-trading", esc(a.trading_state));
    setText("a-frozen", esc(Object.keys(a.frozen_symbols || {}).join(", ") || "none"));
    setText("a-equity", num(a.equity));
    setText("a-cash", num(a.buyable_cash));
    setText("a-pnl", signed(a.daily_pnl));
    setText("a-pnl-pct", num((a.daily_pnl_pct || 0) * 100, 2));
    setText("a-realized", num(a.realized_pnl));
  }

  function drawPositions(positions) {
    const list = Object.entries(positions).map(([sym, p]) => {
      const last = p.last_price || p.avg_price;
      const value = (p.real_qty || 0) * (last || 0);
      const upnl = (p.real_qty || 0) * ((last || 0) - (p.avg_price || 0));
      const allocs = Object.keys(p.allocations || {})
        .sort()
        .map((s) => `${esc(s)}:${p.allocations[s].qty}`)
        .join(", ");
      return [
        `<span class="sym" data-symbol="${esc(sym)}">${esc(sym)}</span>`,
        num(p.real_qty),
        num(p.avg_price, 1),
        num(last, 1),
        num(value),
        signed(upnl),
        allocs,
        p.frozen ? "frozen" : "",
      ];
    });
    rows("positions", list, 8, "no positions");
  }

  function drawOrders(orders) {
    rows(
      "orders",
      orders.map((o) => [
        hms(o.created_at), esc(o.strategy_id), esc(o.symbol), esc(o.side), num(o.qty), num(o.filled_qty),
        esc(o.order_type), num(o.limit_price, 1), esc(o.state),
      ]),
      9,
      "no working orders",
    );
  }

  function drawFills(fills) {
    rows(
      "fills",
      fills.map((f) => [hms(f.ts), esc(f.strategy_id), esc(f.symbol), esc(f.side), num(f.qty), num(f.price, 1)]),
      6,
      "no fills today",
    );
  }

  function drawSlots(s) {
    setText("slots-head", esc(`${s.used || 0} of ${s.capacity || 0} used, ${s.free || 0} free`));
    const list = Object.entries(s.leases || {}).map(([owner, l]) => {
      const w = l.window || {};
      return [
        esc(owner), num(l.count), esc(l.max_slots === null ? "—" : l.max_slots), num(l.priority),
        esc(w.start || w.end ? `${w.start || ""}–${w.end || ""}` : "all day"), l.in_window ? "yes" : "no",
      ];
    });
    rows("slots", list, 6, "no leases");
  }

  function drawStrategies(strategies, nowIso) {
    const now = new Date(nowIso);
    const list = Object.entries(strategies).map(([sid, s]) => {
      const hb = s.last_heartbeat;
      const age = hb ? `${Math.round((now - new Date(hb)) / 1000)} s` : "never";
      const pos = Object.keys(s.positions || {})
        .sort()
        .map((k) => `${k}:${s.positions[k]}`)
        .join(", ");
      return [esc(sid), s.paused ? "paused" : "running", hms(hb), age, num(s.realized_pnl), num(s.fills_today), esc(pos)];
    });
    rows("strategies", list, 7, "no strategy has reported");
  }

  function drawCurve(c) {
    const box = $("curve");
    if (!window.uPlot || !box) return;
    const data = [c.ts, c.equity, c.daily_pnl];
    if (chart) {
      chart.setData(data);
      return;
    }
    chart = new window.uPlot(
      {
        width: Math.max(320, box.clientWidth || 800),
        height: 220,
        tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Asia/Seoul"),
        series: [
          {},
          { label: "equity", stroke: "#2563eb", width: 2, scale: "eq" },
          { label: "day P&L", stroke: "#16a34a", dash: [6, 4], scale: "pnl" },
        ],
        axes: [{}, { scale: "eq", size: 110 }, { scale: "pnl", side: 1, size: 80, grid: { show: false } }],
      },
      data,
      box,
    );
  }

  async function poll() {
    try {
      const [h, clock] = await Promise.all([get("/health"), get("/api/v1/clock")]);
      const dayStart = `${clock.now.slice(0, 10)}T00:00:00${clock.now.slice(-6)}`;
      const [a, positions, orders, fills, strategies, slots, curve] = await Promise.all([
        get("/api/v1/state/account"),
        get("/api/v1/positions"),
        get("/api/v1/orders?open_only=true"),
        get(`/api/v1/fills?since=${encodeURIComponent(dayStart)}`),
        get("/api/v1/strategies"),
        get("/api/v1/marketdata/slots"),
        get("/dashboard/equity"),
      ]);
      drawRisk(h, a);
      drawPositions(positions);
      drawOrders(orders);
      drawFills(fills);
      drawStrategies(strategies, clock.now);
      drawSlots(slots);
      drawCurve(curve);
      polls += 1;
      setText("clock", hms(clock.now));
      setText("updated-at", new Date().toLocaleTimeString("en-GB", { hour12: false }));
      setText("polls", String(polls));
      document.body.classList.remove("stale");
    } catch (err) {
      document.body.classList.add("stale");
    } finally {
      window.setTimeout(poll, POLL_MS);
    }
  }

  try {
    drawCurve(JSON.parse($("curve-data").textContent));
  } catch (err) {
    document.body.classList.add("stale");
  }
  window.setTimeout(poll, 0);
})();
