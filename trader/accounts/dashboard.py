"""``trader dashboard``: a read-only terminal view over every account ``trader accounts`` runs on this host
(Textual; fits 80×24, so it works over ssh). Left: the accounts with their health; right: the selected
account's equity and day P&L, last and next cycle, positions, each model's target weights (its last audit
line), recent orders and its processes. Refreshes every ``refresh_s`` seconds; ``--once`` prints the same
view of every account as plain text and exits 0 only when every account's OMS is ``ok`` (the compose
health check, cron, a quick look)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, OptionList, Static

from trader.accounts.views import AccountView, fetch_view, load_status

MARK = {"ok": "●", "degraded": "◐", "stopped": "○"}


def _money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def render(view: AccountView) -> Group:
    """The right-hand panel of one account (also what ``--once`` prints)."""
    head = Text()
    head.append(f"{view.name} ", style="bold")
    head.append(f"{view.broker} · {view.health}", style="green" if view.health == "ok" else "yellow")
    if view.reasons:
        head.append(f" ({', '.join(view.reasons)})", style="yellow")
    head.append(f"\nequity {_money(view.equity)} USD · day P&L ")
    head.append(_money(view.day_pnl), style="green" if (view.day_pnl or 0) >= 0 else "red")
    head.append(f"\nlast cycle {view.last_cycle} · next {view.next_cycle}")
    if view.error:
        head.append(f"\nOMS unreachable: {view.error}", style="red")
    positions = Table("symbol", "shares", "last", "value", title="positions", expand=True, title_justify="left")
    for symbol, qty, last, value in view.positions:
        positions.add_row(symbol, str(qty), _money(last), _money(value))
    targets = Table("model", "session", "action", "target weights", title="models", expand=True, title_justify="left")
    for row in view.targets:
        targets.add_row(*row)
    orders = Table("time NY", "strategy", "symbol", "side", "qty", "state", title="recent orders", expand=True)
    for when, sid, symbol, side, qty, state in view.orders:
        orders.add_row(when, sid, symbol, side, str(qty), state)
    procs = Text(
        "processes: "
        + ", ".join(
            f"{n.split('.', 1)[-1]} {'up' if up else 'DOWN'}" + (f" ↻{r}" if r else "") for n, up, r in view.processes
        )
    )
    return Group(head, positions, targets, orders, procs)


class AccountsDashboard(App[None]):
    CSS = """
    #accounts { width: 22; }
    #detail { width: 1fr; }
    """
    BINDINGS = [Binding("q", "quit", "quit"), Binding("r", "refresh_now", "refresh")]

    def __init__(self, state_dir: Path, refresh_s: float = 2.0) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.refresh_s = refresh_s
        self.views: list[AccountView] = []
        self.selected = 0

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield OptionList(id="accounts")
            with VerticalScroll(id="detail"):
                yield Static("reading status.json …", id="view")
        yield Footer()

    async def on_mount(self) -> None:
        self.title = "trader accounts"
        await self.action_refresh_now()
        self.set_interval(self.refresh_s, self.action_refresh_now)

    async def action_refresh_now(self) -> None:
        entries = await asyncio.to_thread(load_status, self.state_dir)
        self.views = await asyncio.gather(*(asyncio.to_thread(fetch_view, e, self.state_dir) for e in entries))
        accounts = self.query_one("#accounts", OptionList)
        highlighted = accounts.highlighted if accounts.highlighted is not None else self.selected
        accounts.clear_options()
        accounts.add_options([f"{MARK.get(v.health, '✕')} {v.name}" for v in self.views])
        if self.views:
            self.selected = min(highlighted, len(self.views) - 1)
            accounts.highlighted = self.selected
        self._show()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.selected = event.option_index
        self._show()

    def _show(self) -> None:
        view = self.query_one("#view", Static)
        if not self.views:
            view.update(f"no accounts yet: is `trader accounts` running? ({self.state_dir / 'status.json'})")
            return
        view.update(render(self.views[self.selected]))


def print_once(state_dir: Path, console: Console) -> int:
    entries = load_status(state_dir)
    if not entries:
        console.print(f"no accounts: {state_dir / 'status.json'} not found — is `trader accounts` running?")
        return 1
    healthy = True
    for entry in entries:
        view = fetch_view(entry, state_dir)
        healthy = healthy and view.health == "ok" and view.error is None
        console.print(render(view))
        console.rule()
    return 0 if healthy else 1
