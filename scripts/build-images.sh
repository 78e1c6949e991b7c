#!/usr/bin/env bash
# Builds Ferry's container images without a Docker daemon and without pulling a base image:
# ferry-api, ferry-git-writer, ferry-registry-scanner, ferry-cluster-syncer and ferryctl
# (also the Drone plugin image). Each is one layer: the stripped binary from the build
# folder, the shared libraries it links taken from their Debian 12 packages (downloaded with
# apt-get into a cache), CA certificates, tzdata, /etc/passwd with the user 65532 (nonroot),
# the packages' copyright files and an SPDX SBOM (/usr/share/doc/ferry/sbom.spdx.json). No
# shell and no package manager in the service images; ferryctl's has busybox (Drone runs
# commands in it); git-writer's has ssh-keygen (its deploy key, signing, verification), the
# image's "tools", with their libraries. The definition (ports, state folders, extra
# packages, tools) is deploy/images/images.json; the Dockerfiles are generated from it.
#
# Reproducible: sorted tar entries, owners root or 65532, every mtime and the config's
# `created` at SOURCE_DATE_EPOCH (default: the last commit's time), gzip without name or
# time. The same commit and the same package versions give the same digests.
#
# Usage: scripts/build-images.sh [--out DIR] [--only NAME]... [--push REGISTRY[/PREFIX]]
#        scripts/build-images.sh --write-dockerfiles | --check-dockerfiles
#   --out DIR        where the OCI layouts go, one per image: DIR/NAME (default build/images),
#                    tagged VERSION (the CMake project's) and the short git revision
#                    (-dirty with uncommitted changes); DIR/NAME.spdx.json is the SBOM
#   --only NAME      build only this image (repeatable)
#   --push R/P       push to registry R as R/P/NAME:VERSION and :REVISION (plain http for
#                    loopback registries; credentials from REGISTRY_AUTH_FILE, containers'
#                    auth.json or ~/.docker/config.json). All images' blobs and manifests
#                    are pushed by digest first; the tags are set only when every image is in.
#   --write-dockerfiles   regenerate deploy/images/*/Dockerfile, deploy/drone-plugin/Dockerfile
#   --check-dockerfiles   fail if they are out of date
# Environment: FERRY_BUILD_DIR (default build), FERRY_IMAGES_CACHE (default
# /var/cache/ferry-images), SOURCE_DATE_EPOCH, FERRY_IMAGE_REVISION (the commit the binaries
# come from, default HEAD), FERRY_IMAGE_SOURCE (default: git remote origin),
# FERRY_IMAGE_LICENSES (SPDX expression, default NOASSERTION).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in apt-get apt-cache dpkg dpkg-deb ldd objcopy python3 git; do
  command -v "$tool" >/dev/null || {
    echo "build-images.sh: $tool is missing (run scripts/install-deps.sh; this needs Debian 12)" >&2
    exit 1
  }
done
exec python3 scripts/images/oci_build.py "$@"
