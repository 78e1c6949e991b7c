#!/usr/bin/env bash
# Checks the lock annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED, ...) with
# clang's -Wthread-safety: GCC, which builds Ferry, ignores them. Every source under lib/,
# services/ and cli/ whose own text or header (same name, .h) has a lock annotation is
# parsed with the flags CMake compiles it with.
#
# Usage: scripts/check-thread-safety.sh [BUILD_DIR]   (default: build; needs a configured
# build for compile_commands.json and the generated protobuf headers)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-${FERRY_BUILD_DIR:-build}}"
db="$build/compile_commands.json"
if [[ ! -f "$db" ]]; then
  echo "check-thread-safety.sh: $db not found; configure and build first (scripts/build.sh)" >&2
  exit 2
fi
command -v clang++ >/dev/null || {
  echo "check-thread-safety.sh: clang++ not found (scripts/install-deps.sh test installs it)" >&2
  exit 2
}
# One line per file: the directory, then the compile command rewritten for a clang syntax
# check (GCC-only options dropped, the output and -c removed).
python3 - "$db" "$PWD" > "$build/thread-safety-commands.txt" <<'PY'
import json, os, re, shlex, sys
db, root = sys.argv[1], sys.argv[2]
pattern = re.compile(r"ABSL_(PT_)?GUARDED_BY|ABSL_(EXCLUSIVE|SHARED)_LOCKS_REQUIRED|ABSL_LOCKS_EXCLUDED")
def annotated(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return bool(pattern.search(f.read()))
    except OSError:
        return False
# Headers with annotations, so that a source including one (a header-only class such as
# lib/runtime/poller.h) is checked too.
include = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
annotated_headers = set()
for top in ("lib", "services", "cli"):
    for dirpath, _, names in os.walk(os.path.join(root, top)):
        for n in names:
            if n.endswith(".h") and annotated(os.path.join(dirpath, n)):
                annotated_headers.add(os.path.relpath(os.path.join(dirpath, n), root))
def includes_annotated(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return any(h in annotated_headers for h in include.findall(f.read()))
    except OSError:
        return False
seen = set()
for entry in json.load(open(db)):
    src = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    rel = os.path.relpath(src, root)
    if rel in seen or not rel.split("/")[0] in ("lib", "services", "cli"):
        continue
    if not (annotated(src) or annotated(os.path.splitext(src)[0] + ".h")
            or includes_annotated(src)):
        continue
    seen.add(rel)
    args = shlex.split(entry["command"])[1:]
    keep, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a in ("-c", src, entry["file"]) or a.startswith("-Wno-restrict") or a == "-Werror":
            continue
        keep.append(a)
    print(shlex.quote(entry["directory"]), " ".join(shlex.quote(a) for a in keep), shlex.quote(src))
PY
count=$(wc -l < "$build/thread-safety-commands.txt")
if ((count == 0)); then
  echo "check-thread-safety.sh: no annotated source found; is $db current?" >&2
  exit 2
fi
# shellcheck disable=SC2016
xargs -P2 -L1 bash -c 'cd "$0" && exec clang++ -fsyntax-only -Wthread-safety \
  -Werror=thread-safety -Wno-unknown-warning-option "$@"' \
  < "$build/thread-safety-commands.txt"
echo "check-thread-safety.sh: $count annotated files pass clang -Wthread-safety"
