"""Strategy processes (``kmp``, …) and their SDK (``sdk/``): they talk to the OMS over HTTP only.
They import ``broker_core`` (the contract, clock, market rules) and never ``oms`` or ``trader``."""
