#!/bin/bash
# Entrypoint of steward/htcondor: one image for every HTCondor role Steward's local runs need, chosen by
# CONDOR_ROLE. It renders the whole configuration from the environment (no file from the image's
# /etc/condor is read, so nothing there can silently override it), prepares a state directory owned by
# the running uid, installs the IDTOKENS token it was given, and runs condor_master in the foreground.
#
# Why each setting is here (observed on HTCondor 23.9 with host networking, see
# /work/shared/reference/htcondor-in-containers.md and deploy/images/README-images.md):
# - MASTER_NAME/STARTD_NAME are explicit: a uid with no passwd entry otherwise stops condor_master with
#   "default_daemon_name() returned NULL", and Steward wants the Mesos task id as the name anyway;
# - USE_SHARED_PORT = False: several condor_masters share the host's network namespace;
# - SEC_USE_FAMILY_SESSION = False: with it, a startd's updates to a collector on the same host were
#   rejected ("SECMAN:2004: Server rejected our session id") and it never joined the pool;
# - NUM_CPUS/MEMORY come from the task's resources, never from the host's detection.
set -euo pipefail

log() { echo "steward-condor: $*"; }
die() { echo "steward-condor: error: $*" >&2; exit 64; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

CONFIG_FILE=${CONDOR_CONFIG:-/var/lib/steward-condor/condor_config}
CONDOR_ROLE=${CONDOR_ROLE:-}
CONDOR_COLLECTOR_HOST=${CONDOR_COLLECTOR_HOST:-}
CONDOR_NETWORK_INTERFACE=${CONDOR_NETWORK_INTERFACE:-}
CONDOR_STATE_DIR=${CONDOR_STATE_DIR:-/var/lib/steward-condor/state}
CONDOR_NUM_CPUS=${CONDOR_NUM_CPUS:-1}
CONDOR_MEMORY_MB=${CONDOR_MEMORY_MB:-1024}
CONDOR_NOCLAIM_SHUTDOWN=${CONDOR_NOCLAIM_SHUTDOWN:-}
CONDOR_MAX_JOB_RETIREMENT_TIME=${CONDOR_MAX_JOB_RETIREMENT_TIME:-86400}
CONDOR_NEGOTIATOR_INTERVAL=${CONDOR_NEGOTIATOR_INTERVAL:-60}
CONDOR_UPDATE_INTERVAL=${CONDOR_UPDATE_INTERVAL:-300}
CONDOR_TOKEN_FILE=${CONDOR_TOKEN_FILE:-}
CONDOR_TOKEN_OUT=${CONDOR_TOKEN_OUT:-}
CONDOR_TOKEN_OUT_OWNER=${CONDOR_TOKEN_OUT_OWNER:-}
CONDOR_TOKEN_IDENTITY=${CONDOR_TOKEN_IDENTITY:-condor@pool}
CONDOR_SECURITY=${CONDOR_SECURITY:-recommended}
CONDOR_DAEMON_LIST=${CONDOR_DAEMON_LIST:-}
CONDOR_EXTRA_CONFIG=${CONDOR_EXTRA_CONFIG:-}

case "$CONDOR_ROLE" in
  central-manager) default_daemons="MASTER, COLLECTOR, NEGOTIATOR, SCHEDD" ;;
  execute) default_daemons="MASTER, STARTD" ;;
  submit) default_daemons="MASTER, SCHEDD" ;;
  "") die "CONDOR_ROLE is not set (central-manager, execute or submit)" ;;
  *) die "CONDOR_ROLE must be central-manager, execute or submit, got '$CONDOR_ROLE'" ;;
esac
DAEMON_LIST=${CONDOR_DAEMON_LIST:-$default_daemons}

[ -n "$CONDOR_COLLECTOR_HOST" ] || die "CONDOR_COLLECTOR_HOST is not set (host:port of the central manager's collector)"
[[ $CONDOR_COLLECTOR_HOST =~ ^[A-Za-z0-9.:_-]+$ ]] || die "CONDOR_COLLECTOR_HOST must be host:port, got '$CONDOR_COLLECTOR_HOST'"
if [ -n "$CONDOR_NETWORK_INTERFACE" ] && ! [[ $CONDOR_NETWORK_INTERFACE =~ ^[A-Za-z0-9.:*_-]+$ ]]; then
  die "CONDOR_NETWORK_INTERFACE must be an address or interface name, got '$CONDOR_NETWORK_INTERFACE'"
fi
# The daemon name: Steward passes the Mesos task id; otherwise role and host.
CONDOR_NAME=${CONDOR_NAME:-${MESOS_TASK_ID:-steward-$CONDOR_ROLE-$(cat /proc/sys/kernel/hostname)}}
[[ $CONDOR_NAME =~ ^[A-Za-z0-9._-]+$ ]] || die "CONDOR_NAME may hold only letters, digits, '.', '_' and '-', got '$CONDOR_NAME'"
for v in CONDOR_NUM_CPUS CONDOR_MEMORY_MB CONDOR_MAX_JOB_RETIREMENT_TIME CONDOR_NEGOTIATOR_INTERVAL CONDOR_UPDATE_INTERVAL; do
  is_uint "${!v}" || die "$v must be a whole number, got '${!v}'"
done
[ -z "$CONDOR_NOCLAIM_SHUTDOWN" ] || is_uint "$CONDOR_NOCLAIM_SHUTDOWN" \
  || die "CONDOR_NOCLAIM_SHUTDOWN must be a whole number of seconds, got '$CONDOR_NOCLAIM_SHUTDOWN'"
CONDOR_LOCAL_USER=${CONDOR_LOCAL_USER:-steward}
[[ $CONDOR_LOCAL_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || die "CONDOR_LOCAL_USER must be a user name, got '$CONDOR_LOCAL_USER'"
case "$CONDOR_SECURITY" in recommended|open) ;; *) die "CONDOR_SECURITY must be recommended or open, got '$CONDOR_SECURITY'" ;; esac

uid=$(id -u)
ENV_FILE="$(dirname "$CONFIG_FILE")/steward.env"
# A uid with no passwd entry has no user name, and HTCondor's FS authentication (how condor_drain or
# condor_off inside this container prove who they are to the local daemons) then fails with "Unable to
# lookup uid". nss_wrapper gives the uid a name without touching /etc/passwd; the settings are kept in
# steward.env for tools started later with `docker exec` (steward-startd-drain reads it).
: >"$ENV_FILE.tmp"
if ! getent passwd "$uid" >/dev/null 2>&1; then
  nss_dir="$CONDOR_STATE_DIR/nss"
  mkdir -p "$nss_dir"
  { cat /etc/passwd; echo "$CONDOR_LOCAL_USER:x:$uid:$(id -g):Steward HTCondor:$CONDOR_STATE_DIR:/bin/sh"; } >"$nss_dir/passwd"
  { cat /etc/group; getent group "$(id -g)" >/dev/null 2>&1 || echo "$CONDOR_LOCAL_USER:x:$(id -g):"; } >"$nss_dir/group"
  cat >"$ENV_FILE.tmp" <<ENVEOF
export LD_PRELOAD=/usr/local/lib/libnss_wrapper.so
export NSS_WRAPPER_PASSWD=$nss_dir/passwd
export NSS_WRAPPER_GROUP=$nss_dir/group
ENVEOF
  # shellcheck disable=SC1090
  . "$ENV_FILE.tmp"
  log "uid $uid has no passwd entry: known as '$(id -un)' through nss_wrapper"
fi
echo "export CONDOR_CONFIG=$CONFIG_FILE" >>"$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
local_user=$(id -un)

# As root, condor_master runs its daemons as the 'condor' account; otherwise everything ("personal"
# HTCondor) runs as this uid, which needs no passwd entry.
if [ "$uid" = 0 ]; then owner="condor:condor"; else owner="$uid:$(id -g)"; fi

umask 022
mkdir -p "$CONDOR_STATE_DIR"/{log,spool,execute,lock,run,cred_dir,tokens.d,passwords.d} "$(dirname "$CONFIG_FILE")"
if [ "$uid" = 0 ]; then
  chown -R "$owner" "$CONDOR_STATE_DIR"/{log,spool,execute,lock,run}
  chown root:root "$CONDOR_STATE_DIR"/{tokens.d,passwords.d,cred_dir}
fi
chmod 0700 "$CONDOR_STATE_DIR"/{tokens.d,passwords.d,cred_dir}

# The token this node authenticates with (IDTOKENS), copied so that its mode and owner are what
# HTCondor insists on (0600, the running uid) whatever the mounted file looks like.
if [ -n "$CONDOR_TOKEN_FILE" ]; then
  [ -r "$CONDOR_TOKEN_FILE" ] || die "CONDOR_TOKEN_FILE=$CONDOR_TOKEN_FILE is not a readable file"
  install -m 0600 "$CONDOR_TOKEN_FILE" "$CONDOR_STATE_DIR/tokens.d/steward.token"
  log "installed the token from CONDOR_TOKEN_FILE"
fi

if [ "$CONDOR_SECURITY" = open ]; then
  security="# CONDOR_SECURITY=open: authenticate when possible, allow everyone (throw-away test pools only).
SEC_DEFAULT_AUTHENTICATION = PREFERRED
SEC_DEFAULT_ENCRYPTION = OPTIONAL
SEC_DEFAULT_INTEGRITY = OPTIONAL
ALLOW_READ = *
ALLOW_WRITE = *
ALLOW_DAEMON = *
ALLOW_NEGOTIATOR = *
ALLOW_ADMINISTRATOR = *"
else
  # HTCondor's own 9.0+ recommendation: authentication, integrity and encryption required; daemons and
  # administrators are condor@* (what the pool's tokens say); anyone may read.
  security="use SECURITY : recommended_v9_0"
fi
if [ "$uid" != 0 ]; then
  # Personal HTCondor: the daemons run as this uid, and the same uid may administer them locally
  # (condor_drain, condor_off through FS authentication).
  security+=$'\n'"ALLOW_ADMINISTRATOR = \$(ALLOW_ADMINISTRATOR) $local_user@\$(UID_DOMAIN)"
fi

startd_conf=""
if [[ $DAEMON_LIST == *STARTD* ]]; then
  startd_conf="STARTD_NAME = $CONDOR_NAME
NUM_CPUS = $CONDOR_NUM_CPUS
MEMORY = $CONDOR_MEMORY_MB
# One partitionable slot holding everything the task was given.
use FEATURE : PartitionableSlot(1, 100%)
# Running jobs may finish before a graceful drain or shutdown evicts them.
MAXJOBRETIREMENTTIME = $CONDOR_MAX_JOB_RETIREMENT_TIME
# This uid may run only its own jobs, and a container cannot give it cgroups.
STARTER_ALLOW_RUNAS_OWNER = False
# The master exits (and so the container) once the startd has gone for good: after
# 'condor_drain -exit-on-completion' or STARTD_NOCLAIM_SHUTDOWN.
MASTER.DAEMON_SHUTDOWN = (STARTD_StartTime =?= 0) && ((time() - DaemonStartTime) > 10)"
  if [ -n "$CONDOR_NOCLAIM_SHUTDOWN" ] && [ "$CONDOR_NOCLAIM_SHUTDOWN" -gt 0 ]; then
    startd_conf+=$'\n'"STARTD_NOCLAIM_SHUTDOWN = $CONDOR_NOCLAIM_SHUTDOWN"
  fi
fi

schedd_conf=""
if [[ $DAEMON_LIST == *SCHEDD* ]]; then
  # Named like the node: schedds on one host must not share the default name (the host name).
  schedd_conf="SCHEDD_NAME = $CONDOR_NAME"
fi

network="NETWORK_INTERFACE = ${CONDOR_NETWORK_INTERFACE}"
[ -n "$CONDOR_NETWORK_INTERFACE" ] || network="# NETWORK_INTERFACE: HTCondor's choice (CONDOR_NETWORK_INTERFACE unset)"

tmp_conf=$(mktemp "$CONFIG_FILE.XXXXXX")
cat >"$tmp_conf" <<EOF
# Rendered by /usr/local/bin/steward-condor-entrypoint at container start (role $CONDOR_ROLE).
# Self-contained on purpose: /etc/condor (Debian's defaults) is not read.
RELEASE_DIR = /usr
BIN = \$(RELEASE_DIR)/bin
SBIN = \$(RELEASE_DIR)/sbin
LIB = \$(RELEASE_DIR)/lib/condor
LIBEXEC = \$(RELEASE_DIR)/libexec/condor
SHARE = \$(RELEASE_DIR)/share/condor
INCLUDE = \$(RELEASE_DIR)/include/condor
ETC = $CONDOR_STATE_DIR
LOCAL_CONFIG_FILE =
LOCAL_CONFIG_DIR =

# State, all under one directory the running uid owns.
LOCAL_DIR = $CONDOR_STATE_DIR
LOG = \$(LOCAL_DIR)/log
SPOOL = \$(LOCAL_DIR)/spool
EXECUTE = \$(LOCAL_DIR)/execute
LOCK = \$(LOCAL_DIR)/lock
RUN = \$(LOCAL_DIR)/run
CRED_STORE_DIR = \$(LOCAL_DIR)/cred_dir

DAEMON_LIST = $DAEMON_LIST
COLLECTOR_HOST = $CONDOR_COLLECTOR_HOST
CONDOR_HOST = \$(COLLECTOR_HOST)
$network
USE_SHARED_PORT = False
MASTER_NAME = $CONDOR_NAME
# Containers never share a filesystem: make HTCondor transfer files rather than assume one.
FILESYSTEM_DOMAIN = $CONDOR_NAME.steward
UID_DOMAIN = steward
TRUST_UID_DOMAIN = True
SOFT_UID_DOMAIN = True
CONDOR_ADMIN =
MAIL = /bin/true

# Security: FS for tools inside this container, IDTOKENS between containers.
$security
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_USE_FAMILY_SESSION = False
SEC_PASSWORD_DIRECTORY = \$(LOCAL_DIR)/passwords.d
SEC_TOKEN_POOL_SIGNING_KEY_FILE = \$(SEC_PASSWORD_DIRECTORY)/POOL
SEC_TOKEN_SYSTEM_DIRECTORY = \$(LOCAL_DIR)/tokens.d
SEC_TOKEN_DIRECTORY = \$(LOCAL_DIR)/tokens.d

# How often the pool reacts (short values for tests).
NEGOTIATOR_INTERVAL = $CONDOR_NEGOTIATOR_INTERVAL
UPDATE_INTERVAL = $CONDOR_UPDATE_INTERVAL
MASTER_UPDATE_INTERVAL = $CONDOR_UPDATE_INTERVAL
SCHEDD_INTERVAL = $CONDOR_UPDATE_INTERVAL
# HTCondor's floors (5 s between negotiations, 20 s between cycles, 5 s between schedd updates) would
# otherwise cap the short test intervals.
NEGOTIATOR_MIN_INTERVAL = $(( CONDOR_NEGOTIATOR_INTERVAL < 5 ? CONDOR_NEGOTIATOR_INTERVAL : 5 ))
NEGOTIATOR_CYCLE_DELAY = $(( CONDOR_NEGOTIATOR_INTERVAL < 20 ? CONDOR_NEGOTIATOR_INTERVAL : 20 ))
SCHEDD_MIN_INTERVAL = $(( CONDOR_UPDATE_INTERVAL < 5 ? CONDOR_UPDATE_INTERVAL : 5 ))

$schedd_conf
$startd_conf

# CONDOR_EXTRA_CONFIG, verbatim.
$CONDOR_EXTRA_CONFIG
EOF
mv "$tmp_conf" "$CONFIG_FILE"
chmod 0644 "$CONFIG_FILE"
export CONDOR_CONFIG="$CONFIG_FILE"
condor_config_val DAEMON_LIST >/dev/null || die "the rendered $CONFIG_FILE does not parse"

# The central manager owns the pool's token-signing key: made once, kept in the state directory.
if [[ $DAEMON_LIST == *COLLECTOR* ]]; then
  key="$CONDOR_STATE_DIR/passwords.d/POOL"
  if [ ! -s "$key" ]; then
    log "creating the pool's token-signing key"
    head -c 48 /dev/urandom | base64 -w0 | condor_store_cred add -c -i - >/dev/null \
      || die "could not create the token-signing key"
  fi
  if [ -n "$CONDOR_TOKEN_OUT" ]; then
    # A token for execute (and submit) nodes, written atomically so that a reader never sees half.
    out_tmp=$(mktemp "$(dirname "$CONDOR_TOKEN_OUT")/.token.XXXXXX")
    condor_token_create -identity "$CONDOR_TOKEN_IDENTITY" -key POOL \
      -authz READ -authz ADVERTISE_MASTER -authz ADVERTISE_STARTD -authz ADVERTISE_SCHEDD >"$out_tmp" \
      || { rm -f "$out_tmp"; die "condor_token_create failed"; }
    chmod 0600 "$out_tmp"
    [ -z "$CONDOR_TOKEN_OUT_OWNER" ] || chown "$CONDOR_TOKEN_OUT_OWNER" "$out_tmp"
    mv "$out_tmp" "$CONDOR_TOKEN_OUT"
    log "wrote a token for identity $CONDOR_TOKEN_IDENTITY to CONDOR_TOKEN_OUT"
  fi
fi

log "role $CONDOR_ROLE, name $CONDOR_NAME, daemons '$DAEMON_LIST', collector $CONDOR_COLLECTOR_HOST, state $CONDOR_STATE_DIR, uid $uid"
exec condor_master -f "$@"
