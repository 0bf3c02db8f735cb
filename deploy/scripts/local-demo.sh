#!/usr/bin/env bash
# The local demo's host side (make run, make demo). Run as root from the repository.
#
#   local-demo.sh prepare      the shared /cvmfs the CVMFS stand-ins mount into (rshared, so startds
#                              see the mounts through rslave binds) and the pool token directory
#   local-demo.sh run [ARGS]   prepare, `steward run --live` on examples/local-demo.yaml, then clean up
#   local-demo.sh demo [ARGS]  prepare, `steward demo` (load ramp, job burst, PNG), then clean up
#   local-demo.sh cleanup      what a stopped demo may have left: its containers (a safety net: Steward
#                              removes them itself when it stops), the mounts below the demo directory,
#                              the directory, and the demo's store (its tasks died with the embedded
#                              cluster, so a next run starts afresh; the logs stay in run/)
#   local-demo.sh leftovers    list what is left (containers, mounts, processes); exit 1 if anything is
#
# Ctrl-C during run or demo stops Steward (it stops the embedded cluster, which stops every task's
# container within its kill grace period), then cleans up and reports whether anything was left.
set -euo pipefail

root=${STEWARD_DEMO_ROOT:-/tmp/steward-local-demo}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
config=${STEWARD_DEMO_CONFIG:-$repo/examples/local-demo.yaml}
logs=${STEWARD_DEMO_LOGS:-$repo/run/local-demo}
store=${STEWARD_DEMO_STORE:-$repo/run/local-demo/state}  # framework.store.path of the demo config
steward=${STEWARD:-$repo/.venv/bin/steward}
# Docker's label filter for the embedded cluster's containers (KEY or KEY=cluster-id).
label=${STEWARD_DEMO_LABEL:-org.steward.localcluster}

prepare() {
  mkdir -p "$root/cvmfs" "$root/tokens"
  chmod 0755 "$root/cvmfs" "$root/tokens"
  if ! mountpoint -q "$root/cvmfs"; then
    mount --bind "$root/cvmfs" "$root/cvmfs"
  fi
  mount --make-rshared "$root/cvmfs"
  echo "prepared $root (shared /cvmfs mount, token directory)"
}

demo_containers() {
  docker ps -aq --filter "label=$label" 2>/dev/null || true
}

demo_mounts() {
  # Deepest first, so they can be unmounted in this order.
  findmnt -rn -o TARGET 2>/dev/null | grep -E "^$root(/|$)" | sort -r || true
}

demo_processes() {
  pgrep -f -- "framework.cli run --config $config|steward run --config $config|steward demo" || true
}

cleanup() {
  local ids
  ids=$(demo_containers)
  if [[ -n $ids ]]; then
    echo "cleanup: removing $(wc -w <<<"$ids") container(s) an embedded cluster left behind"
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null
  fi
  local target
  while read -r target; do
    [[ -n $target ]] || continue
    umount "$target" 2>/dev/null || umount -l "$target"
  done < <(demo_mounts)
  rm -rf "$root"
  rm -rf "$store"
}

leftovers() {
  local found=0 ids mounts procs
  ids=$(demo_containers)
  mounts=$(demo_mounts)
  procs=$(demo_processes)
  if [[ -n $ids ]]; then echo "left: containers: $ids"; found=1; fi
  if [[ -n $mounts ]]; then echo "left: mounts: $mounts"; found=1; fi
  if [[ -n $procs ]]; then echo "left: processes: $procs"; found=1; fi
  if [[ -e $root ]]; then echo "left: directory $root"; found=1; fi
  if ((found == 0)); then echo "nothing left: no demo container, mount, process or directory"; fi
  return "$found"
}

under_cleanup() {
  # Run "$@" in the foreground; whatever way it ends (done, Ctrl-C, error), clean up after it.
  local running
  running=$(demo_processes)
  if [[ -n $running ]]; then
    echo "a demo is already running (pid $(tr '\n' ' ' <<<"$running")); stop it first (Ctrl-C in its terminal)" >&2
    return 1
  fi
  if [[ -n $(demo_containers) || -n $(demo_mounts) || -e $store ]]; then
    # What an earlier run left when it was killed (kill -9, a closed terminal, a reboot of dockerd).
    echo "cleaning up what an earlier run left behind"
    cleanup
  fi
  prepare
  local status=0
  # A trap that is not "ignore": the child gets the default SIGINT and handles it itself (Steward
  # stops in order); this shell waits for it, then cleans up.
  trap 'echo "(interrupted: cleaning up once Steward has stopped)"' INT TERM
  "$@" || status=$?
  trap - INT TERM
  cleanup
  leftovers || status=1
  return "$status"
}

case "${1:-}" in
  prepare) prepare ;;
  cleanup) cleanup ;;
  leftovers) leftovers ;;
  run)
    shift
    mkdir -p "$logs"
    under_cleanup "$steward" run --config "$config" --live --log-file "$logs/steward.log" "$@"
    ;;
  demo)
    shift
    mkdir -p "$repo/run/demo"
    under_cleanup "$steward" demo --config "$config" --out "$repo/run/demo" "$@"
    ;;
  *)
    echo "usage: $0 prepare|run|demo|cleanup|leftovers" >&2
    exit 2
    ;;
esac
