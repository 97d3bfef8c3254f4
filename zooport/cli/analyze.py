"""``zooport dataset convert|browse|stats``: dataset tools (placeholder, filled below)."""
from __future__ import annotations


def register(sub) -> None:
    pass
