#!/usr/bin/env bash
# Stops what start-glance.sh / start-keystone.sh started in DIR, by recorded PID (each runs in
# its own process group, so uwsgi's workers go with their master).
# Usage: stop.sh DIR [glance|keystone]   (default: both).  KILL=1 sends SIGKILL at once (crash).
DIR=${1:?usage: stop.sh DIR [glance|keystone]}
case "${2:-all}" in glance) NAMES=(glance-api) ;; keystone) NAMES=(keystone) ;; *) NAMES=(glance-api keystone) ;; esac
for n in "${NAMES[@]}"; do
  f=$DIR/$n.pid
  [ -f "$f" ] || continue
  P=$(cat "$f"); rm -f "$f"
  kill -0 "$P" 2>/dev/null || continue
  if [ "${KILL:-0}" = 1 ]; then kill -KILL -- "-$P" 2>/dev/null || kill -KILL "$P"; else kill -TERM -- "-$P" 2>/dev/null || kill -TERM "$P"; fi
  for _ in $(seq 1 100); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$P" 2>/dev/null && { kill -KILL -- "-$P" 2>/dev/null || kill -KILL "$P"; }
  echo "stopped $n pid $P"
done
exit 0
