#!/usr/bin/env bash
# Fails when a C++ source differs from what clang-format makes of it (.clang-format at the
# root). Fix with: scripts/check-format.sh --fix
#
# Files: every tracked *.cc / *.h (in a git checkout), else every one under the source dirs.
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0
[[ "${1:-}" == "--fix" ]] && fix=1
format="${CLANG_FORMAT:-clang-format}"
if ! command -v "$format" >/dev/null; then
  echo "check-format.sh: $format not found (scripts/install-deps.sh test installs it)" >&2
  exit 2
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.cc' '*.h')
else
  mapfile -t files < <(find bench cli fuzz lib services tests tools -name '*.cc' -o -name '*.h' | sort)
fi
if ((fix)); then
  "$format" -i "${files[@]}"
  exit 0
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$format" --dry-run --Werror "${files[@]}" 2>"$log"; then
  { grep -E '^[^ ].*: (error|warning):' "$log" || true; } | cut -d: -f1 | sort -u |
    sed 's/^/check-format.sh: not formatted: /' >&2
  head -40 "$log" >&2
  echo "check-format.sh: run scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "check-format.sh: ${#files[@]} files formatted"
