"""Run singer's tap-hubspot (PyPI) against the sandbox's HubSpot emulator: the wrapper bench/peers.py starts.

It runs in its own venv (`.venv-peers`: tap-hubspot pins requests, attrs and singer-python, which clash with
ours), so it imports nothing of this repository. What it changes in the tap, and nothing else:

* `BASE_URL` → the emulator's API URL, and TLS verified against the sandbox's private CA (the tap's GETs go
  through `SESSION.send`, which ignores REQUESTS_CA_BUNDLE, so `SESSION.verify` is set too);
* `get_custom_schema` answers the properties schema (`GET /crm/v3/properties/contacts`) locally with the
  properties our connector reads, because the emulator does not serve the properties API. On real HubSpot
  that is one call per stream; bench/peers.py reports it beside the emulator's count. Likewise the custom
  object schemas (`GET /crm/v3/schemas`, one call per sync): answered as a portal without custom objects;
* the catalog is built from the tap's own schemas (`load_discovered_schema`) with the compared streams and
  those properties selected, instead of `--discover` (which walks every stream, most of them absent here);
* stdout (the singer messages) goes to a counter: RECORD messages per stream are counted, the rest dropped.

Input: one JSON argument file `{"base_url", "ca_path", "access_token", "start_date", "streams",
"contact_properties"}`. Output: one JSON line `{"records": {stream: n}, "seconds", "schema_calls"}` on the
real stdout; `seconds` is `do_sync` alone (no interpreter start, no imports).
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections import Counter
from typing import Any

RECORD = '{"type": "RECORD", "stream": "'


class RecordCounter(io.TextIOBase):
    """A stdout that counts singer RECORD messages by stream (the tap still serializes every message)."""

    def __init__(self) -> None:
        self.records: Counter[str] = Counter()

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith(RECORD):
                self.records[line[len(RECORD) : line.index('"', len(RECORD))]] += 1
        return len(text)


def catalog(tap: Any, streams: list[str], properties: list[str]) -> dict[str, Any]:
    """The tap's own schema and metadata for `streams`, each selected with `properties` selected."""
    out = []
    for stream in tap.STREAMS:
        if stream.tap_stream_id not in streams:
            continue
        schema, mdata = tap.load_discovered_schema(stream)
        for entry in mdata:
            crumb = entry["breadcrumb"]
            if not crumb or (len(crumb) == 2 and crumb[1].removeprefix("property_") in properties):
                entry["metadata"]["selected"] = True
        out.append({"stream": stream.tap_stream_id, "tap_stream_id": stream.tap_stream_id, "schema": schema,
                    "metadata": mdata})  # fmt: skip
    return {"streams": out}


def main(path: str) -> int:
    import requests
    import tap_hubspot as tap

    with open(path) as handle:
        conf = json.load(handle)
    tap.BASE_URL = conf["base_url"].rstrip("/")
    tap.SESSION = requests.Session()
    tap.SESSION.verify = conf["ca_path"] or True
    tap.CONFIG.update({"api_key": conf["access_token"], "start_date": conf["start_date"]})
    properties: list[str] = conf["contact_properties"]
    schema_calls: Counter[str] = Counter()

    def custom_schema(entity_name: str) -> dict[str, Any]:
        schema_calls[entity_name] += 1  # GET /crm/v3/properties/<entity> on real HubSpot
        data = [{"name": p, "type": "string"} for p in properties]
        return dict(tap.parse_custom_schema(entity_name, data if entity_name != "tickets" else {"results": data}))

    def no_custom_objects(mode: str, catalog: Any = None) -> list[Any]:
        schema_calls["custom_objects"] += 1  # GET /crm/v3/schemas on real HubSpot: a portal without any
        return []

    tap.get_custom_schema = custom_schema
    tap.generate_custom_streams = no_custom_objects
    selected = catalog(tap, conf["streams"], properties)
    schema_calls.clear()  # the catalog's are discovery's (a separate run of the tap); count the sync's only
    real_stdout, sink = sys.stdout, RecordCounter()
    sys.stdout = sink
    started = time.perf_counter()
    try:
        tap.do_sync({}, selected)
    finally:
        seconds = time.perf_counter() - started
        sys.stdout = real_stdout
    print(json.dumps({"records": dict(sink.records), "seconds": seconds, "schema_calls": dict(schema_calls)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(f"usage: .venv-peers/bin/python -P bench/peer_tap_hubspot.py CONFIG.json\n\n{__doc__}")
        raise SystemExit(0 if sys.argv[1:] in (["-h"], ["--help"]) else 2)
    raise SystemExit(main(sys.argv[1]))
