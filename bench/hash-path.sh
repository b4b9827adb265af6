#!/usr/bin/env bash
# Benchmark: `xtask hash path DIR` against `nix hash path DIR` on a checkout
# of XLA. Target: the xtask's median at most 1.0x Nix's.
#
# Usage: XLA_REPO=/path/to/xla.git bench/hash-path.sh [COMMIT]
#   COMMIT defaults to a complete early-2024 commit (every object present
#   in the pjrtpkgs XLA mirror). Needs git, tar, nix, hyperfine, cargo.
#   Set CARGO_TARGET_DIR as for any build; RUNS (default 30) and WARMUP
#   (default 5) tune hyperfine. hyperfine's JSON goes to
#   $CARGO_TARGET_DIR/bench-hash-path.json.
set -euo pipefail

commit=${1:-5ce09776d0765b188e9a4cffcaf874df1b4dcd66}
: "${XLA_REPO:?set XLA_REPO to an XLA work tree or bare git directory}"
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
runs=${RUNS:-30}
warmup=${WARMUP:-5}

for tool in git tar nix hyperfine cargo; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done

cargo build --release -p xtask --manifest-path "$root/Cargo.toml" >&2
xtask=$target/release/xtask

dir=$(mktemp -d "${TMPDIR:-/tmp}/pjrtpkgs-hash-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
git --git-dir="$XLA_REPO" archive "$commit" | tar -x -C "$dir"
echo "tree: $(find "$dir" -type f | wc -l) files, $(du -sh "$dir" | cut -f1), XLA $commit" >&2

# Same answer first: a fast wrong hash is worth nothing.
ours=$("$xtask" hash path "$dir")
theirs=$(nix --extra-experimental-features nix-command hash path "$dir")
[ "$ours" = "$theirs" ] || { echo "error: hashes differ: xtask $ours, nix $theirs" >&2; exit 1; }
echo "both print $ours" >&2

mkdir -p "$target"
out=$target/bench-hash-path.json
hyperfine --warmup "$warmup" --runs "$runs" --export-json "$out" \
  -n xtask "$xtask hash path $dir" \
  -n nix "nix --extra-experimental-features nix-command hash path $dir"

python3 - "$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
x, n = r["xtask"]["median"], r["nix"]["median"]
print(f"median: xtask {x*1000:.1f} ms, nix {n*1000:.1f} ms, ratio {x/n:.2f}x (target <= 1.00x)")
PY
