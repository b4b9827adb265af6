#!/usr/bin/env bash
# Benchmark: `xtask hash path DIR` against `nix hash path DIR` on a checkout
# of XLA. Target: the xtask's median at most 1.0x Nix's.
#
# Usage: XLA_REPO=/path/to/xla.git bench/hash-path.sh [COMMIT]
#   COMMIT defaults to a complete early-2024 commit (every object present
#   in the pjrtpkgs XLA mirror; 4,864 files, 65 MB). With SKIP_MISSING=1 the
#   tree is written blob by blob and blobs missing from the repository are
#   left out, so a recent, larger commit of an incomplete mirror can serve
#   as the benchmark tree (e.g. the pinned 964a0a45...: 8,177 files,
#   ~116 MB). Needs git, tar, nix, hyperfine, cargo (python3 for
#   SKIP_MISSING).
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
if [ "${SKIP_MISSING:-0}" = 1 ]; then
  # Regular files, executables and symlinks, as git archive would write them.
  python3 - "$XLA_REPO" "$commit" "$dir" <<'PY'
import os, subprocess, sys
repo, commit, out = sys.argv[1:]
git = ["git", "-C", repo]
entries = subprocess.run(git + ["ls-tree", "-r", "-z", commit], check=True, capture_output=True).stdout
batch = subprocess.Popen(git + ["cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
missing = 0
for entry in filter(None, entries.split(b"\0")):
    meta, path = entry.split(b"\t", 1)
    mode, kind, oid = meta.split()
    if kind != b"blob":
        continue
    batch.stdin.write(oid + b"\n"); batch.stdin.flush()
    header = batch.stdout.readline().split()
    if header[1] == b"missing":
        missing += 1
        continue
    data = batch.stdout.read(int(header[2])); batch.stdout.read(1)
    target = os.path.join(out.encode(), path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if mode == b"120000":
        os.symlink(data, target)
    else:
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, 0o755 if mode == b"100755" else 0o644)
print(f"left out {missing} blob(s) missing from the repository", file=sys.stderr)
PY
else
  git -C "$XLA_REPO" archive "$commit" | tar -x -C "$dir"
fi
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
