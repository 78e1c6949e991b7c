#!/usr/bin/env python3
"""Pushes a small image (one config blob, no layers) to a registry over its HTTP API.

Usage: push-image.py HOST:PORT REPOSITORY TAG [CREATED]

For the local stack and demos: the registry is plain HTTP on loopback. CREATED is the
image's creation time (RFC 3339, default now), which Ferry orders glob-filtered tags by.
Prints the manifest digest.
"""
import datetime
import hashlib
import json
import sys
import urllib.request


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    registry, repository, tag = sys.argv[1:4]
    created = sys.argv[4] if len(sys.argv) == 5 else datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    base = f"http://{registry}/v2/{repository}"
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Labels": {"org.opencontainers.image.version": tag}},
        "rootfs": {"type": "layers", "diff_ids": []},
    }).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    with urllib.request.urlopen(urllib.request.Request(base + "/blobs/uploads/", method="POST")) as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    location += ("&" if "?" in location else "?") + "digest=" + digest
    urllib.request.urlopen(urllib.request.Request(
        location, data=config, method="PUT",
        headers={"Content-Type": "application/octet-stream"})).close()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": digest},
        "layers": [],
    }).encode()
    with urllib.request.urlopen(urllib.request.Request(
            f"{base}/manifests/{tag}", data=manifest, method="PUT",
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})) as r:
        print(r.headers.get("Docker-Content-Digest", ""))


if __name__ == "__main__":
    main()
