#!/usr/bin/env bash
# Host preparation for examples/local-demo.yaml on the embedded cluster: the shared /cvmfs the CVMFS
# stand-ins mount into (rshared, so startds see the mounts through rslave binds) and the directory
# the central manager writes the pool token into. Idempotent; run as root.
set -euo pipefail
root=/tmp/steward-local-demo
mkdir -p "$root/cvmfs" "$root/tokens"
chmod 0755 "$root/cvmfs" "$root/tokens"
if ! mountpoint -q "$root/cvmfs"; then
  mount --bind "$root/cvmfs" "$root/cvmfs"
fi
mount --make-rshared "$root/cvmfs"
echo "prepared $root (shared /cvmfs mount, token directory)"
