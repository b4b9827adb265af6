#!/usr/bin/env bash
# Substitution speed of a ~250 MB closure of incompressible data: from a
# binary cache served on loopback by nginx, against copying the same paths
# between local stores with `nix copy` and with plain `cp -a`; plus the cost
# of pushing it with zstd and with xz compression.
#
#   bench/cache-substitute.sh            # SIZE_MB=250 RUNS=3 by default
#   SIZE_MB=50 RUNS=5 bench/cache-substitute.sh
#
# Needs: nix (2.4+), nginx, hyperfine, python3, cargo. Everything lives in a
# temporary directory (chroot stores `local?root=...`); nothing touches /nix.
# Prints hyperfine's tables and a summary of the medians.
set -euo pipefail

SIZE_MB=${SIZE_MB:-250}
RUNS=${RUNS:-3}
PARTS=5
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/pjrtpkgs-cache-bench.XXXXXX)
NGINX_PID=
cleanup() {
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export NIX_CONFIG=$'experimental-features = nix-command flakes\nsubstituters =\nsandbox-paths = /bin /lib /lib64 /usr'
export XDG_CACHE_HOME=$WORK/xdg
SRC="local?root=$WORK/src"
nixc() { nix --extra-experimental-features 'nix-command flakes' "$@"; }

echo "== building a closure of $PARTS x $((SIZE_MB / PARTS)) MiB of random data" >&2
cat > "$WORK/closure.nix" <<NIX
let
  mk = attrs: derivation ({ system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; } // attrs);
  part = i: mk { name = "random-\${toString i}"; args = [ "-c" "mkdir \$out; head -c $((SIZE_MB / PARTS))M /dev/urandom > \$out/blob; echo \${toString i} > \$out/index" ]; };
  parts = map part [ 1 2 3 4 5 ];
in mk { name = "bench-top"; args = [ "-c" "echo \${toString parts} > \$out" ]; }
NIX
TOP=$(nixc build --store "$SRC" --impure -f "$WORK/closure.nix" --no-link --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["outputs"]["out"])')
nixc path-info --store "$SRC" -rsSh "$TOP" >&2

cargo build -q --release --manifest-path "$ROOT/Cargo.toml" -p xtask
XTASK=${CARGO_TARGET_DIR:-$ROOT/target}/release/xtask
KEY=$("$XTASK" cache keygen bench-1 --out "$WORK/keys" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
push() { "$XTASK" cache push "file://$WORK/$1" --key "$WORK/keys/bench-1.secret" --store "$SRC" --compression "$2" "$TOP" >/dev/null 2>&1; }

echo "== pushing (file://, fresh cache each run)" >&2
hyperfine --style basic --runs "$RUNS" --export-json "$WORK/push-zstd.json" \
  --prepare "rm -rf $WORK/cache-zstd" -n "push zstd" "$(declare -f push); XTASK=$XTASK WORK=$WORK SRC='$SRC' TOP=$TOP; push cache-zstd zstd"
hyperfine --style basic --runs 1 --export-json "$WORK/push-xz.json" \
  --prepare "rm -rf $WORK/cache-xz" -n "push xz" "$(declare -f push); XTASK=$XTASK WORK=$WORK SRC='$SRC' TOP=$TOP; push cache-xz xz"
push cache-none none
du -sh "$WORK"/cache-* >&2

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx/tmp"
cat > "$WORK/nginx/nginx.conf" <<NGINX
daemon off; master_process off; pid $WORK/nginx/pid; error_log $WORK/nginx/error.log;
events {}
http { access_log off; sendfile on;
  client_body_temp_path $WORK/nginx/tmp/b; proxy_temp_path $WORK/nginx/tmp/p; fastcgi_temp_path $WORK/nginx/tmp/f;
  uwsgi_temp_path $WORK/nginx/tmp/u; scgi_temp_path $WORK/nginx/tmp/s;
  server { listen 127.0.0.1:$PORT; root $WORK; } }
NGINX
nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & NGINX_PID=$!
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT))" 2>/dev/null && break; sleep 0.1; done

DST=$WORK/dst
fresh="chmod -R u+w $DST 2>/dev/null; rm -rf $DST $XDG_CACHE_HOME/nix"
sub() { echo "nix --extra-experimental-features nix-command copy --from http://127.0.0.1:$PORT/$1 --to 'local?root=$DST' --option trusted-public-keys '$KEY' $TOP"; }
PATHS=$(nixc path-info --store "$SRC" -r "$TOP" | sed "s|^|$WORK/src|" | tr '\n' ' ')

echo "== substituting into a fresh store" >&2
hyperfine --style basic --runs "$RUNS" --export-json "$WORK/sub.json" --prepare "$fresh" \
  -n "substitute from HTTP (zstd)" "$(sub cache-zstd)" \
  -n "substitute from HTTP (xz)" "$(sub cache-xz)" \
  -n "substitute from HTTP (none)" "$(sub cache-none)" \
  -n "nix copy local store -> fresh store" "nix --extra-experimental-features nix-command copy --no-check-sigs --from '$SRC' --to 'local?root=$DST' $TOP" \
  -n "cp -a of the store paths" "mkdir -p $DST/nix/store && cp -a $PATHS $DST/nix/store/"

python3 - "$WORK" <<'PY'
import json, sys, statistics
work = sys.argv[1]
print("\nmedians (s):")
for f in ["push-zstd", "push-xz", "sub"]:
    for r in json.load(open(f"{work}/{f}.json"))["results"]:
        print(f"  {r['command']:<40} {statistics.median(r['times']):8.2f}")
PY
