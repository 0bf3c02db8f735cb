#!/usr/bin/env bash
# Make sure a Docker Engine answers: install Debian's docker.io if missing and start dockerd in the
# background when it is not running (these machines have no systemd). Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if docker info >/dev/null 2>&1; then exit 0; fi
"$here/ensure-debian-packages.sh" docker.io
if docker info >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "no Docker Engine answers and only root can start one: start dockerd, then retry" >&2
  exit 1
fi
log=/var/log/steward-dockerd.log
echo "starting dockerd in the background (log: $log)"
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 0.5
done
echo "dockerd did not come up within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 1
