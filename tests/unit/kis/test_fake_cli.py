from __future__ import annotations

import io

from broker_core.kis.fake.cli import build_fake, print_banner


def test_build_fake_and_banner() -> None:
    fake = build_fake("real", port=0)
    assert fake.profile.name == "real" and fake.profile.rate_per_sec == 20 and fake.profile.balance_page == 50
    assert fake.exchange.feed.symbols
    out = io.StringIO()
    print_banner(fake, out)
    text = out.getvalue()
    assert "KIS_IS_PAPER=false" in text and f"KIS_APP_KEY={fake.profile.app_key}" in text
