#!/usr/bin/env bash
# The suite in two pytest processes, one per core: each directory runs in exactly one of them, and the
# directories that use Redis each own their database (tests/*/conftest.py), so the halves never share
# state. With arguments, one plain pytest run of those arguments.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
if [ "$#" -gt 0 ]; then
  exec "$PY" -m pytest -q "$@"
fi
FIRST=(tests/e2e tests/connectors tests/sync tests/api tests/sandbox tests/tokens tests/corpus)
SECOND=(tests/ops tests/ops_ui tests/faults tests/privacy tests/pipeline tests/cli)
for dir in tests/*/; do
  dir="${dir%/}"
  case " ${FIRST[*]} ${SECOND[*]} " in
    *" $dir "*) ;;
    *) [ "$(basename "$dir")" = "__pycache__" ] || { echo "run-tests: $dir is in neither half: add it to scripts/run-tests.sh" >&2; exit 2; } ;;
  esac
done
logs="$(mktemp -d)"
"$PY" -m pytest -q -p no:cacheprovider "${FIRST[@]}" >"$logs/first.log" 2>&1 &
first=$!
"$PY" -m pytest -q -p no:cacheprovider "${SECOND[@]}" >"$logs/second.log" 2>&1 &
second=$!
wait "$first"; first_rc=$?
wait "$second"; second_rc=$?
echo "=== first half: ${FIRST[*]} (exit $first_rc)"; cat "$logs/first.log"
echo "=== second half: ${SECOND[*]} (exit $second_rc)"; cat "$logs/second.log"
rm -rf "$logs"
[ "$first_rc" -eq 0 ] && [ "$second_rc" -eq 0 ]
