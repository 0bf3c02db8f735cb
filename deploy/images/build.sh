#!/usr/bin/env bash
# Build the container images that Steward's local runs and integration tests use, on this machine and
# with no image registry: no registry is reachable from the project's machines, only Debian's package
# archive. So the base images are made with debootstrap from the archive this machine's apt already
# uses, imported with `docker import`, and the service images are built FROM them with `docker build`.
#
# Idempotent: a base image that exists is reused (unless --rebuild); service images always go through
# `docker build`, whose layer cache makes an unchanged image a matter of seconds, and a changed
# entrypoint or Dockerfile is never silently left stale.
#
# Usage: deploy/images/build.sh [--only NAME] [--rebuild] [--list] [--help]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOCAL_ROOT="$HERE/local"
PREFIX=${STEWARD_IMAGE_PREFIX:-steward}
TAG=${STEWARD_IMAGE_TAG:-local}

# name -> Debian suite of its base; the order is the build order.
BASES=(bookworm trixie)
# name:base-suite. squid from bookworm (squid 5.7); htcondor needs trixie (bookworm has no HTCondor).
SERVICES=(squid:bookworm htcondor:trixie cvmfs-standin:bookworm)

ONLY=""
REBUILD=0
LIST=0

log() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<EOF
Usage: $0 [--only NAME] [--rebuild] [--list] [--help]

Builds, without any image registry:
  ${PREFIX}/base-bookworm:${TAG}, ${PREFIX}/base-trixie:${TAG}   debootstrap --variant=minbase + docker import
  ${PREFIX}/squid:${TAG}          Debian bookworm squid (deploy/images/local/squid)
  ${PREFIX}/htcondor:${TAG}       Debian trixie condor, all roles (deploy/images/local/htcondor)
  ${PREFIX}/cvmfs-standin:${TAG}  a STAND-IN for the CVMFS client (deploy/images/local/cvmfs-standin)

  --only NAME   build only NAME (base-bookworm, base-trixie, squid, htcondor, cvmfs-standin);
                a missing base image that NAME needs is built too
  --rebuild     rebuild the selected images from scratch (new debootstrap, docker build --no-cache)
  --list        print the image names this script builds, and whether each exists, then exit

The Debian archive is the one this machine's apt uses (/etc/apt/sources.list.d/*.sources or
/etc/apt/sources.list); STEWARD_DEBIAN_MIRROR (and STEWARD_DEBIAN_SECURITY_MIRROR) override it.
STEWARD_IMAGE_PREFIX (default steward) and STEWARD_IMAGE_TAG (default local) name the images.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --only) [ $# -ge 2 ] || die "--only needs a NAME"; ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#--only=}; shift ;;
    --rebuild) REBUILD=1; shift ;;
    --list) LIST=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

all_names() {
  local s
  for s in "${BASES[@]}"; do echo "base-$s"; done
  for s in "${SERVICES[@]}"; do echo "${s%%:*}"; done
}

if [ -n "$ONLY" ] && ! all_names | grep -qxF -- "$ONLY"; then
  die "unknown image name '$ONLY' (known: $(all_names | tr '\n' ' '))"
fi

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker Engine (is dockerd running, and may this user use it?)"

image_ref() { echo "${PREFIX}/$1:${TAG}"; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

if [ "$LIST" = 1 ]; then
  for n in $(all_names); do
    ref=$(image_ref "$n")
    if image_exists "$ref"; then echo "$ref present"; else echo "$ref missing"; fi
  done
  exit 0
fi

# ---- temporary directories, removed on any exit ------------------------------------------------------
TMPDIRS=()
cleanup() {
  local d m
  for d in "${TMPDIRS[@]}"; do
    [ -d "$d" ] || continue
    # A debootstrap that failed half-way can leave proc/sys mounted inside its target: unmount those
    # (deepest first) before deleting, and never let rm cross into another filesystem.
    awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$d"
  done
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

# ---- the Debian archive this machine uses ------------------------------------------------------------
# Printed as "<archive URI> <security URI or ->": read from the deb822 sources (debian.sources or any
# *.sources) or from one-line sources.list files. The archive is the entry carrying a plain suite name
# (bookworm, trixie, ...), the security archive the one carrying "<suite>-security".
host_apt_uris() {
  python3 - <<'EOF'
import glob, re
# Only Debian's own suites count, so that third-party repositories (nodesource, cloud SDKs) are ignored.
DEBIAN = {"buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
          "oldstable", "stable", "testing", "unstable"}
archive = security = None
def consider(uris, suites):
    global archive, security
    for suite in suites:
        if suite.endswith("-security") and suite.split("-")[0] in DEBIAN and uris:
            security = security or uris[0]
        elif suite in DEBIAN and uris:
            archive = archive or uris[0]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path, encoding="utf-8").read()):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"])[0].lower() == "no":
            continue
        consider(fields.get("uris", []), fields.get("suites", []))
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            consider([words[1]], [words[2]])
print(archive or "", security or "-")
EOF
}

MIRROR=""
SECURITY=""
resolve_mirror() {
  [ -n "$MIRROR" ] && return 0
  if [ -n "${STEWARD_DEBIAN_MIRROR:-}" ]; then
    # An explicit archive (and optional security archive) for machines whose apt sources say otherwise.
    MIRROR=$STEWARD_DEBIAN_MIRROR
    SECURITY=${STEWARD_DEBIAN_SECURITY_MIRROR:-}
    log "Debian archive from STEWARD_DEBIAN_MIRROR: $MIRROR${SECURITY:+ (security: $SECURITY)}"
    return 0
  fi
  read -r MIRROR SECURITY < <(host_apt_uris) || true
  [ -n "$MIRROR" ] || die "found no Debian archive in this machine's apt sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list)"
  [ "$SECURITY" = "-" ] && SECURITY=""
  log "Debian archive from this machine's apt sources: $MIRROR${SECURITY:+ (security: $SECURITY)}"
}

# ---- base images ---------------------------------------------------------------------------------------
ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "debootstrap is not installed and this is not root: apt-get install debootstrap"
  log "installing debootstrap (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null \
    || die "apt-get install debootstrap failed"
}

# Apt configuration for a rootfs: the same archive as this machine, for the image's own suite, so that
# `apt-get install` inside `docker build` reaches what the host reaches; plus any apt proxy the host uses.
write_apt_config() {
  local root=$1 suite=$2 signed=""
  [ -f "$root/usr/share/keyrings/debian-archive-keyring.gpg" ] \
    && signed="Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n%s\n' "$MIRROR" "$suite" "$suite" "$signed"
    if [ -n "$SECURITY" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n%s\n' "$SECURITY" "$suite" "$signed"
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"
  {
    echo '// Written by deploy/images/build.sh: lean, retrying installs inside docker build.'
    echo 'APT::Install-Recommends "false";'
    echo 'APT::Install-Suggests "false";'
    echo 'Acquire::Retries "3";'
    echo 'Acquire::Languages "none";'
    # The host's apt proxy settings, if any, so the image fetches the way the host does.
    apt-config dump 2>/dev/null | grep -E '^Acquire::(http|https|ftp)::Proxy' || true
  } >"$root/etc/apt/apt.conf.d/90steward"
}

build_base() {
  local suite=$1 ref tmp started
  ref=$(image_ref "base-$suite")
  if image_exists "$ref" && [ "$REBUILD" = 0 ]; then
    log "$ref exists: reused (--rebuild to make it again)"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "making $ref needs root (debootstrap); run as root or build it once as root"
  ensure_debootstrap
  resolve_mirror
  tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/steward-base-$suite.XXXXXX")
  TMPDIRS+=("$tmp")
  started=$SECONDS
  log "debootstrap --variant=minbase $suite $tmp/rootfs $MIRROR"
  if ! debootstrap --variant=minbase "$suite" "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log" >&2 || true
    tail -n 30 "$tmp/rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap of $suite from $MIRROR failed"
  fi
  write_apt_config "$tmp/rootfs" "$suite"
  # Nothing host-specific or cached goes into the image: docker provides resolv.conf/hostname at run time.
  rm -rf "$tmp/rootfs/var/lib/apt/lists/"* "$tmp/rootfs/var/cache/apt/"*.bin "$tmp/rootfs/var/cache/apt/archives/"*.deb
  rm -f "$tmp/rootfs/etc/resolv.conf" "$tmp/rootfs/etc/hostname"
  log "docker import -> $ref"
  tar --numeric-owner -C "$tmp/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.opencontainers.image.title=$ref" \
    --change "LABEL org.opencontainers.image.description=\"Debian $suite minbase, made by deploy/images/build.sh\"" \
    --message "debootstrap --variant=minbase $suite" - "$ref" >/dev/null \
    || die "docker import of $ref failed"
  log "$ref built in $((SECONDS - started)) s"
}

# ---- service images ------------------------------------------------------------------------------------
build_service() {
  local name=$1 suite=$2 ref base ctx started previous current nocache=()
  ref=$(image_ref "$name")
  base=$(image_ref "base-$suite")
  ctx="$LOCAL_ROOT/$name"
  [ -f "$ctx/Dockerfile" ] || die "no Dockerfile at $ctx"
  image_exists "$base" || build_base "$suite"
  [ "$REBUILD" = 1 ] && nocache=(--no-cache)
  previous=$(docker image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
  started=$SECONDS
  log "docker build $ref (FROM $base, context $ctx)"
  # The legacy builder: the project's Docker Engine has no buildx. Host networking, so the build
  # reaches the Debian archive exactly as this machine does.
  if ! DOCKER_BUILDKIT=0 docker build --network host "${nocache[@]}" \
      --build-arg "BASE_IMAGE=$base" -t "$ref" "$ctx" >"$BUILD_LOG" 2>&1; then
    tail -n 40 "$BUILD_LOG" >&2 || true
    die "docker build of $ref failed"
  fi
  log "$ref built in $((SECONDS - started)) s"
  # The image this build replaced is now untagged: remove it unless a container still uses it.
  current=$(docker image inspect --format '{{.Id}}' "$ref")
  if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    docker rmi "$previous" >/dev/null 2>&1 && log "removed the replaced image ${previous#sha256:}" || true
  fi
}

LOGDIR=$(mktemp -d "${TMPDIR:-/var/tmp}/steward-images-log.XXXXXX")
TMPDIRS+=("$LOGDIR")
BUILD_LOG="$LOGDIR/build.log"

TOTAL_START=$SECONDS
for suite in "${BASES[@]}"; do
  if [ -z "$ONLY" ] || [ "$ONLY" = "base-$suite" ]; then build_base "$suite"; fi
done
for entry in "${SERVICES[@]}"; do
  name=${entry%%:*}
  if [ -z "$ONLY" ] || [ "$ONLY" = "$name" ]; then build_service "$name" "${entry#*:}"; fi
done
log "done in $((SECONDS - TOTAL_START)) s"
