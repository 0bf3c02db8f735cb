#!/bin/bash
# Entrypoint of steward/squid: render squid.conf for this instance from the SQUID_* environment, prepare
# its per-port state directory, and run squid in the foreground as PID 1 so that `docker stop` /
# a Mesos kill delivers SIGTERM straight to squid, whose own handling drains for shutdown_lifetime.
set -euo pipefail

die() { echo "steward-squid: error: $*" >&2; exit 64; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
# Address lists end up inside squid.conf: accept addresses/CIDRs only, so a value can never inject
# configuration lines.
nets() { local v=${1//,/ }; [[ $v =~ ^[0-9A-Fa-f:./[:space:]]*$ ]] || die "$2 must list IP addresses/CIDR networks, got '$1'"; echo $v; }

SQUID_PORT=${SQUID_PORT:-3128}
SQUID_LISTEN=${SQUID_LISTEN:-}
SQUID_CACHE_MEM_MB=${SQUID_CACHE_MEM_MB:-128}
SQUID_CACHE_DISK_MB=${SQUID_CACHE_DISK_MB:-10000}
SQUID_MAX_OBJECT_SIZE_MB=${SQUID_MAX_OBJECT_SIZE_MB:-1024}
SQUID_MAX_OBJECT_SIZE_IN_MEMORY_KB=${SQUID_MAX_OBJECT_SIZE_IN_MEMORY_KB:-128}
SQUID_MAX_FDS=${SQUID_MAX_FDS:-8192}
SQUID_SHUTDOWN_LIFETIME=${SQUID_SHUTDOWN_LIFETIME:-30}
SQUID_CLIENT_NETS=${SQUID_CLIENT_NETS-127.0.0.1/32 ::1 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7 fe80::/10}
SQUID_MGR_ALLOW=${SQUID_MGR_ALLOW:-}
SQUID_ALLOW_LOCAL_ORIGINS=${SQUID_ALLOW_LOCAL_ORIGINS:-0}
SQUID_STATE_ROOT=${SQUID_STATE_ROOT:-/var/spool/squid}
SQUID_VISIBLE_HOSTNAME=${SQUID_VISIBLE_HOSTNAME:-$(cat /proc/sys/kernel/hostname)}
SQUID_EXTRA_CONF=${SQUID_EXTRA_CONF:-}

is_uint "$SQUID_PORT" && [ "$SQUID_PORT" -ge 1 ] && [ "$SQUID_PORT" -le 65535 ] || die "SQUID_PORT must be a port number, got '$SQUID_PORT'"
for v in SQUID_CACHE_MEM_MB SQUID_CACHE_DISK_MB SQUID_MAX_OBJECT_SIZE_MB SQUID_MAX_OBJECT_SIZE_IN_MEMORY_KB \
         SQUID_MAX_FDS SQUID_SHUTDOWN_LIFETIME; do
  is_uint "${!v}" || die "$v must be a whole number, got '${!v}'"
done
[[ $SQUID_VISIBLE_HOSTNAME =~ ^[A-Za-z0-9.-]+$ ]] || die "SQUID_VISIBLE_HOSTNAME must be a host name, got '$SQUID_VISIBLE_HOSTNAME'"
client_nets=$(nets "$SQUID_CLIENT_NETS" SQUID_CLIENT_NETS)
[ -n "$client_nets" ] || die "SQUID_CLIENT_NETS is empty: nobody could use the proxy"
mgr_nets="127.0.0.1/32 ::1 $(nets "$SQUID_MGR_ALLOW" SQUID_MGR_ALLOW)"

if [ -n "$SQUID_LISTEN" ]; then
  [[ $SQUID_LISTEN =~ ^[0-9A-Fa-f:.]+$ ]] || die "SQUID_LISTEN must be an IP address, got '$SQUID_LISTEN'"
  if [[ $SQUID_LISTEN == *:* ]]; then http_port="[$SQUID_LISTEN]:$SQUID_PORT"; else http_port="$SQUID_LISTEN:$SQUID_PORT"; fi
else
  http_port="0.0.0.0:$SQUID_PORT"
fi

case "$SQUID_ALLOW_LOCAL_ORIGINS" in
  1|true|yes) local_rule="# SQUID_ALLOW_LOCAL_ORIGINS is set: origins on this host (127.0.0.0/8, ::1) are allowed (tests)." ;;
  0|false|no|"") local_rule="http_access deny to_localhost" ;;
  *) die "SQUID_ALLOW_LOCAL_ORIGINS must be 0 or 1, got '$SQUID_ALLOW_LOCAL_ORIGINS'" ;;
esac

instance_dir="$SQUID_STATE_ROOT/$SQUID_PORT"
mkdir -p "$instance_dir"
if [ "$SQUID_CACHE_DISK_MB" -gt 0 ]; then
  mkdir -p "$instance_dir/cache"
  cache_line="cache_dir ufs $instance_dir/cache $SQUID_CACHE_DISK_MB 16 256"
else
  cache_line="# SQUID_CACHE_DISK_MB=0: memory cache only"
fi
# squid started as root runs as the 'proxy' user (cache_effective_user): it must own its state, and it
# re-opens /dev/stdout for the access log as 'proxy', while Docker's stdio pipes are root's with mode
# 0600: handing the pipe to 'proxy' is what lets the access log reach `docker logs`. (cache.log is not
# re-opened at all: squid cannot re-open /dev/stderr once it has changed uid, so it goes to /dev/null
# and `squid -d 1` writes the same messages to the inherited stderr.)
access_log="stdio:/dev/stdout"
if [ "$(id -u)" = 0 ]; then
  chown -R proxy:proxy "$instance_dir"
  chown proxy /dev/stdout 2>/dev/null || echo "steward-squid: warning: cannot hand stdout to 'proxy'; squid may fail to open its access log" >&2
elif [ ! -w /dev/stdout ]; then
  # Started as another uid, squid cannot re-open Docker's stdout pipe: keep the access log in the instance dir.
  access_log="stdio:$instance_dir/access.log"
  echo "steward-squid: warning: started as uid $(id -u), stdout is not re-openable; access log in $instance_dir" >&2
fi
# A pid file left by a killed predecessor on a reused state directory would make squid refuse to start.
rm -f "$instance_dir/squid.pid"

conf=$(</etc/squid/steward/squid.conf.template)
conf=${conf//@HTTP_PORT@/$http_port}
conf=${conf//@VISIBLE_HOSTNAME@/$SQUID_VISIBLE_HOSTNAME}
conf=${conf//@UNIQUE_HOSTNAME@/$SQUID_VISIBLE_HOSTNAME-$SQUID_PORT}
conf=${conf//@INSTANCE_DIR@/$instance_dir}
conf=${conf//@CACHE_DIR_LINE@/$cache_line}
conf=${conf//@CACHE_MEM_MB@/$SQUID_CACHE_MEM_MB}
conf=${conf//@MAX_OBJECT_SIZE_MB@/$SQUID_MAX_OBJECT_SIZE_MB}
conf=${conf//@MAX_OBJECT_SIZE_IN_MEMORY_KB@/$SQUID_MAX_OBJECT_SIZE_IN_MEMORY_KB}
conf=${conf//@MAX_FDS@/$SQUID_MAX_FDS}
conf=${conf//@SHUTDOWN_LIFETIME@/$SQUID_SHUTDOWN_LIFETIME}
conf=${conf//@CLIENT_NETS@/$client_nets}
conf=${conf//@MGR_NETS@/$mgr_nets}
conf=${conf//@LOCAL_ORIGINS_RULE@/$local_rule}
conf=${conf//@ACCESS_LOG@/$access_log}
conf=${conf//@EXTRA_CONF@/$SQUID_EXTRA_CONF}
conf_file="$instance_dir/squid.conf"
printf '%s\n' "$conf" >"$conf_file"

squid -k parse -f "$conf_file" >/dev/null 2>&1 || { squid -k parse -f "$conf_file" >&2 || true; die "the rendered $conf_file does not parse"; }
if [ "$SQUID_CACHE_DISK_MB" -gt 0 ] && [ ! -d "$instance_dir/cache/00" ]; then
  echo "steward-squid: creating cache directories in $instance_dir/cache"
  squid -N -z -f "$conf_file"
fi
echo "steward-squid: listening on $http_port, state in $instance_dir, shutdown_lifetime ${SQUID_SHUTDOWN_LIFETIME}s"
exec squid -N -d 1 -f "$conf_file" "$@"
