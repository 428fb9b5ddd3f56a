#!/usr/bin/env bash
# Starts a real Keystone (Debian's keystone package) for the glance target's tests: sqlite,
# fernet tokens, `keystone-manage bootstrap`, served by uwsgi as ONE process without worker
# threads (keystone + sqlite under uwsgi threads stalls on "database is locked").
#
# Usage: start-keystone.sh DIR PORT [ADMIN_PASSWORD]
# Writes DIR/keystone.pid; logs in DIR/log/. Stop with stop.sh DIR.
# Users, projects and the image endpoint are created afterwards over the REST API
# (test/helpers/glance-openstack.ts) so no python-openstackclient is needed.
set -euo pipefail
DIR=${1:?usage: start-keystone.sh DIR PORT [ADMIN_PASSWORD]}
PORT=${2:?usage: start-keystone.sh DIR PORT [ADMIN_PASSWORD]}
ADMIN_PASS=${3:-admin-pass}
URL=http://127.0.0.1:$PORT
for b in keystone-manage uwsgi; do
  command -v "$b" >/dev/null || { echo "start-keystone: $b missing (apt-get install keystone python3-keystone uwsgi uwsgi-plugin-python3)" >&2; exit 3; }
done
mkdir -p "$DIR"/fernet-keys "$DIR"/credential-keys "$DIR"/log
CONF=$DIR/keystone.conf
sed -e "s|@DIR@|$DIR|g" "$(dirname "$0")/keystone.conf.in" > "$CONF"

KM=(keystone-manage --config-file "$CONF")
{
  "${KM[@]}" db_sync
  "${KM[@]}" fernet_setup --keystone-user root --keystone-group root
  "${KM[@]}" credential_setup --keystone-user root --keystone-group root
  "${KM[@]}" bootstrap --bootstrap-password "$ADMIN_PASS" \
    --bootstrap-admin-url "$URL/v3/" --bootstrap-public-url "$URL/v3/" \
    --bootstrap-internal-url "$URL/v3/" --bootstrap-region-id RegionOne
} > "$DIR/log/manage.log" 2>&1 || { echo "start-keystone: keystone-manage failed:" >&2; tail -20 "$DIR/log/manage.log" >&2; exit 1; }

# setsid: its own process group, so stop.sh can end uwsgi's master and worker together.
if curl -s -o /dev/null "$URL/v3" 2>/dev/null; then echo "start-keystone: port $PORT already in use" >&2; exit 1; fi
OS_KEYSTONE_CONFIG_FILES=$CONF setsid uwsgi --plugin python3 --http-socket "127.0.0.1:$PORT" \
  --wsgi-file /usr/bin/keystone-wsgi-public --master --processes 1 --enable-threads \
  --die-on-term --need-app --add-header "Connection: close" --env "OS_KEYSTONE_CONFIG_FILES=$CONF" \
  --logto "$DIR/log/uwsgi.log" < /dev/null &
PID=$!
echo "$PID" > "$DIR/keystone.pid"
for _ in $(seq 1 600); do
  if curl -fsS -o /dev/null "$URL/v3" 2>/dev/null; then echo "keystone pid $PID ready at $URL/v3"; exit 0; fi
  kill -0 "$PID" 2>/dev/null || { echo "start-keystone: uwsgi died:" >&2; tail -30 "$DIR/log/uwsgi.log" >&2; exit 1; }
  sleep 0.1
done
echo "start-keystone: not ready after 60s" >&2; exit 1
