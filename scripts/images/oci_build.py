#!/usr/bin/env python3
"""Builds Ferry's container images without a Docker daemon and without a base image.

Run through scripts/build-images.sh (which documents the options). For each image in
deploy/images/images.json: the binary (stripped) and the image's tools (programs the binary
runs, e.g. ssh-keygen), the shared libraries they link (ldd) taken from the Debian 12
packages that own them (dpkg -S, then `apt-get download` of the archive's current version
into a cache), CA certificates, tzdata, /etc/passwd with uid 65532, the
packages' copyright files, a dpkg status.d entry per package (for image scanners) and an
SPDX 2.3 SBOM. The layer is a tar with sorted entries, fixed owners and SOURCE_DATE_EPOCH
mtimes, gzip without name or time: the same commit and package versions give the same
digests. Output: one OCI layout per image (OUT/NAME), tagged VERSION and REVISION.

Python standard library only.
"""
import argparse
import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFINITION = os.path.join(ROOT, "deploy", "images", "images.json")
PROG = "build-images.sh"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = "root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"


class Failure(Exception):
    pass


def fail(message):
    raise Failure(message)


def log(message):
    print(message, file=sys.stderr, flush=True)


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, **kwargs).stdout


def load_definition():
    with open(DEFINITION) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------
# What goes into an image: libraries, their packages, the package files.


def linked_libraries(binary):
    """[(soname, host path)] of every shared library `binary` loads, and its interpreter."""
    out = run(["ldd", binary])
    libs = []
    for line in out.splitlines():
        line = line.strip()
        m = re.match(r"(\S+) => (/\S+) \(0x", line)
        if m:
            libs.append((m.group(1), m.group(2)))
            continue
        m = re.match(r"(/\S+) \(0x", line)
        if m:  # the interpreter, e.g. /lib64/ld-linux-x86-64.so.2
            libs.append((os.path.basename(m.group(1)), m.group(1)))
        elif "not found" in line:
            fail(f"{binary}: {line} (install its package, see scripts/install-deps.sh)")
    return libs


def path_variants(path):
    real = os.path.realpath(path)
    out = []
    for p in (path, real):
        out += [p, "/usr" + p if not p.startswith("/usr/") else p[4:]]
    return list(dict.fromkeys(out))


def owning_packages(paths):
    """{host path: package} via one dpkg -S over every /lib vs /usr/lib variant."""
    candidates = sorted({v for p in paths for v in path_variants(p)})
    proc = subprocess.run(["dpkg", "-S"] + candidates, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    owner_of = {}
    for line in proc.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        if "diversion" in pkgs:
            continue
        owner_of.setdefault(path, pkgs.split(",")[0].strip().split(":")[0])
    result = {}
    for p in paths:
        for v in path_variants(p):
            if v in owner_of:
                result[p] = owner_of[v]
                break
        else:
            fail(f"{p} belongs to no Debian package (dpkg -S): the images take libraries only "
                 "from Debian packages")
    return result


def candidate_versions(packages, update=True):
    """{package: (version, architecture, .deb file name)} of the archive's current versions."""
    proc = subprocess.run(["apt-cache", "show", "--no-all-versions"] + sorted(packages),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = {}
    for stanza in proc.stdout.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.M))
        if "Package" in fields and "Filename" in fields:
            found[fields["Package"]] = (fields["Version"], fields["Architecture"],
                                        os.path.basename(fields["Filename"]))
    missing = sorted(set(packages) - set(found))
    if missing and update and os.geteuid() == 0:
        # A fresh Debian image has no package lists: fetch them once.
        log(f"{PROG}: apt knows no downloadable {' '.join(missing)}: running apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        return candidate_versions(packages, update=False)
    if missing:
        fail(f"apt knows no downloadable version of {' '.join(missing)}: run `apt-get update` "
             "(the images are assembled from the Debian archive's packages)")
    return found


def fetch_debs(packages, cache, retry=True):
    """Downloads (once) the current .deb of each package into cache/debs and unpacks it into
    cache/root/<deb name>. Returns {package: {version, arch, deb, root, control}}."""
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    versions = candidate_versions(packages)
    # apt-get names files with the epoch's ':' as %3a; the archive's Filename has none.
    def local_name(pkg):
        version, arch, _ = versions[pkg]
        return f"{pkg}_{version.replace(':', '%3a')}_{arch}.deb"
    need = [p for p in sorted(packages) if not os.path.exists(os.path.join(debs, local_name(p)))]
    if need:
        log(f"{PROG}: downloading {len(need)} Debian packages into {debs}")
        argv = ["apt-get", "download", "-q"]
        if os.geteuid() == 0:
            argv += ["-o", "APT::Sandbox::User=root"]
        proc = subprocess.run(argv + [f"{p}={versions[p][0]}" for p in need], cwd=debs,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0 and retry and os.geteuid() == 0:
            # Package lists older than the archive name versions it no longer has: refresh
            # them once and try again.
            log(f"{PROG}: apt-get download failed: running apt-get update and trying again")
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            return fetch_debs(packages, cache, retry=False)
        if proc.returncode != 0:
            fail(f"apt-get download {' '.join(need)} failed:\n{proc.stdout.strip()}")
    result = {}
    for pkg in sorted(packages):
        deb = os.path.join(debs, local_name(pkg))
        if not os.path.exists(deb):
            fail(f"apt-get download left no {deb}")
        root = os.path.join(cache, "root", local_name(pkg)[:-4])
        if not os.path.isdir(root):
            os.makedirs(os.path.dirname(root), exist_ok=True)
            # A folder of this build's own: another build unpacking the same package at the
            # same time keeps its own, and whichever renames second finds the root in place.
            tmp = tempfile.mkdtemp(prefix=os.path.basename(root) + ".", dir=os.path.dirname(root))
            subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
            with open(os.path.join(tmp, ".control"), "w") as f:
                f.write(run(["dpkg-deb", "-f", deb]))
            try:
                os.rename(tmp, root)
            except OSError:
                if not os.path.isdir(root):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        with open(os.path.join(root, ".control")) as f:
            control = f.read()
        result[pkg] = {"version": versions[pkg][0], "arch": versions[pkg][1], "root": root,
                       "deb": deb, "control": control}
    return result


class Tree:
    """The image's files: path (no leading /) -> entry."""

    def __init__(self):
        self.entries = {}
        self.packages = set()  # packages with files in the image

    def add_dir(self, path, mode=0o755, uid=0, gid=0):
        self._parents(path)
        self.entries[path.strip("/")] = {"type": "dir", "mode": mode, "uid": uid, "gid": gid}

    def add_bytes(self, path, data, mode=0o644):
        self._parents(path)
        self.entries[path.strip("/")] = {"type": "file", "data": data, "mode": mode}

    def add_symlink(self, path, target):
        self._parents(path)
        self.entries[path.strip("/")] = {"type": "symlink", "target": target}

    def _parents(self, path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            self.entries.setdefault(d, {"type": "dir", "mode": 0o755, "uid": 0, "gid": 0})

    def add_from_package(self, pkg, info, path):
        """Copies `path` (image path) from the package's files; follows symlinks within it."""
        rel = path.strip("/")
        src = os.path.join(info["root"], rel)
        if not os.path.lexists(src):
            return False
        self.packages.add(pkg)
        if os.path.islink(src):
            target = os.readlink(src)
            self.add_symlink(rel, target)
            resolved = os.path.normpath(
                target if target.startswith("/") else os.path.join("/", os.path.dirname(rel), target))
            if resolved.strip("/") not in self.entries:
                if not self.add_from_package(pkg, info, resolved):
                    fail(f"{pkg}: {path} links to {target}, which the package does not ship")
            return True
        if os.path.isdir(src):
            self.add_dir(rel)
            return True
        with open(src, "rb") as f:
            self.add_bytes(rel, f.read(), 0o755 if os.stat(src).st_mode & 0o111 else 0o644)
        return True

    def add_package_tree(self, pkg, info, subdir, exclude=()):
        base = os.path.join(info["root"], subdir.strip("/"))
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, info["root"])
            dirnames[:] = sorted(d for d in dirnames
                                 if os.path.join(rel_dir, d) not in exclude)
            for name in sorted(dirnames + filenames):
                rel = os.path.join(rel_dir, name)
                if rel in exclude:
                    continue
                self.add_from_package(pkg, info, rel)


def runtime_files(image, binary):
    """What the image's programs need at run time: the binary and the image's `tools` (host
    paths of programs the binary runs, e.g. /usr/bin/ssh-keygen), each with the shared
    libraries it links (ldd). Returns ([(soname, host path)] of the libraries, {host path:
    package} for every library and tool (dpkg -S), [tool paths])."""
    tools = image.get("tools", [])
    for tool in tools:
        if not os.path.isabs(tool):
            fail(f"{image['name']}: tool {tool!r} is not an absolute path")
        if not os.access(tool, os.X_OK):
            fail(f"{image['name']}: its tool {tool} is not on this host (install the Debian "
                 "package that ships it, see scripts/install-deps.sh): its libraries and "
                 "package are found from the host's copy")
    libs = []
    for program in [binary] + tools:
        for lib in linked_libraries(program):
            if lib not in libs:
                libs.append(lib)
    owners = owning_packages([p for _, p in libs] + tools)
    return libs, owners, tools


def find_library(pkg, info, soname, host_path):
    """The image path where `pkg` ships `soname` (the host path may be /lib or /usr/lib)."""
    for p in path_variants(host_path):
        d = os.path.dirname(p)
        if os.path.lexists(os.path.join(info["root"], d.strip("/"), soname)):
            return os.path.join(d, soname)
    fail(f"{pkg} {info['version']} ships no {soname} (the host has it at {host_path}): "
         "the binary was built against another version; run `apt-get upgrade` and rebuild")


def ca_bundle(info):
    """/etc/ssl/certs/ca-certificates.crt as update-ca-certificates makes it: every Mozilla
    certificate the package ships, in name order."""
    base = os.path.join(info["root"], "usr/share/ca-certificates")
    pems = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".crt"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    data = f.read()
                pems.append(data if data.endswith(b"\n") else data + b"\n")
    if not pems:
        fail("ca-certificates ships no certificates")
    return b"".join(pems)


def busybox_applets(info):
    out = run([os.path.join(info["root"], "bin/busybox"), "--list-full"])
    return sorted(line.strip() for line in out.splitlines() if line.strip())


# ---------------------------------------------------------------------------------------
# SBOM, layer, config, manifest, OCI layout.


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def spdx_id(text):
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", text)


def sbom(image, meta, pkgs, tree):
    """SPDX 2.3: Ferry's binary and every Debian package with files in the image."""
    ferry_id = spdx_id("ferry-" + image["name"])
    packages = [{
        "SPDXID": ferry_id,
        "name": image["name"],
        "versionInfo": meta["version"],
        "supplier": "Organization: Ferry",
        "downloadLocation": meta["source"],
        "sourceInfo": f"git revision {meta['revision_full']}",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": meta["licenses"],
        "copyrightText": "NOASSERTION",
        "filesAnalyzed": False,
        "externalRefs": [],
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": ferry_id}]
    for pkg in sorted(tree.packages):
        info = pkgs[pkg]
        pid = spdx_id(f"deb-{pkg}-{info['version']}")
        maint = re.search(r"^Maintainer: (.*)$", info["control"], re.M)
        packages.append({
            "SPDXID": pid,
            "name": pkg,
            "versionInfo": info["version"],
            "supplier": "Organization: " + (maint.group(1) if maint else "Debian"),
            "downloadLocation": "NOASSERTION",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "filesAnalyzed": False,
            "comment": f"Debian 12 package; its license: /usr/share/doc/{pkg}/copyright",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:deb/debian/{pkg}@{urllib.parse.quote(info['version'])}"
                                    f"?arch={info['arch']}&distro=debian-12",
            }],
        })
        relationships.append({"spdxElementId": ferry_id, "relationshipType": "DEPENDS_ON",
                              "relatedSpdxElement": pid})
    content = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image['name']}-{meta['version']}",
        "creationInfo": {"created": meta["created"],
                         "creators": ["Tool: ferry scripts/build-images.sh"]},
        "packages": packages,
        "relationships": relationships,
    }
    # The namespace must be unique per document: derive it from the content.
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    content["documentNamespace"] = (f"https://ferry.invalid/spdx/{image['name']}/"
                                    f"{meta['revision_full']}/{digest[:16]}")
    return json.dumps(content, indent=2, sort_keys=True).encode() + b"\n"


def layer_tar(tree, epoch):
    """The uncompressed layer: sorted entries, root owner unless set, fixed mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tree.entries):
            e = tree.entries[path]
            ti = tarfile.TarInfo(path)
            ti.mtime = epoch
            ti.uid = e.get("uid", 0)
            ti.gid = e.get("gid", 0)
            ti.uname = ti.gname = ""
            if e["type"] == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = e["mode"]
                tar.addfile(ti)
            elif e["type"] == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e["target"]
                ti.mode = 0o777
                tar.addfile(ti)
            else:
                ti.mode = e["mode"]
                ti.size = len(e["data"])
                tar.addfile(ti, io.BytesIO(e["data"]))
    return buf.getvalue()


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_layout(out_dir, blobs, manifest, tags):
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(os.path.join(out_dir, "blobs", "sha256"))
    for data in blobs:
        with open(os.path.join(out_dir, "blobs", "sha256", sha(data)[7:]), "wb") as f:
            f.write(data)
    with open(os.path.join(out_dir, "oci-layout"), "wb") as f:
        f.write(dumps({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": sha(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}} for tag in tags]}
    with open(os.path.join(out_dir, "index.json"), "wb") as f:
        f.write(dumps(index))


def build_image(image, definition, meta, build_dir, cache, out):
    binary = os.path.join(build_dir, image["binary"])
    if not os.access(binary, os.X_OK):
        fail(f"{binary} is not built: run `bash scripts/build.sh build` first (or "
             f"`cmake --build {os.path.relpath(build_dir, ROOT)}`; FERRY_BUILD_DIR picks another build folder)")
    version = run([binary, "--version"]).strip()
    if version != meta["version"]:
        fail(f"{binary} --version says {version!r}, the CMake project {meta['version']!r}: rebuild")

    libs, owners, tools = runtime_files(image, binary)
    wanted = set(owners.values()) | set(definition["extra_packages"])
    if image.get("shell"):
        wanted.add(image["shell"])
    pkgs = fetch_debs(wanted, cache)

    tree = Tree()
    for soname, host_path in libs:
        pkg = owners[host_path]
        path = find_library(pkg, pkgs[pkg], soname, host_path)
        tree.add_from_package(pkg, pkgs[pkg], path)
    # The interpreter the binary names (PT_INTERP) must be at exactly that path.
    interp = [p for s, p in libs if s.startswith("ld-linux")]
    for p in interp:
        if p.strip("/") not in tree.entries:
            tree.add_from_package(owners[p], pkgs[owners[p]], p)
    # The tools the binary runs, from their packages (the package's copy, not the host's), at
    # their path (the image's PATH has /usr/bin and /bin); only the tool, not the package.
    for tool in tools:
        pkg = owners[tool]
        if not any(tree.add_from_package(pkg, pkgs[pkg], v) for v in path_variants(tool)
                   if os.path.dirname(v) in ("/bin", "/usr/bin", "/sbin", "/usr/sbin")):
            fail(f"{pkg} {pkgs[pkg]['version']} ships no {tool} (the host's is from {pkg}): "
                 "run `apt-get upgrade`")

    tree.add_bytes("etc/ssl/certs/ca-certificates.crt", ca_bundle(pkgs["ca-certificates"]))
    tree.packages.add("ca-certificates")
    tree.add_package_tree("tzdata", pkgs["tzdata"], "usr/share/zoneinfo",
                          exclude={"usr/share/zoneinfo/right", "usr/share/zoneinfo/localtime"})
    if image.get("shell"):
        shell = image["shell"]
        tree.add_from_package(shell, pkgs[shell], "bin/busybox")
        for applet in busybox_applets(pkgs[shell]):
            # No package manager, even busybox's.
            if os.path.basename(applet) in ("dpkg", "dpkg-deb", "rpm", "rpm2cpio"):
                continue
            if applet.strip("/") not in tree.entries and applet != "/bin/busybox":
                rel = applet.strip("/")
                tree.add_symlink(rel, os.path.relpath("bin/busybox", os.path.dirname(rel)))

    tree.add_bytes("etc/passwd", PASSWD.encode())
    tree.add_bytes("etc/group", GROUP.encode())
    tree.add_bytes("etc/nsswitch.conf", NSSWITCH.encode())
    tree.add_bytes("etc/os-release", (
        'PRETTY_NAME="Ferry on Debian GNU/Linux 12 (bookworm) libraries"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
        'HOME_URL="https://www.debian.org/"\n').encode())
    tree.add_dir("tmp", 0o1777)
    tree.add_dir("root", 0o700)
    tree.add_dir(definition["workdir"], 0o700, 65532, 65532)
    for d in image.get("state_dirs", []):
        tree.add_dir(d, 0o700, 65532, 65532)

    # Ferry's binary, stripped (the debug symbols stay in the build folder).
    with tempfile.TemporaryDirectory() as tmp:
        stripped = os.path.join(tmp, "bin")
        subprocess.run(["objcopy", "--strip-all", binary, stripped], check=True)
        with open(stripped, "rb") as f:
            tree.add_bytes(f"usr/local/bin/{os.path.basename(binary)}", f.read(), 0o755)

    # Each package's copyright. Some packages' doc folder is a link to another package's
    # (libstdc++6 -> gcc-12-base): that package's copyright comes too.
    todo = sorted(tree.packages)
    while todo:
        pkg = todo.pop(0)
        doc = os.path.join(pkgs[pkg]["root"], "usr/share/doc", pkg)
        if os.path.islink(doc) and not os.path.exists(os.path.join(doc, "copyright")):
            other = os.path.basename(os.readlink(doc))
            tree.add_symlink(f"usr/share/doc/{pkg}", os.readlink(doc))
            if other not in pkgs:
                pkgs.update(fetch_debs({other}, cache))
            if other not in tree.packages:
                tree.packages.add(other)
                todo.append(other)
            continue
        if not tree.add_from_package(pkg, pkgs[pkg], f"usr/share/doc/{pkg}/copyright"):
            fail(f"{pkg} ships no usr/share/doc/{pkg}/copyright")
    for pkg in sorted(tree.packages):
        control = pkgs[pkg]["control"].rstrip("\n") + "\n"
        tree.add_bytes(f"var/lib/dpkg/status.d/{pkg}", control.encode())
    tree.add_bytes("usr/share/doc/ferry/sbom.spdx.json", sbom(image, meta, pkgs, tree))

    raw = layer_tar(tree, meta["epoch"])
    layer = gzip.compress(raw, compresslevel=9, mtime=0)
    annotations = {
        "org.opencontainers.image.title": image["name"],
        "org.opencontainers.image.description": f"Ferry: {image['summary']}",
        "org.opencontainers.image.source": meta["source"],
        "org.opencontainers.image.revision": meta["revision_full"],
        "org.opencontainers.image.version": meta["version"],
        "org.opencontainers.image.licenses": meta["licenses"],
        "org.opencontainers.image.created": meta["created"],
    }
    config = {
        "created": meta["created"],
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": definition["user"],
            "Entrypoint": [f"/usr/local/bin/{os.path.basename(binary)}"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + definition["workdir"],
                    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
            "WorkingDir": definition["workdir"],
            "ExposedPorts": {f"{p}/tcp": {} for p in image["ports"]},
            "Labels": annotations,
        },
        "rootfs": {"type": "layers", "diff_ids": [sha(raw)]},
        "history": [{"created": meta["created"], "created_by": "scripts/build-images.sh",
                     "comment": "Ferry's binary and the Debian 12 files it needs (see "
                                "/usr/share/doc/ferry/sbom.spdx.json)"}],
    }
    if not image["ports"]:
        del config["config"]["ExposedPorts"]
    config_blob = dumps(config)
    manifest = dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha(layer), "size": len(layer)}],
        "annotations": annotations,
    })
    write_layout(os.path.join(out, image["name"]), [layer, config_blob, manifest], manifest,
                 meta["tags"])
    sbom_path = os.path.join(out, image["name"] + ".spdx.json")
    with open(sbom_path, "wb") as f:
        f.write(tree.entries["usr/share/doc/ferry/sbom.spdx.json"]["data"])
    return {"name": image["name"], "digest": sha(manifest),
            "compressed": len(layer) + len(config_blob) + len(manifest), "uncompressed": len(raw),
            "packages": {p: pkgs[p]["version"] for p in sorted(tree.packages)},
            "run_packages": sorted(set(owners.values()) - {"libc6"}),
            "files": len(tree.entries)}


# ---------------------------------------------------------------------------------------
# Dockerfiles, from the same definition.

DOCKERFILE = """\
# {name}: {summary}.{extra_comment}
#
#   docker build -f {dockerfile} -t {name} .
#
# GENERATED by `scripts/build-images.sh --write-dockerfiles` from deploy/images/images.json
# and the libraries the binary links: edit those, not this file (the images test checks that
# this file is up to date). scripts/build-images.sh builds the same image without Docker.
#
# Build stage: the same commands as the README's set-up (scripts/build.sh installs the
# Debian packages it needs, then builds with two jobs). All images share it, so a builder
# with a layer cache compiles once.
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN FERRY_BUILD_TYPE=Release bash scripts/build.sh build \\
 && strip -o /{binary_name} build/{binary}

# Run stage: the Debian packages that ship the shared libraries the binary links,{tools} CA
# certificates and tzdata; no compiler, no source. The user is 65532 (nonroot); the
# Deployment adds a read-only root filesystem.
FROM debian:12-slim
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends {packages} \\
 && rm -rf /var/lib/apt/lists/* \\
 && groupadd --gid 65532 nonroot \\
 && useradd --uid 65532 --gid 65532 --home-dir {workdir} --create-home --shell /sbin/nologin nonroot{state_dirs}
COPY --from=build /{binary_name} /usr/local/bin/{binary_name}
USER {user}
WORKDIR {workdir}
{expose}ENTRYPOINT ["/usr/local/bin/{binary_name}"]
"""


def dockerfile_text(image, definition, run_packages):
    pkgs = sorted(set(run_packages) | set(definition["extra_packages"]))
    lines, line = [], []
    for p in pkgs:
        if line and len(" ".join(line + [p])) > (38 if not lines else 84):
            lines.append(" ".join(line))
            line = []
        line.append(p)
    lines.append(" ".join(line))
    packages = " \\\n      ".join(lines)
    state = "".join(f" \\\n && install -d -o 65532 -g 65532 -m 0700 {d}"
                    for d in image.get("state_dirs", []))
    extra = ""
    if image.get("shell"):
        extra = ("\n# A step that uses this image without a command runs `ferryctl` with no "
                 "arguments,\n# which reads the step's settings (PLUGIN_*) and releases (see "
                 "the README, \"ferryctl in\n# CI\"). The daemonless image has busybox for "
                 "Drone's commands; this one has Debian's shell.")
    tools = ""
    if image.get("tools"):
        # Wrapped to the template's width: "...links," ends the line before.
        tools = "\n# the programs it runs ({}) and their libraries,".format(
            ", ".join(os.path.basename(t) for t in image["tools"]))
    return DOCKERFILE.format(
        name=image["name"], summary=image["summary"], extra_comment=extra, tools=tools,
        dockerfile=image["dockerfile"], binary_name=os.path.basename(image["binary"]),
        binary=image["binary"], packages=packages, workdir=definition["workdir"],
        state_dirs=state, user=definition["user"],
        expose=f"EXPOSE {' '.join(map(str, image['ports']))}\n" if image["ports"] else "")


def dockerfiles(definition, images, build_dir, write):
    stale = []
    for image in images:
        binary = os.path.join(build_dir, image["binary"])
        if not os.access(binary, os.X_OK):
            fail(f"{binary} is not built: run `bash scripts/build.sh build` first")
        _, owners, _ = runtime_files(image, binary)
        text = dockerfile_text(image, definition, set(owners.values()) - {"libc6"})
        path = os.path.join(ROOT, image["dockerfile"])
        current = open(path).read() if os.path.exists(path) else ""
        if current == text:
            continue
        if write:
            with open(path, "w") as f:
                f.write(text)
            log(f"{PROG}: wrote {image['dockerfile']}")
        else:
            stale.append(image["dockerfile"])
    if stale:
        fail("out of date (run scripts/build-images.sh --write-dockerfiles): " + " ".join(stale))


# ---------------------------------------------------------------------------------------
# Push: every image's blobs and manifest by digest first, the tags only when all are in.


class Registry:
    def __init__(self, target):
        host, _, prefix = target.partition("/")
        if not host:
            fail(f"--push {target!r}: expected REGISTRY[/PREFIX], e.g. 127.0.0.1:5000/ferry")
        self.host, self.prefix = host, prefix.strip("/")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        loopback = is_loopback(name)
        self.scheme = "http" if loopback or os.environ.get("FERRY_IMAGES_PLAIN_HTTP") == "1" else "https"
        self.auth = {}  # repository -> Authorization header
        self.basic = self._credentials()

    def _credentials(self):
        files = [os.environ.get("REGISTRY_AUTH_FILE", ""),
                 os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), "containers/auth.json"),
                 os.path.join(os.environ.get("DOCKER_CONFIG", os.path.expanduser("~/.docker")), "config.json")]
        for f in files:
            try:
                with open(f) as fh:
                    auths = json.load(fh).get("auths", {})
            except (OSError, ValueError):
                continue
            for key, value in auths.items():
                if key.replace("https://", "").replace("http://", "").split("/")[0] == self.host and value.get("auth"):
                    return "Basic " + value["auth"]
        return ""

    def repo(self, name):
        return f"{self.prefix}/{name}" if self.prefix else name

    def request(self, method, path, data=None, headers=None, repo="", expect=(200,)):
        url = path if path.startswith("http") else f"{self.scheme}://{self.host}{path}"
        for attempt in range(2):
            h = dict(headers or {})
            # Credentials go to this registry only, never to a host an upload Location names.
            if repo in self.auth and urllib.parse.urlsplit(url).netloc == self.host:
                h["Authorization"] = self.auth[repo]
            req = urllib.request.Request(url, data=data, method=method, headers=h)
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    body = r.read()
                    status, rheaders = r.status, r.headers
            except urllib.error.HTTPError as e:
                body, status, rheaders = e.read(), e.code, e.headers
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                fail(f"registry {self.host} unreachable ({self.scheme}): {method} {url}: {reason}")
            if status == 401 and attempt == 0 and self._authenticate(rheaders, repo):
                continue
            break
        if status not in expect:
            detail = body.decode(errors="replace").strip()[:300]
            fail(f"registry {self.host} answered HTTP {status} to {method} "
                 f"{urllib.parse.urlsplit(url).path}{': ' + detail if detail else ''}")
        return status, rheaders, body

    def _authenticate(self, headers, repo):
        challenge = headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("basic") and self.basic:
            self.auth[repo] = self.basic
            return True
        if not challenge.lower().startswith("bearer"):
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.get("realm", "")
        realm_url = urllib.parse.urlsplit(realm)
        if realm_url.scheme not in ("http", "https") or not realm_url.hostname:
            fail(f"registry {self.host}: its Bearer challenge names no usable token server "
                 f"(realm {realm!r})")
        if realm_url.scheme == "http" and not is_loopback(realm_url.hostname):
            fail(f"registry {self.host}: its token server {realm} is plain http beyond loopback: "
                 "credentials are not sent there")
        query = {"service": params.get("service", "")}
        if repo:
            query["scope"] = f"repository:{repo}:pull,push"
        req = urllib.request.Request(realm + "?" + urllib.parse.urlencode(query))
        if self.basic:
            req.add_header("Authorization", self.basic)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                token = json.load(r)
        except urllib.error.HTTPError as e:
            fail(f"registry {self.host}: its token server {realm} answered HTTP {e.code}")
        except (urllib.error.URLError, OSError) as e:
            fail(f"registry {self.host}: its token server {realm} is unreachable: {e}")
        self.auth[repo] = "Bearer " + (token.get("token") or token.get("access_token", ""))
        return True

    def check(self, name):
        """Before the build: the registry answers and lets us push (an upload session is
        opened and cancelled)."""
        self.request("GET", "/v2/", expect=(200, 401))
        repo = self.repo(name)
        _, headers, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", data=b"", repo=repo,
                                     expect=(202,))
        location = headers.get("Location", "")
        if location:
            if location.startswith("/"):
                location = f"{self.scheme}://{self.host}{location}"
            try:
                self.request("DELETE", location, repo=repo, expect=(204, 200, 404, 405))
            except Failure:
                pass  # an abandoned upload session expires on its own

    def push_content(self, layout, name):
        repo = self.repo(name)
        with open(os.path.join(layout, "index.json")) as f:
            index = json.load(f)
        manifest_digest = index["manifests"][0]["digest"]
        manifest = read_blob(layout, manifest_digest)
        m = json.loads(manifest)
        for desc in [m["config"]] + m["layers"]:
            status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{desc['digest']}", repo=repo,
                                        expect=(200, 404))
            if status == 200:
                continue
            _, headers, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", data=b"", repo=repo,
                                         expect=(202,))
            location = headers["Location"]
            if location.startswith("/"):
                location = f"{self.scheme}://{self.host}{location}"
            location += ("&" if "?" in location else "?") + "digest=" + desc["digest"]
            self.request("PUT", location, data=read_blob(layout, desc["digest"]), repo=repo,
                         headers={"Content-Type": "application/octet-stream"}, expect=(201,))
        self.request("PUT", f"/v2/{repo}/manifests/{manifest_digest}", data=manifest, repo=repo,
                     headers={"Content-Type": OCI_MANIFEST}, expect=(201,))
        return repo, manifest_digest, manifest

    def tag(self, repo, tag, manifest):
        self.request("PUT", f"/v2/{repo}/manifests/{tag}", data=manifest, repo=repo,
                     headers={"Content-Type": OCI_MANIFEST}, expect=(201,))


def read_blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
        return f.read()


def push(target, out, results, tags):
    registry = Registry(target)
    pushed = []
    for r in results:
        log(f"{PROG}: pushing {r['name']} to {registry.host}")
        pushed.append(registry.push_content(os.path.join(out, r["name"]), r["name"]))
    for repo, digest, manifest in pushed:  # every image is complete: now tag them
        for tag in tags:
            registry.tag(repo, tag, manifest)
        print(f"pushed {registry.host}/{repo}:{{{','.join(tags)}}}@{digest}")


# ---------------------------------------------------------------------------------------


def git(*args):
    # safe.directory: run as root in a checkout another user owns, git refuses otherwise.
    return run(["git", "-c", "safe.directory=*", "-C", ROOT] + list(args),
               stderr=subprocess.DEVNULL).strip()


def is_loopback(host):
    """True for localhost and loopback addresses (a host name without its port)."""
    host = host.strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def without_credentials(url):
    """`url` without user or password: a CI checkout's remote often carries a token."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        # scp-like "user@host:path" names a user, never a secret; anything else is kept whole.
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def main():
    ap = argparse.ArgumentParser(prog=PROG)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "images"))
    ap.add_argument("--build-dir", default=os.environ.get("FERRY_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--cache", default=os.environ.get("FERRY_IMAGES_CACHE", "/var/cache/ferry-images"))
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--push", default="")
    ap.add_argument("--write-dockerfiles", action="store_true")
    ap.add_argument("--check-dockerfiles", action="store_true")
    args = ap.parse_args()

    definition = load_definition()
    images = definition["images"]
    names = [i["name"] for i in images]
    for o in args.only:
        if o not in names:
            fail(f"--only {o}: no such image (one of {', '.join(names)})")
    if args.only:
        images = [i for i in images if i["name"] in args.only]
    build_dir = os.path.abspath(args.build_dir)

    if args.write_dockerfiles or args.check_dockerfiles:
        dockerfiles(definition, images, build_dir, args.write_dockerfiles)
        return

    # Check the registry before the slow part.
    if args.push:
        Registry(args.push).check(images[0]["name"])

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or
                git("log", "-1", "--format=%ct", os.environ.get("FERRY_IMAGE_REVISION") or "HEAD"))
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        version = re.search(r"project\(ferry VERSION ([0-9.]+)", f.read()).group(1)
    # FERRY_IMAGE_REVISION: the commit the binaries were built from, when it is not HEAD of
    # this checkout (taken as given: no -dirty check).
    revision_full = os.environ.get("FERRY_IMAGE_REVISION") or git("rev-parse", "HEAD")
    revision = revision_full[:12]
    dirty = (not os.environ.get("FERRY_IMAGE_REVISION") and
             subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--"]).returncode != 0)
    if dirty:
        revision += "-dirty"
        log(f"{PROG}: the working tree has uncommitted changes: the revision tag is {revision}")
    try:
        source = os.environ.get("FERRY_IMAGE_SOURCE") or git("remote", "get-url", "origin")
    except subprocess.CalledProcessError:
        source = "NOASSERTION"
    source = without_credentials(source)
    meta = {
        "epoch": epoch, "created": iso(epoch), "version": version, "revision": revision,
        "revision_full": revision_full + ("-dirty" if dirty else ""), "source": source,
        "licenses": os.environ.get("FERRY_IMAGE_LICENSES", "NOASSERTION"),
        "tags": [version, revision],
    }
    os.makedirs(args.out, exist_ok=True)
    try:
        os.makedirs(args.cache, exist_ok=True)
        if not os.access(args.cache, os.W_OK):
            raise PermissionError(args.cache)
    except PermissionError:
        fallback = os.path.join(os.path.expanduser("~"), ".cache", "ferry-images")
        log(f"{PROG}: {args.cache} is not writable: caching packages in {fallback}")
        args.cache = fallback
        os.makedirs(args.cache, exist_ok=True)
    results = []
    for image in images:
        log(f"{PROG}: building {image['name']}")
        results.append(build_image(image, definition, meta, build_dir, args.cache, args.out))
    print(f"{'image':<24} {'compressed':>11} {'uncompressed':>13}  digest")
    for r in results:
        print(f"{r['name']:<24} {r['compressed'] / 1e6:>8.1f} MB {r['uncompressed'] / 1e6:>10.1f} MB"
              f"  {r['digest']}")
    with open(os.path.join(args.out, "images.json"), "w") as f:
        json.dump({"tags": meta["tags"], "created": meta["created"], "images": results}, f,
                  indent=2, sort_keys=True)
    print(f"OCI layouts in {args.out}/NAME, tags {', '.join(meta['tags'])} "
          f"(SOURCE_DATE_EPOCH={epoch})")
    if args.push:
        push(args.push, args.out, results, meta["tags"])


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as e:
        print(f"{PROG}: {' '.join(map(str, e.cmd))} failed (exit {e.returncode})", file=sys.stderr)
        sys.exit(1)
