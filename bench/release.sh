#!/usr/bin/env bash
# `cargo xtask release` over the pinned CPU wheels (xla-cpu-pjrt 0.81,
# fastatomstruct-xla-cpu 0.106, lammps-jax-pjrt-cpu 0.115; ~735 MB of
# plugins) against its peer, `tar` + `gzip -n` of the same files, in the
# same hyperfine run.
#
#   XLA_REPO=/path/to/xla bench/release.sh
#
# RUNS (default 5) and WARMUP (default 1) tune hyperfine. The wheels are
# fetched and verified once before timing; every timed release still
# re-verifies each cached plugin's sha256, loads it in a child process to
# read its PJRT API version, reads its ELF twice (check, then archive),
# compresses, hashes and writes the SBOMs, compat.json, the notes and
# SHA256SUMS (`--no-conform`: running conform on each plugin for
# compat.json, some 30 s, is not archiving). The peer only
# archives and compresses: the trees of the first release, one archive per
# plugin, one after the other, as a shell loop would.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${XLA_REPO:?set XLA_REPO to a clone of openxla/xla (work tree or bare)}"
export XLA_REPO
runs=${RUNS:-5}
warmup=${WARMUP:-1}
plugins=(xla-cpu-pjrt fastatomstruct-xla-cpu lammps-jax-pjrt-cpu)

cargo build --release -p xtask
xtask=$(pwd)/${CARGO_TARGET_DIR:-target}/release/xtask
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Once, untimed: fetch and verify the wheels, and the reference release.
"$xtask" release "${plugins[@]}" --unsigned --no-conform --out "$work/reference" >/dev/null
mkdir "$work/trees"
for a in "$work"/reference/*.tar.gz; do tar -xzf "$a" -C "$work/trees"; done
mtime=$(date -d "$(sed -n 's/^date = "\(.*\)"/\1/p' pins.toml | head -n1)" +%s)
peer="cd $work/trees && for d in *; do tar --sort=name --mtime=@$mtime --owner=0 --group=0 --numeric-owner -cf - \"\$d\" | gzip -n > $work/peer/\$d.tar.gz; done"

hyperfine --warmup "$warmup" --runs "$runs" --export-json "$work/hyperfine.json" --export-markdown /dev/stdout \
  --prepare "rm -rf $work/out" -n "xtask release (3 CPU wheels)" "$xtask release ${plugins[*]} --unsigned --no-conform --out $work/out" \
  --prepare "rm -rf $work/peer && mkdir $work/peer" -n "tar + gzip -n (same files)" "$peer"

# Every timed run wrote the reference's bytes.
cmp "$work/reference/SHA256SUMS" "$work/out/SHA256SUMS" && echo "the timed release is byte-identical to the reference release"
du -cb "$work"/out/*.tar.gz | tail -n1 | awk '{printf "xtask archives: %d bytes\n", $1}'
du -cb "$work"/peer/*.tar.gz | tail -n1 | awk '{printf "peer archives:  %d bytes\n", $1}'
python3 - "$work/hyperfine.json" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
xtask, peer = (r["median"] for r in results)
print(f"median: xtask release {xtask:.2f} s, tar + gzip -n {peer:.2f} s, ratio {xtask / peer:.2f}x")
EOF
