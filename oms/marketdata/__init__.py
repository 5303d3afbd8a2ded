"""Market data in the OMS: the account's slot budget, the stream fan-out hub and the REST proxy.

- :mod:`oms.marketdata.slots` — :class:`SlotBook`: leases per strategy (priority, KST window,
  max slots), one slot per symbol, eviction rules; pure.
- :mod:`oms.marketdata.consumer` — :class:`StreamConsumer` (one stream socket: critical events never
  dropped, market events conflated when it lags) and :class:`StreamBus`.
- :mod:`oms.marketdata.hub` — :class:`MarketDataHub`: upstream subscriptions kept equal to the
  slots, reference counting, fan-out, window ends and the stale-feed watchdog.
- :mod:`oms.marketdata.proxy` — :class:`MarketDataProxy`: REST quotes/bars/daily/investor flow with
  the rate budget, in-flight de-duplication and caching.
"""

from oms.marketdata.consumer import StreamBus, StreamConsumer
from oms.marketdata.hub import HubBrokerView, MarketDataHub
from oms.marketdata.proxy import MarketDataProxy, NotSupported, UnknownSymbol
from oms.marketdata.slots import SYSTEM_OWNER, LeasePolicy, Release, RequestResult, SlotBook

__all__ = [
    "HubBrokerView",
    "LeasePolicy",
    "MarketDataHub",
    "MarketDataProxy",
    "NotSupported",
    "Release",
    "RequestResult",
    "SYSTEM_OWNER",
    "SlotBook",
    "StreamBus",
    "StreamConsumer",
    "UnknownSymbol",
]
