#!/usr/bin/env bash
# Peak memory of the server while builds are uploaded at once: N uploads of
# a file of MIB MiB each (random bytes, which nothing compresses), sent by N
# `artifact push` processes in parallel to the optimised server on a local
# config repository. Prints the server's peak resident memory (VmHWM).
#
#   make build && server/benches/upload_memory.sh            # 8 x 31 MiB
#   N=4 MIB=16 server/benches/upload_memory.sh
#
# Never part of the tests: a figure, not a pass or fail. Uses ports
# PORT and PORT+1 on loopback (default 18080).
set -euo pipefail

N=${N:-8}
MIB=${MIB:-31}
PORT=${PORT:-18080}
DIST=${DIST:-dist}
for program in release-manager artifact; do
  [ -x "$DIST/$program" ] || { echo "no $DIST/$program: run make build first" >&2; exit 1; }
done
DIST=$(cd "$DIST" && pwd)

work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

git init -q --bare -b master "$work/config.git"
git init -q -b master "$work/seed"
echo "config" >"$work/seed/README.md"
git -C "$work/seed" add -A
git -C "$work/seed" -c user.name=Bench -c user.email=bench@example.com commit -q -m seed
git -C "$work/seed" push -q "$work/config.git" master

"$DIST/release-manager" start --unauthenticated \
  --config-repo "$work/config.git" --data-dir "$work/data" \
  --listen "127.0.0.1:$PORT" --http-listen "127.0.0.1:$((PORT + 1))" \
  --poll-interval 0 --max-upload-bytes $(((MIB + 1) << 20)) \
  2>"$work/server.log" &
server=$!
for _ in $(seq 600); do
  grep -q "serving gRPC" "$work/server.log" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
grep -q "serving gRPC" "$work/server.log" || { echo "the server did not start" >&2; exit 1; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
echo "server at rest: $(($(rss) / 1024)) MB"

for n in $(seq "$N"); do
  root="$work/build-$n"
  mkdir -p "$root/dev"
  head -c $((MIB << 20)) /dev/urandom >"$root/dev/blob.bin"
  "$DIST/artifact" --root "$root" init --artifact-id "master-$n" --service "svc-$n" \
    --git-branch master --git-sha "$n" --git-author-name Bench \
    --git-author-email bench@example.com >/dev/null
done

began=$(date +%s.%N)
for n in $(seq "$N"); do
  "$DIST/artifact" --root "$work/build-$n" push --server "127.0.0.1:$PORT" \
    --environments dev >"$work/push-$n.log" 2>&1 &
done
failed=0
for job in $(jobs -p); do
  [ "$job" = "$server" ] && continue
  wait "$job" || failed=$((failed + 1))
done
ended=$(date +%s.%N)
peak=$(awk '/^VmHWM/ {print $2}' "/proc/$server/status")
echo "$N uploads of $MIB MiB at once: $(echo "$ended - $began" | bc) s, $failed failed"
echo "peak RSS of the server: $((peak / 1024)) MB"
[ "$failed" -eq 0 ] || { cat "$work"/push-*.log >&2; exit 1; }
