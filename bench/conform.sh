#!/usr/bin/env bash
# `cargo xtask conform` side by side with pypjrt's harness
# (`python -m pypjrt.conform`, PyPI pypjrt 0.1.1) on the same plugins:
# number of checks, results, and wall time (hyperfine medians, ratio), then
# every check the two judge differently.
#
#   bench/conform.sh [PLUGIN...]   default: the three pinned CPU plugins and jax-cuda12-pjrt
#
# Needs hyperfine and python3 with venv. pypjrt is installed once into a
# venv in the pjrtpkgs cache directory. A harness that crashes (pypjrt on
# the PJRT 0.81 plugin) is timed to its crash and reported as such. Both
# are given the plugin's path: `conform NAME` also verifies the cached
# library's sha256 (as `prebuilt fetch` does), which pypjrt does not.
# RUNS (default 10) and WARMUP (default 2) tune hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
plugins=("$@")
[ ${#plugins[@]} -gt 0 ] || plugins=(xla-cpu-pjrt fastatomstruct-xla-cpu lammps-jax-pjrt-cpu jax-cuda12-pjrt)
runs=${RUNS:-10}
warmup=${WARMUP:-2}

cargo build --release -p xtask
xtask=$(realpath "${CARGO_TARGET_DIR:-target}/release/xtask")
cache=${PJRTPKGS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pjrtpkgs}
venv=$cache/bench/pypjrt-0.1.1
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet pypjrt==0.1.1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average before: $(load)"
for p in "${plugins[@]}"; do
  lib=$("$xtask" prebuilt fetch "$p" 2>/dev/null | tail -n1)   # fetch + verify outside the timing
  echo
  echo "== $p ($lib)"
  # One run of each for the results; pypjrt's exit status says if it crashed.
  set +e
  "$xtask" conform "$lib" --json >"$out/ours.json" 2>/dev/null
  ours_status=$?
  "$venv/bin/python" -m pypjrt.conform "$lib" --json "$out/pypjrt.json" >/dev/null 2>&1
  pypjrt_status=$?
  set -e
  python3 bench/conform_compare.py "$out/ours.json" "$out/pypjrt.json" "$ours_status" "$pypjrt_status"
  hyperfine --ignore-failure --warmup "$warmup" --runs "$runs" --export-json "$out/time.json" \
    -n "xtask conform" "$xtask conform $lib --json >/dev/null 2>&1" \
    -n "pypjrt.conform" "$venv/bin/python -m pypjrt.conform $lib --json $out/p.json >/dev/null 2>&1" >/dev/null
  python3 - "$out/time.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
a, b = r["xtask conform"], r["pypjrt.conform"]
print(f"  wall time, median of {len(a['times'])}: xtask conform {a['median']:.3f} s, "
      f"pypjrt.conform {b['median']:.3f} s, ratio {a['median'] / b['median']:.2f}")
EOF
  echo "  load average after: $(load)"
done
