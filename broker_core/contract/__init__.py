"""The OMS API v1 contract, shared by the OMS (which serves it) and the strategy SDK (which sends it):
enums, reason codes and wire models. Defined once here; imports nothing from ``oms`` or ``strategies``."""
