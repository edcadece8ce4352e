#!/usr/bin/env bash
# Make sure Redis and PostgreSQL answer on loopback; start them if they are down; fail if they can't be reached.
set -u
REDIS_PORT=${SXSYNC_TEST_REDIS_PORT:-6379}
PG_HOST=127.0.0.1
PG_PORT=${SXSYNC_TEST_PG_PORT:-5432}

redis_up() { python3 - "$REDIS_PORT" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"PING\r\n"); ok = s.recv(16).startswith(b"+PONG")
except OSError:
    ok = False
sys.exit(0 if ok else 1)
PY
}
pg_up() { python3 - "$PG_HOST" "$PG_PORT" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close(); ok = True
except OSError:
    ok = False
sys.exit(0 if ok else 1)
PY
}

if ! redis_up; then
  echo "redis is down on 127.0.0.1:$REDIS_PORT: starting it" >&2
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 50); do redis_up && break; sleep 0.2; done
fi
if ! pg_up; then
  echo "postgresql is down on $PG_HOST:$PG_PORT: starting it" >&2
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 75); do pg_up && break; sleep 0.2; done
fi
redis_up || { echo "FATAL: Redis is unreachable on 127.0.0.1:$REDIS_PORT" >&2; exit 1; }
pg_up || { echo "FATAL: PostgreSQL is unreachable on $PG_HOST:$PG_PORT" >&2; exit 1; }
echo "services: redis and postgresql are up"
