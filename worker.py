"""The module `dramatiq worker worker` loads: the broker is set, then the actors registered on it."""

from __future__ import annotations

from sync.broker import setup_broker
from sync.logs import configure_logging
from sync.runtime import get_runtime

_runtime = get_runtime()
configure_logging(_runtime.settings.log_level)
broker = setup_broker(_runtime)
