"""Broker-neutral domain: models, the Broker protocol, errors, clock, calendars, market rules."""
