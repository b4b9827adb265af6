#!/usr/bin/env bash
# End-to-end time of a real XLA upgrade without --nix: PJRT C API 0.47 -> 0.50
# (3c8260f6 -> e715c172, March-April 2024), on a scratch copy of the project.
# Each run: resolve, hash the 0.50 tree from git objects, read versions, diff
# the headers with libclang, edit pins.toml, run bindgen, `cargo check` the
# regenerated pjrt-sys (a copy of the real crate, loader included) in a staging copy (shared target dir, warm after the
# warmup run), read the LLVM/StableHLO/Shardy moves (and the StableHLO version when STABLEHLO_REPO is set), write
# report + changelog through the journaled commit.
#
# Peer, in the same hyperfine run: the one step of the hand-kept checklists
# this replaces that costs something, prefetching the new source hash
# (`git archive NEW | tar -x` then `nix hash path`), when nix is installed.
#
#   XLA_REPO=/work/.mirror/zml+xla/repo [STABLEHLO_REPO=...] [RUNS=10] bench/upgrade-xla.sh
#
# Target: median under 2 s. Prints hyperfine's table, the medians and the ratio.
set -euo pipefail

: "${XLA_REPO:?set XLA_REPO to a clone of openxla/xla (work tree or bare)}"
OLD=3c8260f614901f5cf2dd81530e009db8e6c9789b
NEW=e715c172bd3fd4421f9e45993c6814e8119c1c20
RUNS=${RUNS:-10}

root=$(cd "$(dirname "$0")/.." && pwd)
command -v hyperfine >/dev/null || { echo "hyperfine is required" >&2; exit 1; }
cargo build --quiet --release -p xtask --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/xtask"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
p="$work/pristine"
mkdir -p "$p/crates"

# pins.toml of the project, re-pinned to OLD.
date=$(git -C "$XLA_REPO" log -1 --format=%cI "$OLD")
sed -e "/^\[xla\]/,/^\[/ { s|^commit = .*|commit = \"$OLD\"|; s|^date = .*|date = \"$date\"|;
          s|^pjrt_api_version = .*|pjrt_api_version = \"0.47\"|; s|^bazel_version = .*|bazel_version = \"6.5.0\"| }" \
    -e "/^\[toolchains.bazel\]/,/^\[/ { s|^version = .*|version = \"6.5.0\"|; s|^nixpkgs_attribute = .*|nixpkgs_attribute = \"bazel_6\"| }" \
    "$root/pins.toml" >"$p/pins.toml"
printf '# Changelog\n\n## 0.1.0\n\n- First release.\n' >"$p/CHANGELOG.md"
cp "$root/Cargo.lock" "$p/Cargo.lock"
printf '[workspace]\nresolver = "2"\nmembers = ["crates/pjrt-sys"]\n\n[workspace.package]\nedition = "2021"\nlicense = "Apache-2.0"\nrust-version = "1.80"\n' >"$p/Cargo.toml"
# The real pjrt-sys (generated bindings + hand-written loader), without build outputs.
cp -r "$root/crates/pjrt-sys" "$p/crates/pjrt-sys"
rm -rf "$p/crates/pjrt-sys/target"

export PJRTPKGS_UPGRADE_TARGET_DIR="$work/staging-target" PJRTPKGS_CACHE_DIR="$work/cache"
peer=()
if command -v nix >/dev/null; then
    peer=(--command-name "peer: git archive | tar -x; nix hash path"
        "rm -rf '$work/tree' && mkdir '$work/tree' && git -C '$XLA_REPO' archive $NEW | tar -x -C '$work/tree' && nix --extra-experimental-features nix-command hash path '$work/tree' >/dev/null")
fi
hyperfine --warmup 1 --runs "$RUNS" --export-json "$work/result.json" \
    --prepare "rm -rf '$work/p' && cp -a '$p' '$work/p'" \
    --command-name "upgrade-xla $NEW (no --nix)" \
    "PJRTPKGS_ROOT='$work/p' '$bin' upgrade-xla $NEW --xla-repo '$XLA_REPO' >/dev/null 2>&1" \
    "${peer[@]}"
python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
for x in r:
    print(f"{x['command']}: median {x['median']:.2f} s (mean {x['mean']:.2f} s, {len(x['times'])} runs)")
if len(r) == 2:
    print(f"ratio upgrade-xla / peer: {r[0]['median'] / r[1]['median']:.2f}x")
print("target: upgrade-xla median under 2 s:", "met" if r[0]["median"] < 2 else "MISSED")
PY
