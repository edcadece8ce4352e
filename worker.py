"""The module `dramatiq worker worker` loads: the broker is set, checked, then the actors registered on it."""

from __future__ import annotations

from sync.broker import require_fast_redelivery, setup_broker, warn_without_persistence
from sync.gc_tuning import tune_gc
from sync.logs import configure_logging
from sync.malloc_arenas import limit_malloc_arenas
from sync.runtime import get_runtime

limit_malloc_arenas()  # before the worker threads start allocating
_runtime = get_runtime()
configure_logging(_runtime.settings.log_level)
require_fast_redelivery(_runtime.settings)
broker = setup_broker(_runtime)
warn_without_persistence(broker)
tune_gc()  # last: what the setup made is frozen out of later collections
