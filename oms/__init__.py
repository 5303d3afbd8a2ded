"""The order-management service and nothing else: app and routers (``api/``), framework-free domain
logic (``core/``), market data (``marketdata/``) and persistence (``store/``). It imports only
``broker_core``; the ``trader`` command hands it the broker wiring (:class:`oms.venue.Venue`)."""
