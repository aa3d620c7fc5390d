#!/usr/bin/env bash
# Publishing benchmark (not a test), against a local S3-compatible server
# (moto, served one request at a time by tests/tools/moto_serial.py):
#   1. `pkgbuild publish` of N small packages (create-only uploads plus the
#      signed index merge) against uploading the same files with the AWS SDK
#      for Python (boto3 put_object, 16 threads, no index), same server, same
#      run; prints the time ratio.
#   2. index merges per second under 16 concurrent publishers, each
#      publishing ROUNDS one-package repositories in turn.
#
# Usage: bench/publish.sh [N] [ROUNDS]     (default 2000, 4)
# Needs: a venv with moto[server] (and so boto3) at target/moto-venv or
# $PKGBUILD_MOTO_VENV; PKGBUILD_BIN (default: target/release/pkgbuild, built).
set -euo pipefail

cd "$(dirname "$0")/.."
N=${1:-2000}
ROUNDS=${2:-4}
VENV=${PKGBUILD_MOTO_VENV:-$PWD/target/moto-venv}
if [[ -z "${PKGBUILD_BIN:-}" ]]; then
  cargo build --release --quiet
  PKGBUILD_BIN=$PWD/target/release/pkgbuild
fi
BIN=$PKGBUILD_BIN
PY=$VENV/bin/python

WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# The server exits when its stdin closes, so also when this script dies.
mkfifo "$WORK/port" "$WORK/stdin"
exec 4<> "$WORK/stdin"
"$PY" tests/tools/moto_serial.py 3600 < "$WORK/stdin" > "$WORK/port" 2>/dev/null &
SERVER_PID=$!
PORT=$(head -n1 "$WORK/port")
EP=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
for b in bench-sdk bench-pkgbuild bench-merge; do curl -sf -X PUT "$EP/$b" > /dev/null; done

"$BIN" keygen --key-size 2048 "$WORK/bench.rsa" > /dev/null 2>&1
mkdir -p "$WORK/stage/usr/share" "$WORK/repo/x86_64"
echo "making $N packages" >&2
for i in $(seq -w 1 "$N"); do
  echo "$i" > "$WORK/stage/usr/share/file"
  "$BIN" pack --root "$WORK/stage" --name "p$i" --version 1.0-r0 --out "$WORK/repo/x86_64" \
    --key "$WORK/bench.rsa" --threads 1 > /dev/null
done

now() { date +%s.%N; }
t0=$(now)
"$PY" - "$EP" "$WORK/repo/x86_64" <<'PY'
import os, sys, boto3
from concurrent.futures import ThreadPoolExecutor
ep, d = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=ep)
def up(f):
    with open(os.path.join(d, f), "rb") as fh:
        s3.put_object(Bucket="bench-sdk", Key="repo/x86_64/" + f, Body=fh.read(), IfNoneMatch="*")
with ThreadPoolExecutor(16) as ex:
    list(ex.map(up, sorted(x for x in os.listdir(d) if x.endswith(".apk"))))
PY
t1=$(now)
"$BIN" publish "$WORK/repo" s3://bench-pkgbuild/repo --signing-key "$WORK/bench.rsa" \
  --endpoint "$EP" --jobs 16 2> "$WORK/publish.log"
t2=$(now)
tail -n1 "$WORK/publish.log" >&2
sdk=$(echo "$t1 - $t0" | bc -l)
ours=$(echo "$t2 - $t1" | bc -l)
printf 'upload %s packages: boto3 %.2fs, pkgbuild publish (with index) %.2fs, ratio pkgbuild/boto3 %.2f\n' \
  "$N" "$sdk" "$ours" "$(echo "$ours / $sdk" | bc -l)"

# 16 publishers x ROUNDS one-package repositories into one prefix.
for p in $(seq 1 16); do
  for r in $(seq 1 "$ROUNDS"); do
    repo=$WORK/merge/$p-$r
    mkdir -p "$repo/x86_64"
    echo "$p-$r" > "$WORK/stage/usr/share/file"
    "$BIN" pack --root "$WORK/stage" --name "m$p-$r" --version 1.0-r0 --out "$repo/x86_64" \
      --key "$WORK/bench.rsa" --threads 1 > /dev/null
  done
done
t3=$(now)
pids=()
for p in $(seq 1 16); do
  (for r in $(seq 1 "$ROUNDS"); do
     "$BIN" publish "$WORK/merge/$p-$r" s3://bench-merge/repo --signing-key "$WORK/bench.rsa" \
       --endpoint "$EP" 2>&1 | tail -n1
   done) > "$WORK/merge-$p.log" &
  pids+=($!)
done
wait "${pids[@]}"
t4=$(now)
retries=$(cat "$WORK"/merge-*.log | sed -n 's/.* refused, \([0-9]*\) index retries/\1/p' | paste -sd+ | bc)
merges=$((16 * ROUNDS))
printf 'index merges under 16 publishers: %d merges in %.2fs = %.1f merges/s, %d retries\n' \
  "$merges" "$(echo "$t4 - $t3" | bc -l)" "$(echo "$merges / ($t4 - $t3)" | bc -l)" "$retries"
