#!/bin/bash
# Entrypoint of the production squid image: render squid.conf from the SQUID_* environment, create the
# cache on first use, and run squid in the foreground as PID 1, so that a Mesos kill's SIGTERM reaches
# squid itself and starts its drain (shutdown_lifetime). Every value is checked before it reaches
# squid.conf: address lists take addresses and CIDRs only, domain lists domain names only, so no value
# can add configuration lines (SQUID_EXTRA_CONF is the one, deliberate, exception).
set -euo pipefail

die() { echo "steward-squid: error: $*" >&2; exit 64; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
nets() { local v=${1//,/ }; [[ $v =~ ^[0-9A-Fa-f:./[:space:]]*$ ]] || die "$2 must list IP addresses/CIDR networks, got '$1'"; echo $v; }
domains() { local v=${1//,/ }; [[ $v =~ ^[A-Za-z0-9.[:space:]-]*$ ]] || die "$2 must list domain names, got '$1'"; echo $v; }

SQUID_PORT=${SQUID_PORT:-3128}
SQUID_STEWARD_NETS=${SQUID_STEWARD_NETS:-}
SQUID_CLIENT_NETS=${SQUID_CLIENT_NETS:-}
SQUID_CACHE_MEM_MB=${SQUID_CACHE_MEM_MB:-256}
SQUID_CACHE_DISK_MB=${SQUID_CACHE_DISK_MB:-50000}
SQUID_CACHE_DIR=${SQUID_CACHE_DIR:-/var/cache/squid}
SQUID_MAX_OBJECT_SIZE_MB=${SQUID_MAX_OBJECT_SIZE_MB:-1024}
SQUID_MAX_OBJECT_SIZE_IN_MEMORY_KB=${SQUID_MAX_OBJECT_SIZE_IN_MEMORY_KB:-128}
SQUID_MAX_FDS=${SQUID_MAX_FDS:-16384}
SQUID_SHUTDOWN_LIFETIME=${SQUID_SHUTDOWN_LIFETIME:-30}
SQUID_ALLOWED_DOMAINS=${SQUID_ALLOWED_DOMAINS:-}
SQUID_SNMP_PORT=${SQUID_SNMP_PORT:-0}
SQUID_SNMP_NETS=${SQUID_SNMP_NETS:-}
SQUID_SNMP_COMMUNITY=${SQUID_SNMP_COMMUNITY:-public}
SQUID_VISIBLE_HOSTNAME=${SQUID_VISIBLE_HOSTNAME:-${HOST:-$(cat /proc/sys/kernel/hostname)}}
SQUID_EXTRA_CONF=${SQUID_EXTRA_CONF:-}

is_uint "$SQUID_PORT" && [ "$SQUID_PORT" -ge 1 ] && [ "$SQUID_PORT" -le 65535 ] || die "SQUID_PORT must be a port number, got '$SQUID_PORT'"
for v in SQUID_CACHE_MEM_MB SQUID_CACHE_DISK_MB SQUID_MAX_OBJECT_SIZE_MB SQUID_MAX_OBJECT_SIZE_IN_MEMORY_KB \
         SQUID_MAX_FDS SQUID_SHUTDOWN_LIFETIME SQUID_SNMP_PORT; do
  is_uint "${!v}" || die "$v must be a whole number, got '${!v}'"
done
[[ $SQUID_VISIBLE_HOSTNAME =~ ^[A-Za-z0-9.-]+$ ]] || die "SQUID_VISIBLE_HOSTNAME must be a host name, got '$SQUID_VISIBLE_HOSTNAME'"
[[ $SQUID_CACHE_DIR =~ ^/[A-Za-z0-9._/-]*$ ]] || die "SQUID_CACHE_DIR must be an absolute path, got '$SQUID_CACHE_DIR'"
[[ $SQUID_SNMP_COMMUNITY =~ ^[A-Za-z0-9._-]+$ ]] || die "SQUID_SNMP_COMMUNITY must be a plain word"

# Who reads the cache manager, and who uses the proxy, must be said: an open proxy or a manager
# anyone can read is never a default.
steward_nets=$(nets "$SQUID_STEWARD_NETS" SQUID_STEWARD_NETS)
[ -n "$steward_nets" ] || die "SQUID_STEWARD_NETS is required: the network(s) Steward reads the cache manager from (e.g. 10.1.2.0/28)"
client_nets=$(nets "$SQUID_CLIENT_NETS" SQUID_CLIENT_NETS)
[ -n "$client_nets" ] || die "SQUID_CLIENT_NETS is required: the worker networks allowed to use this proxy"

allowed=$(domains "$SQUID_ALLOWED_DOMAINS" SQUID_ALLOWED_DOMAINS)
if [ -n "$allowed" ]; then
  destination_acl="acl allowed_destinations dstdomain $allowed"
  destination_rule="http_access deny !allowed_destinations"
else
  destination_acl="# SQUID_ALLOWED_DOMAINS unset: any destination (clients are still limited to SQUID_CLIENT_NETS)"
  destination_rule=""
fi

if [ "$SQUID_SNMP_PORT" -gt 0 ]; then
  snmp_nets=$(nets "$SQUID_SNMP_NETS" SQUID_SNMP_NETS)
  [ -n "$snmp_nets" ] || die "SQUID_SNMP_NETS is required with SQUID_SNMP_PORT (e.g. the WLCG monitoring ranges)"
  snmp_lines="snmp_port $SQUID_SNMP_PORT
acl snmp_community snmp_community $SQUID_SNMP_COMMUNITY
acl snmp_monitors src $snmp_nets
snmp_access allow snmp_community snmp_monitors
snmp_access deny all"
else
  snmp_lines="snmp_port 0"
fi

instance_dir="$SQUID_CACHE_DIR/$SQUID_PORT"
mkdir -p "$instance_dir"
if [ "$SQUID_CACHE_DISK_MB" -gt 0 ]; then
  mkdir -p "$instance_dir/cache"
  cache_line="cache_dir ufs $instance_dir/cache $SQUID_CACHE_DISK_MB 16 256"
else
  cache_line="# SQUID_CACHE_DISK_MB=0: memory cache only"
fi
access_log="stdio:/dev/stdout"
if [ "$(id -u)" = 0 ]; then
  # squid drops to 'proxy': it must own its state and be able to re-open stdout for the access log.
  chown -R proxy:proxy "$instance_dir"
  chown proxy /dev/stdout 2>/dev/null || echo "steward-squid: warning: cannot hand stdout to 'proxy'" >&2
elif [ ! -w /dev/stdout ]; then
  access_log="stdio:$instance_dir/access.log"
fi
rm -f "$instance_dir/squid.pid"

conf=$(</etc/squid/steward/squid.conf.template)
conf=${conf//@HTTP_PORT@/0.0.0.0:$SQUID_PORT}
conf=${conf//@VISIBLE_HOSTNAME@/$SQUID_VISIBLE_HOSTNAME}
conf=${conf//@UNIQUE_HOSTNAME@/$SQUID_VISIBLE_HOSTNAME-$SQUID_PORT}
conf=${conf//@INSTANCE_DIR@/$instance_dir}
conf=${conf//@CACHE_DIR_LINE@/$cache_line}
conf=${conf//@CACHE_MEM_MB@/$SQUID_CACHE_MEM_MB}
conf=${conf//@MAX_OBJECT_SIZE_MB@/$SQUID_MAX_OBJECT_SIZE_MB}
conf=${conf//@MAX_OBJECT_SIZE_IN_MEMORY_KB@/$SQUID_MAX_OBJECT_SIZE_IN_MEMORY_KB}
conf=${conf//@MAX_FDS@/$SQUID_MAX_FDS}
conf=${conf//@SHUTDOWN_LIFETIME@/$SQUID_SHUTDOWN_LIFETIME}
conf=${conf//@ACCESS_LOG@/$access_log}
conf=${conf//@SNMP_LINES@/$snmp_lines}
conf=${conf//@STEWARD_NETS@/$steward_nets}
conf=${conf//@CLIENT_NETS@/$client_nets}
conf=${conf//@DESTINATION_ACL@/$destination_acl}
conf=${conf//@DESTINATION_RULE@/$destination_rule}
conf=${conf//@EXTRA_CONF@/$SQUID_EXTRA_CONF}
conf_file="$instance_dir/squid.conf"
printf '%s\n' "$conf" >"$conf_file"

squid -k parse -f "$conf_file" >/dev/null 2>&1 || { squid -k parse -f "$conf_file" >&2 || true; die "the rendered $conf_file does not parse"; }
if [ "$SQUID_CACHE_DISK_MB" -gt 0 ] && [ ! -d "$instance_dir/cache/00" ]; then
  echo "steward-squid: creating cache directories in $instance_dir/cache"
  squid -N -z -f "$conf_file"
fi
echo "steward-squid: port $SQUID_PORT, cache manager for $steward_nets only, clients $client_nets, drain ${SQUID_SHUTDOWN_LIFETIME}s"
exec squid -N -d 1 -f "$conf_file" "$@"
