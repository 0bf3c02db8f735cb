#!/bin/bash
# Entrypoint of steward/cvmfs-standin: a STAND-IN for the CVMFS client service container (cvmfs/service),
# which is in no registry reachable from the project's machines. It mounts no CVMFS: it honours the
# same contract, so that Steward's scheduling, mount propagation and health checking of "the CVMFS
# task" can be exercised for real:
#   - it needs CAP_SYS_ADMIN and /dev/fuse, and refuses to start without them;
#   - it mounts one filesystem per repository of CVMFS_REPOSITORIES at /cvmfs/<repo> (here a small
#     read-only tmpfs holding a marker file and a little tree), below a /cvmfs that the host shares
#     with it (-v /cvmfs:/cvmfs:rshared), so consumers started with -v /cvmfs:/cvmfs:ro,rslave see them;
#   - like the real one, it wants CVMFS_HTTP_PROXY (or CVMFS_CLIENT_PROFILE=single) and writes the
#     CVMFS_* environment to /etc/cvmfs/default.d/95-container-local.conf;
#   - on SIGTERM it unmounts every repository, so that no consumer keeps a dead mount, and exits 0.
set -uo pipefail

say() { echo "cvmfs-standin: $*"; }
die() { echo "cvmfs-standin: error: $*" >&2; exit 1; }

CVMFS_REPOSITORIES=${CVMFS_REPOSITORIES:-unpacked.cern.ch,singularity.opensciencegrid.org}
CVMFS_HTTP_PROXY=${CVMFS_HTTP_PROXY:-}
CVMFS_CLIENT_PROFILE=${CVMFS_CLIENT_PROFILE:-}
CVMFS_MOUNT_DIR=${CVMFS_MOUNT_DIR:-/cvmfs}
CVMFS_STANDIN_REPO_SIZE_MB=${CVMFS_STANDIN_REPO_SIZE_MB:-16}
CVMFS_STANDIN_REQUIRE_SHARED=${CVMFS_STANDIN_REQUIRE_SHARED:-1}
STATE=/run/cvmfs-standin

[ -c /dev/fuse ] || die "/dev/fuse is missing: the CVMFS client needs it (docker run --device /dev/fuse ...; Mesos: the device parameter). Refusing to start."
if [ -z "$CVMFS_HTTP_PROXY" ] && [ "$CVMFS_CLIENT_PROFILE" != single ]; then
  die "CVMFS_HTTP_PROXY is not set (the site squids, e.g. 'http://squid1:3128|http://squid2:3128', or DIRECT); set it or CVMFS_CLIENT_PROFILE=single"
fi
[[ $CVMFS_STANDIN_REPO_SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "CVMFS_STANDIN_REPO_SIZE_MB must be a positive whole number"
IFS=', ' read -r -a repos <<<"$CVMFS_REPOSITORIES"
[ ${#repos[@]} -gt 0 ] || die "CVMFS_REPOSITORIES is empty"
for r in "${repos[@]}"; do
  [[ $r =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "'$r' in CVMFS_REPOSITORIES is not a repository name"
done
mkdir -p "$CVMFS_MOUNT_DIR"

# Consumers see our mounts only if the host's /cvmfs is a shared mount and reaches us as shared.
propagation=$(awk -v m="$CVMFS_MOUNT_DIR" '$5 == m { for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) s = 1; found = 1 }
  END { print (found ? (s ? "shared" : "private") : "none") }' /proc/self/mountinfo)
if [ "$propagation" != shared ]; then
  msg="$CVMFS_MOUNT_DIR is $([ "$propagation" = none ] && echo "not a mount point" || echo "not a shared mount"): consumers would never see the repositories. Make the host directory shared (mount --bind D D && mount --make-rshared D) and bind it with -v D:$CVMFS_MOUNT_DIR:rshared"
  if [ "$CVMFS_STANDIN_REQUIRE_SHARED" = 0 ]; then say "warning: $msg"; else die "$msg"; fi
fi

# Mounting is what CAP_SYS_ADMIN is for: find out now, with a clear message, rather than half-way.
mkdir -p "$STATE/probe"
mount -t tmpfs -o size=1k cvmfs-standin-probe "$STATE/probe" 2>/dev/null \
  || die "cannot mount (needs --cap-add SYS_ADMIN, and --security-opt apparmor=unconfined where AppArmor confines containers)"
umount "$STATE/probe"

# Everything CVMFS_* as the real service container records it.
mkdir -p /etc/cvmfs/default.d
env | grep '^CVMFS_' | sort >/etc/cvmfs/default.d/95-container-local.conf
printf '%s\n' "${repos[@]}" >"$STATE/repositories"
printf '%s\n' "$CVMFS_HTTP_PROXY" >"$STATE/http_proxy"

mounted=()
unmount_all() {
  local r d
  for r in "${mounted[@]}"; do
    d="$CVMFS_MOUNT_DIR/$r"
    if mountpoint -q "$d"; then
      umount "$d" 2>/dev/null || { say "$d is busy: lazy unmount"; umount -l "$d"; }
    fi
    rmdir "$d" 2>/dev/null || true
    say "unmounted $d"
  done
  mounted=()
}

shutting_down=0
on_term() {
  shutting_down=1
  say "SIGTERM: unmounting ${#mounted[@]} repositories"
  unmount_all
  say "stopped"
  exit 0
}
trap on_term TERM INT
trap 'unmount_all' EXIT

# The local cluster's agents share one machine, so several stand-ins may bind the same host directory
# and start at the same moment. Without taking turns, one replaced another's mount while that one was
# still filling it (files written beside the mount, tmpfs stacked on tmpfs). The lock is on the
# directory itself, so nothing is created in /cvmfs.
exec 9<"$CVMFS_MOUNT_DIR"
flock 9 || die "cannot lock $CVMFS_MOUNT_DIR"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for r in "${repos[@]}"; do
  d="$CVMFS_MOUNT_DIR/$r"
  mkdir -p "$d"
  # A mount left behind by a killed predecessor ("transport endpoint is not connected" for real CVMFS).
  if mountpoint -q "$d"; then say "stale mount at $d: unmounting"; umount -l "$d"; fi
  mount -t tmpfs -o "size=${CVMFS_STANDIN_REPO_SIZE_MB}m,mode=0755" "cvmfs-standin-$r" "$d" || die "mounting $d failed"
  mounted+=("$r")
  mkdir -p "$d/software/bin" "$d/etc"
  cat >"$d/marker" <<MARK
repository=$r
standin=steward/cvmfs-standin
CVMFS_HTTP_PROXY=$CVMFS_HTTP_PROXY
mounted_at=$now
MARK
  echo "This is not CVMFS: a stand-in mount made by steward/cvmfs-standin for repository $r." >"$d/README.standin"
  echo "$r (stand-in)" >"$d/etc/motd"
  printf '#!/bin/sh\necho "hello from %s (cvmfs-standin)"\n' "$r" >"$d/software/bin/hello"
  chmod 0755 "$d/software/bin/hello"
  chmod -R a+rX "$d"
  # CVMFS is read-only to everyone.
  mount -o remount,ro "$d" || die "remounting $d read-only failed"
  say "mounted $d (proxy: ${CVMFS_HTTP_PROXY:-none})"
done
flock -u 9
exec 9<&-
say "ready: ${repos[*]}"

# Wait for SIGTERM; `wait` returns as soon as a trapped signal arrives.
sleep infinity &
while [ "$shutting_down" = 0 ]; do wait $! || true; done
