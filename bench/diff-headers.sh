#!/usr/bin/env bash
# Speed of `cargo xtask diff-headers` between two commits of a local XLA
# repository (target: under 2 s). Usage:
#   XLA_REPO=/path/to/xla bench/diff-headers.sh [OLD NEW]
# Defaults to the newest PJRT_API_MINOR bump on main and its parent, plus a
# wider pair (20 bumps apart) that re-parses every header on both sides, and
# the upgrade benchmark's pair, PJRT 0.47 -> 0.50 (3c8260f6 -> e715c172),
# with and without --no-protos: the protobuf diff's cost.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${XLA_REPO:?set XLA_REPO to an XLA clone (work tree or bare)}"
command -v hyperfine >/dev/null || { echo "hyperfine is not installed" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p xtask --quiet
bin="$CARGO_TARGET_DIR/release/xtask"
branch=main
git -C "$XLA_REPO" rev-parse --verify -q "$branch" >/dev/null || branch=HEAD
bumps=$(git -C "$XLA_REPO" log --first-parent --format=%H -G'#define PJRT_API_MINOR' "$branch" -- xla/pjrt/c/pjrt_c_api.h)
new=${2:-$(echo "$bumps" | sed -n 1p)}
old=${1:-$new~1}
far=$(echo "$bumps" | sed -n 21p)
p047=3c8260f614901f5cf2dd81530e009db8e6c9789b
p050=e715c172bd3fd4421f9e45993c6814e8119c1c20
json=$(mktemp)
trap 'rm -f "$json"' EXIT
hyperfine --warmup 2 --runs 10 --export-json "$json" \
  -n "adjacent ($old..$new)" "$bin diff-headers $old $new --xla-repo $XLA_REPO --format json > /dev/null" \
  -n "20 bumps apart" "$bin diff-headers $far $new --xla-repo $XLA_REPO --format json > /dev/null || test \$? = 2" \
  -n "0.47 -> 0.50" "$bin diff-headers $p047 $p050 --xla-repo $XLA_REPO --format json > /dev/null || test \$? = 2" \
  -n "0.47 -> 0.50 --no-protos" "$bin diff-headers $p047 $p050 --xla-repo $XLA_REPO --format json --no-protos > /dev/null || test \$? = 2"
python3 - "$json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
for r in results:
    print(f"median {r['median']:.3f} s  {r['command']}")
by_name = {r["command"]: r["median"] for r in results}
with_protos, without = by_name.get("0.47 -> 0.50"), by_name.get("0.47 -> 0.50 --no-protos")
if with_protos and without:
    print(f"protobuf diff on 0.47 -> 0.50: +{(with_protos - without) * 1000:.0f} ms median ({with_protos / without:.2f}x)")
PY
