"""The one place sources are registered: name -> connector module."""

from __future__ import annotations

from connectors import (
    gmail,
    google_calendar,
    google_contacts,
    hubspot,
    outlook_calendar,
    outlook_contacts,
    outlook_mail,
    salesforce,
)
from connectors.base import Connector

CONNECTORS: dict[str, Connector] = {gmail.name: gmail}
CONNECTORS |= {c.name: c for c in (google_calendar, google_contacts)}
CONNECTORS |= {c.name: c for c in (outlook_mail, outlook_calendar, outlook_contacts)}
CONNECTORS[salesforce.name] = salesforce
CONNECTORS[hubspot.name] = hubspot


def get_connector(name: str) -> Connector:
    """The connector registered under `name`; KeyError naming the known ones otherwise."""
    try:
        return CONNECTORS[name]
    except KeyError:
        raise KeyError(f"no connector {name!r}; known: {sorted(CONNECTORS)}") from None
