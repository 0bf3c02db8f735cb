#!/usr/bin/env bash
# Build Steward's production images (see README.md next to this script). Not run by CI: the bases
# come from registries (Docker Hub, registry.cern.ch) that CI cannot reach. The Steward image also
# builds from the local Debian base (deploy/images/build.sh): pass STEWARD_BASE_IMAGE.
#
#   deploy/images/production/build.sh [--push] [--network host] [IMAGE...]   # IMAGE: steward squid startd cvmfs
#
# Environment (all optional):
#   IMAGE_PREFIX            name prefix, e.g. registry.example.org/steward   (default: steward)
#   IMAGE_TAG               tag of every image                                (default: the git commit)
#   STEWARD_BASE_IMAGE      Steward's base        (default in the Dockerfile: python:3.11-slim-bookworm)
#   SQUID_BASE_IMAGE        squid's base          (default in the Dockerfile: debian:bookworm-slim)
#   HTCONDOR_EXECUTE_IMAGE  the startd's base     (default in the Dockerfile: htcondor/execute:23.0-el9)
#   CVMFS_SERVICE_IMAGE     the CVMFS client's    (default in the Dockerfile: registry.cern.ch/cvmfs/service:2.11.2-1)
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_FIND_LINKS, PIP_NO_INDEX
#                           passed to pip in Steward's build (a mirror, or a wheelhouse over HTTP)
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
die() { echo "build.sh: error: $*" >&2; exit 1; }

push=0
network=()
images=()
while [ $# -gt 0 ]; do
  case "$1" in
    --push) push=1; shift ;;
    --network) [ $# -ge 2 ] || die "--network needs a value"; network=(--network "$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    steward|squid|startd|cvmfs) images+=("$1"); shift ;;
    *) die "unknown argument '$1' (images: steward squid startd cvmfs)" ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(steward squid startd cvmfs)

prefix=${IMAGE_PREFIX:-steward}
tag=${IMAGE_TAG:-$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo dev)}
# The legacy builder: the Engines this was written for have no buildx.
export DOCKER_BUILDKIT=0

arg() { # arg NAME VALUE: a --build-arg only when VALUE is set, so the Dockerfile's default applies otherwise
  [ -z "$2" ] || printf -- '--build-arg\n%s=%s\n' "$1" "$2"
}

build_steward() {
  local name="$prefix/steward:$tag" args=()
  mapfile -t args < <(arg BASE_IMAGE "${STEWARD_BASE_IMAGE:-}"; arg PIP_INDEX_URL "${PIP_INDEX_URL:-}";
                      arg PIP_EXTRA_INDEX_URL "${PIP_EXTRA_INDEX_URL:-}"; arg PIP_TRUSTED_HOST "${PIP_TRUSTED_HOST:-}";
                      arg PIP_FIND_LINKS "${PIP_FIND_LINKS:-}"; arg PIP_NO_INDEX "${PIP_NO_INDEX:-}")
  # Only files git knows or would add go into the context (no virtualenv, no run/ state).
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard -- setup.cfg pyproject.toml README.md framework executors \
      deploy/images/production/steward | tar --null -T - -cf -) \
    | docker build "${network[@]}" "${args[@]}" -f deploy/images/production/steward/Dockerfile -t "$name" - >&2
  echo "$name"
}

build_dir() { # build_dir IMAGE BUILD-ARG-NAME VALUE: context deploy/images, so that an image can share a
  # file with the local ones (the startd's steward-startd-drain)
  local name="$prefix/$1:$tag" args=()
  mapfile -t args < <(arg "$2" "$3")
  docker build "${network[@]}" "${args[@]}" -f "$here/$1/Dockerfile" -t "$name" "$here/.." >&2
  echo "$name"
}

built=()
for image in "${images[@]}"; do
  case "$image" in
    steward) name=$(build_steward) ;;
    squid) name=$(build_dir squid BASE_IMAGE "${SQUID_BASE_IMAGE:-}") ;;
    startd) name=$(build_dir startd HTCONDOR_EXECUTE_IMAGE "${HTCONDOR_EXECUTE_IMAGE:-}") ;;
    cvmfs) name=$(build_dir cvmfs CVMFS_SERVICE_IMAGE "${CVMFS_SERVICE_IMAGE:-}") ;;
  esac
  built+=("$name")
done
for name in "${built[@]}"; do
  echo "built $name"
  [ "$push" = 0 ] || docker push "$name"
done
