"""The composition layer and the ``trader`` command: starts and wires the OMS, the strategies and the
tools (demo, replay, config check, up). It may import every other room; nothing imports it."""
