"""Sector rotation (specs/sector_rotation.md): the pure rules of the four daily models and of the
weights → orders step. No HTTP, no processes: the wiring onto the strategy SDK comes on top."""
