"""Peers side by side: singer's tap-hubspot (PyPI) and our HubSpot connector on the same emulator and world.

Issue 8: "bench/peers.py runs singer tap-hubspot (and, if it can be pointed at a base URL, Airbyte's
source-hubspot) from PyPI against the same HubSpot emulator and world as our HubSpot connector, in the same
run, and prints calls and records/s for each: ours must need fewer calls and finish sooner."

One world (`generate_world(seed, size)`), one `Sandbox` over TLS (its private CA), in this process. Per
repeat, alternating so neither side always runs on a warmer machine:

* **ours**: the product's HubSpot connector at connector level, as `bench/streams.py` drives it (the
  product's OAuth client signs in; pages chained as the sync layer chains them; no store);
* **tap-hubspot** (pinned `TAP_VERSION`, in its own venv `.venv-peers`, created on first use because its
  pins clash with ours): `bench/peer_tap_hubspot.py` runs it in a subprocess with an access token from the
  same sign-in flow, its base URL and CA pointed at the emulator (see that file for the few overrides).

Compared streams: the ones both can read from the emulator, `owners` and `contacts`. tap-hubspot reads
engagements through `/engagements/v1/engagements/modified/after` and companies through `/companies/v2`,
which the emulator does not serve (it serves the v3/v4 CRM APIs our connector uses), so those are left out.

Calls are the emulator's own request counters over each run (OAuth excluded); the tap's properties-schema
call, answered by the wrapper, is shown beside them. Seconds: ours, the passes in this process; the tap's,
its `do_sync` alone, timed inside its process (no interpreter start or imports). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.table import Row  # noqa: E402

TAP = "tap-hubspot"
TAP_VERSION = "4.5.0"
PEER_VENV = REPO / ".venv-peers"
WRAPPER = REPO / "bench" / "peer_tap_hubspot.py"
STREAMS = ("owners", "contacts")
ACCOUNT = "alice@acme.test"
DOMAIN = "acme.test"
MEMBERS = ("alice@acme.test", "bob@acme.test", "carol@acme.test")
START_DATE = "2000-01-01T00:00:00Z"  # the tap's start: everything (ours reads every live contact on a full pass)


@dataclass
class Run:
    """One side's figures, summed over the compared streams, per repeat."""

    name: str
    records: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)  # one run's, by emulator endpoint kind
    extra_calls: int = 0  # calls the tap makes on real HubSpot that the wrapper answered (properties schema)
    seconds: list[float] = field(default_factory=list)

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def records_per_second(self) -> float:
        return self.total_records / self.median_seconds


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description=(
            f"singer {TAP} {TAP_VERSION} (PyPI, own venv .venv-peers) and our HubSpot connector against the same "
            "HubSpot emulator and world, in one run: HTTP calls and records/s for each (owners + contacts)."
        ),
    )
    parser.add_argument("--size", type=int, default=25000, help="the world's size (default: 25000)")
    parser.add_argument("--seed", type=int, default=7, help="world seed (default: 7)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating (default: 3)")
    parser.add_argument("--json", action="store_true", help="also print both sides' figures as JSON")
    return parser.parse_args(argv)


def peer_python() -> Path:
    """The peer venv's interpreter, creating the venv and installing the pinned tap on first use."""
    python = PEER_VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import tap_hubspot"], capture_output=True).returncode == 0:
        return python
    print(f"# creating {PEER_VENV.name} with {TAP}=={TAP_VERSION} …", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", PEER_VENV], check=True)
    (PEER_VENV / ".gitignore").write_text("*\n")  # keep it out of git status
    subprocess.run([python, "-m", "pip", "install", "-q", f"{TAP}=={TAP_VERSION}"], check=True)
    return python


def run_ours(sb: Any, now: datetime, run: Run) -> None:
    from bench.streams import context_for, drive
    from connectors.registry import CONNECTORS

    connector = CONNECTORS["hubspot"]
    ctx = context_for(sb, "hubspot", ACCOUNT, now)
    seconds = 0.0
    run.calls = {}  # one run's calls (every repeat makes the same)
    for stream in STREAMS:
        full = drive(connector, stream, None, ctx, sb)
        seconds += full.seconds
        run.records[stream] = full.records
        for kind, n in full.kinds.items():
            run.calls[kind] = run.calls.get(kind, 0) + n
    run.seconds.append(seconds)


def run_tap(sb: Any, python: Path, base: Path, run: Run) -> None:
    from bench.streams import api_calls_counted
    from connectors.hubspot_crm import CONTACT_PROPERTIES
    from tests.consent import sign_in

    token = sign_in(sb, "hubspot", ACCOUNT, "peers").access_token
    conf = base / "tap.json"
    conf.write_text(
        json.dumps(
            {
                "base_url": sb.settings()["HUBSPOT_API_URL"],
                "ca_path": sb.ca_path,
                "access_token": token,
                "start_date": START_DATE,
                "streams": list(STREAMS),
                "contact_properties": list(CONTACT_PROPERTIES),
            }
        )
    )
    env = {"PATH": "/usr/bin:/bin", "REQUESTS_CA_BUNDLE": sb.ca_path or "", "NO_PROXY": "127.0.0.1,localhost"}
    before = api_calls_counted(sb, "hubspot")
    proc = subprocess.run(
        # -P: bench/ not on the tap's sys.path (bench modules would shadow the stdlib's, e.g. bench/queue.py)
        [python, "-P", WRAPPER, conf],
        capture_output=True,
        text=True,
        env=env,
        cwd=base,
        timeout=1800,
        check=False,
    )
    kinds = api_calls_counted(sb, "hubspot") - before
    if proc.returncode != 0:
        raise RuntimeError(f"{TAP} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    run.records = {s: int(out["records"].get(s, 0)) for s in STREAMS}
    run.calls = dict(kinds)
    run.extra_calls = sum(out["schema_calls"].values())
    run.seconds.append(float(out["seconds"]))


def compare(args: argparse.Namespace) -> tuple[Run, Run]:
    """Both sides, `repeats` times each, alternating, on one emulator."""
    from sandbox.server import Sandbox
    from sandbox.world import generate_world

    python = peer_python()
    now = datetime.now(UTC).replace(microsecond=0)
    world = generate_world(seed=args.seed, size=args.size, now=now, org_domain=DOMAIN, members=MEMBERS)
    ours, tap = Run("ours (sxsync connectors/hubspot)"), Run(f"{TAP} {TAP_VERSION} (singer)")
    base = Path(tempfile.mkdtemp(prefix="sxsync-bench-peers-"))
    try:
        with Sandbox(world, tls=True, cert_dir=str(base / "sandbox-ca")) as sb:
            for rep in range(args.repeats):
                print(f"# peers: repeat {rep + 1}/{args.repeats} …", file=sys.stderr, flush=True)
                for side in (ours, tap) if rep % 2 == 0 else (tap, ours):
                    if side is ours:
                        run_ours(sb, now, ours)
                    else:
                        run_tap(sb, python, base, tap)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return ours, tap


def print_report(ours: Run, tap: Run, args: argparse.Namespace) -> None:
    print(
        f"\nPeers — HubSpot emulator, world size {args.size:,}, seed {args.seed}, streams {', '.join(STREAMS)}; "
        f"median of {args.repeats} runs each"
    )
    head = ("client", "records", "calls", "calls/10k rec", "seconds", "records/s")
    body = []
    for run in (ours, tap):
        calls = f"{run.total_calls:,}" + (f" (+{run.extra_calls} schema)" if run.extra_calls else "")
        body.append(
            (
                run.name,
                " + ".join(f"{run.records[s]:,}" for s in STREAMS),
                calls,
                f"{10_000 * run.total_calls / max(run.total_records, 1):,.1f}",
                f"{run.median_seconds:.2f}",
                f"{run.records_per_second:,.0f}",
            )
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths, strict=True))))
    for b in body:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths, strict=True))))
    print()
    for run in (ours, tap):
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(run.calls.items()))
        print(f"  {run.name}: calls by endpoint {kinds}; seconds per run {[round(s, 2) for s in run.seconds]}")
    fewer, sooner = ours.total_calls / tap.total_calls, ours.median_seconds / tap.median_seconds
    print(f"  ours ÷ tap: calls {fewer:.2f}, seconds {sooner:.2f}")
    if ours.records != tap.records:
        print(
            "  records differ: ours counts every observation — contacts' merge deletions (hs_merged_object_ids) "
            "and the archived owners too"
        )
    print(
        "  Airbyte source-hubspot: not run — its spec has no base-URL setting (https://api.hubapi.com is written "
        "into its manifest, source.py and streams.py) and it reads property schemas from /properties/v2, which "
        "the emulator does not serve; see docs/performance.md."
    )


def rows(size: str) -> list[Row]:
    """The suite's rows (bench/table.py)."""
    args = parse_args(["--size", "25000", "--repeats", "3" if size == "quick" else "5"])
    ours, tap = compare(args)
    calls = ours.total_calls / tap.total_calls
    speed = ours.median_seconds / tap.median_seconds
    same = "same records" if ours.records == tap.records else f"records {ours.records} vs {tap.records}"
    return [
        Row(
            f"peers: HubSpot calls, ours ÷ {TAP} (owners + contacts)",
            f"{calls:.2f}",
            "< 1 (fewer calls)",
            calls < 1,
            f"{ours.total_calls} vs {tap.total_calls} (+{tap.extra_calls} schema); {same}",
        ),
        Row(
            f"peers: HubSpot time, ours ÷ {TAP} (owners + contacts)",
            f"{speed:.2f}",
            "< 1 (sooner)",
            speed < 1,
            f"{ours.records_per_second:,.0f} vs {tap.records_per_second:,.0f} records/s; Airbyte: no base URL",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ours, tap = compare(args)
    print_report(ours, tap, args)
    if args.json:
        for run in (ours, tap):
            print(json.dumps({"client": run.name, **run.__dict__, "records_per_second": run.records_per_second}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
