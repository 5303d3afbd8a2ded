"""``OMS_BROKER=kis``: the KIS adapter built from the environment (see broker_core/kis/settings.py).

The access token and the adapter's order map live on the OMS volume (``OMS_DATA_DIR``), so a restart
reuses the token instead of burning the once-a-minute issuance, and client order ids keep their KIS
order numbers. In paper mode the real credentials (KIS_APP_KEY/KIS_APP_SECRET), when given, serve
only market-data calls the paper host lacks — never orders.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from broker_core.clock import Clock
from broker_core.config_errors import ConfigError
from broker_core.kis.broker import KisBroker
from broker_core.kis.settings import KisConfigError, KisSettings
from broker_core.ratelimit import RateLimiter
from oms.settings import OmsConfig, OmsSettings

log = logging.getLogger("oms.kis")


def build_kis_broker(
    settings: OmsSettings,
    config: OmsConfig,
    clock: Clock,
    *,
    env: Mapping[str, str] | None = None,
    limiter: RateLimiter | None = None,
) -> KisBroker:
    """The KIS broker for this OMS. ``limiter`` (optional) replaces the adapter's own rate limiter
    (by default one on the OMS clock at the KIS budget: 20/s real, 2/s paper, KIS_RATE_PER_SEC)."""
    try:
        kis = KisSettings.from_env(os.environ if env is None else env)
    except KisConfigError as exc:
        raise ConfigError(str(exc)) from exc
    data_dir = Path(settings.oms_data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "KIS broker: %s account %s-%s, REST %s, WS %s%s",
        kis.profile,
        kis.account_no[:2] + "******",
        kis.account_prod_code,
        kis.rest_url,
        kis.ws_url,
        ", real-host market data enabled" if kis.real_credentials else "",
    )
    return KisBroker(kis, clock=clock, data_dir=data_dir, limiter=limiter)
