"""The one place sources are registered: name -> connector module."""

from __future__ import annotations

from connectors import gmail
from connectors.base import Connector

CONNECTORS: dict[str, Connector] = {gmail.name: gmail}


def get_connector(name: str) -> Connector:
    """The connector registered under `name`; KeyError naming the known ones otherwise."""
    try:
        return CONNECTORS[name]
    except KeyError:
        raise KeyError(f"no connector {name!r}; known: {sorted(CONNECTORS)}") from None
