#!/usr/bin/env bash
# bench/index.sh: how fast is `pkgbuild index` compared with merely
# decompressing the same packages?
#
# Builds the release binary, makes N (default 2000) small, varied, signed
# packages with the hidden `pkgbuild pack` subcommand (each: 3 files, about
# 8-40 KiB of text, so the data member dominates the file as in real
# packages), then times:
#   index:    pkgbuild index --signing-key K -o APKINDEX.tar.gz *.apk
#             (reads only signature + control members, rayon-parallel)
#   baseline: gzip -dc of every byte of every package, run as
#             `cat BATCH | gzip -dc` over $(nproc) parallel xargs batches,
#             so process spawning does not dominate and it uses the same
#             cores the indexer may use.
# Each is run 5 times after a warm-up (page cache hot for both); the best
# time of each is reported with the ratio index/baseline (goal: <= 0.2).
# This is a benchmark, not a test: it asserts nothing.
set -euo pipefail

N=${N:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release -q
BIN=$ROOT/target/release/pkgbuild

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$BIN" keygen --key-size 2048 "$W/bench.rsa" >/dev/null 2>&1
mkdir -p "$W/pkgs" "$W/stage"

echo "generating $N packages in $W/pkgs ..." >&2
make_one() {
    i=$1
    r="$W/stage/$i"
    mkdir -p "$r/usr/bin" "$r/usr/share/doc/p$i"
    # Text-like content of varying size: compresses like real files do.
    head -c $((6000 + (i * 7919) % 24000)) /dev/urandom | base64 >"$r/usr/share/doc/p$i/README"
    printf '#!/bin/sh\necho package %s\n' "$i" >"$r/usr/bin/p$i"
    chmod 755 "$r/usr/bin/p$i"
    seq 1 $((200 + i % 500)) >"$r/usr/share/doc/p$i/numbers"
    "$BIN" pack --root "$r" --name "pkg$i" --version "1.$((i % 7)).$i-r0" \
        --out "$W/pkgs" --key "$W/bench.rsa" --threads 1 --mtime 1700000000 >/dev/null
    rm -rf "$r"
}
export -f make_one
export W BIN
seq 1 "$N" | xargs -P "$(nproc)" -I{} bash -c 'make_one {}'

cd "$W/pkgs"
count=$(ls | wc -l)
bytes=$(cat ./*.apk | wc -c)
echo "packages: $count, total $((bytes / 1024)) KiB, cores: $(nproc)" >&2

now() { date +%s%N; }
best() { sort -n | head -1; }

run_index() { "$BIN" index --signing-key "$W/bench.rsa" -o "$W/APKINDEX.tar.gz" ./*.apk >/dev/null 2>&1; }
run_baseline() {
    printf '%s\0' ./*.apk |
        xargs -0 -P "$(nproc)" -n $(((count + $(nproc) - 1) / $(nproc))) \
            sh -c 'cat "$@" | gzip -dc >/dev/null' sh
}

run_index
run_baseline
idx_ns=$(for _ in 1 2 3 4 5; do s=$(now); run_index; echo $(($(now) - s)); done | best)
base_ns=$(for _ in 1 2 3 4 5; do s=$(now); run_baseline; echo $(($(now) - s)); done | best)

# The index must be real: it verifies against the bench key.
"$BIN" verify --keys-dir "$W" "$W/APKINDEX.tar.gz" >&2

awk -v i="$idx_ns" -v b="$base_ns" -v n="$count" 'BEGIN {
    printf "pkgbuild index:       %8.1f ms (%d packages)\n", i / 1e6, n
    printf "gzip -dc (baseline):  %8.1f ms\n", b / 1e6
    printf "ratio index/baseline: %8.3f (goal <= 0.2)\n", i / b
}'
