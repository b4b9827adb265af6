#!/usr/bin/env bash
# Whole-run time of `cargo xtask smoke` on each pinned CPU plugin (load,
# client, compile, execute, readback), with hyperfine. The wheels are fetched
# and verified once before timing.
#
#   bench/smoke.sh [PLUGIN...]     default: the pinned CPU plugins
#
# Per-phase times: `cargo xtask smoke PLUGIN --json | jq .timings_ms`.
set -euo pipefail
cd "$(dirname "$0")/.."
plugins=("$@")
[ ${#plugins[@]} -gt 0 ] || plugins=(xla-cpu-pjrt fastatomstruct-xla-cpu lammps-jax-pjrt-cpu)
cargo build --release -p xtask
xtask=${CARGO_TARGET_DIR:-target}/release/xtask
for p in "${plugins[@]}"; do
  "$xtask" smoke "$p" --json >/dev/null   # fetch + verify outside the timing
done
hyperfine --warmup 1 --runs 5 --export-markdown /dev/stdout \
  "${plugins[@]/#/$xtask smoke }"
