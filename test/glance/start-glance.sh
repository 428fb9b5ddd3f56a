#!/usr/bin/env bash
# Starts a real Glance API (Debian's glance-api package) for the glance target's tests, as one
# plain process on 127.0.0.1, authenticating through a real Keystone (start-keystone.sh).
# Re-running it on the same DIR restarts Glance on the existing database and store (the
# "Glance restart" test).
#
# Usage: start-glance.sh DIR PORT KEYSTONE_URL [GLANCE_SERVICE_PASSWORD]
# Writes DIR/glance-api.pid; logs in DIR/log/. Stop with stop.sh DIR.
set -euo pipefail
DIR=${1:?usage: start-glance.sh DIR PORT KEYSTONE_URL [GLANCE_SERVICE_PASSWORD]}
PORT=${2:?usage: start-glance.sh DIR PORT KEYSTONE_URL}
KS=${3:?usage: start-glance.sh DIR PORT KEYSTONE_URL}
GPASS=${4:-glance-pass}
for b in glance-api glance-manage; do
  command -v "$b" >/dev/null || { echo "start-glance: $b missing (apt-get install glance-api python3-glance sqlite3)" >&2; exit 3; }
done
mkdir -p "$DIR"/images "$DIR"/staging "$DIR"/tasks "$DIR"/lock "$DIR"/log "$DIR"/policy.d
CONF=$DIR/glance-api.conf
if [ ! -f "$CONF" ]; then
  sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$PORT|g" -e "s|@KEYSTONE_URL@|$KS|g" -e "s|@GLANCE_PASSWORD@|$GPASS|g" \
    "$(dirname "$0")/glance-api.conf.in" > "$CONF"
  glance-manage --config-file "$CONF" db_sync > "$DIR/log/db_sync.log" 2>&1 \
    || { echo "start-glance: db_sync failed:" >&2; tail -20 "$DIR/log/db_sync.log" >&2; exit 1; }
fi
if curl -s -o /dev/null "http://127.0.0.1:$PORT/healthcheck" 2>/dev/null; then echo "start-glance: port $PORT already in use" >&2; exit 1; fi
setsid glance-api --config-file "$CONF" >> "$DIR/log/glance-api.stdout" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$DIR/glance-api.pid"
for _ in $(seq 1 600); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthcheck" 2>/dev/null; then echo "glance-api pid $PID ready at http://127.0.0.1:$PORT"; exit 0; fi
  kill -0 "$PID" 2>/dev/null || { echo "start-glance: glance-api died:" >&2; tail -30 "$DIR/log/glance-api.log" "$DIR/log/glance-api.stdout" >&2; exit 1; }
  sleep 0.1
done
echo "start-glance: not ready after 60s" >&2; exit 1
