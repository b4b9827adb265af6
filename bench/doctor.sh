#!/usr/bin/env bash
# The static part of `cargo xtask doctor` (everything but loading the
# plugin: `--no-load`) on the largest pinned plugin, beside `ldd` on the
# same file (glibc resolving the DT_NEEDED libraries only: the part of the
# work both do). Target: median well under 1 s.
#
#   bench/doctor.sh [PLUGIN...]     default: the largest plugin pinned for
#                                   this machine (jax-cuda12-pjrt, 486 MB)
#
# The plugins are fetched and verified once before timing, and timed by
# path: `doctor NAME` adds the cache's check of the library's sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p xtask
xtask=${CARGO_TARGET_DIR:-target}/release/xtask
plugins=("$@")
if [ ${#plugins[@]} -eq 0 ]; then
  largest="" size=0
  for name in $(python3 -c 'import tomllib; print(" ".join(tomllib.load(open("pins.toml", "rb"))["prebuilt"]))'); do
    path=$("$xtask" prebuilt fetch "$name" 2>/dev/null) || continue
    s=$(stat -c %s "$path")
    if [ "$s" -gt "$size" ]; then largest=$name size=$s; fi
  done
  plugins=("$largest")
fi
for p in "${plugins[@]}"; do
  path=$("$xtask" prebuilt fetch "$p")
  echo "== $p: $path ($(( $(stat -c %s "$path") / 1000000 )) MB)"
  # Exit 2 (something fails, as for a GPU plugin here) is a diagnosis too.
  json=$("$xtask" doctor "$path" --no-load --json) || [ $? -eq 2 ]
  printf '%s' "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("static part as measured inside: %.0f ms; findings: %s" % (d["static_ms"], ", ".join(f["status"] for f in d["findings"])))'
  # -i: doctor exits 2 when something fails, as it does for a GPU plugin here.
  out=$(mktemp)
  hyperfine -i --warmup 2 --runs "${RUNS:-20}" --export-json "$out" \
    -n "doctor --no-load" "$xtask doctor $path --no-load --json" \
    -n "ldd" "ldd $path"
  python3 - "$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
d, l = r["doctor --no-load"]["median"], r["ldd"]["median"]
print(f"medians: doctor --no-load {d * 1000:.1f} ms, ldd {l * 1000:.1f} ms (doctor/ldd {d / l:.1f}x)")
PY
  rm -f "$out"
done
