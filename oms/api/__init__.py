"""HTTP API of the OMS (v1): one router per resource, one auth dependency."""
