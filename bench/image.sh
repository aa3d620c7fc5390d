#!/usr/bin/env bash
# bench/image.sh: how fast is `pkgbuild image` for the base toolchain
# (build-base: gcc, binutils, glibc-dev, make, busybox, ...) from a warm
# cache, compared with extracting the same packages into an empty root?
#
# Builds the base repository of examples/base (host runner) once, then:
#   image:    pkgbuild image CONFIG --out IMAGE.tar (warm apk cache and
#             root template: resolve, copy the template, finish the root,
#             write and gzip the layer, write the layout)
#   baseline: apk add --initdb --root R build-base from the same
#             repository, when apk-tools is installed; otherwise (Debian
#             has no apk-tools) `tar -xzf` of every package of the same
#             set into an empty root, which is less than apk does.
# Each is run 3 times after a warm-up; the best time of each is printed
# with the ratio image/baseline. A benchmark, not a test: it asserts
# nothing. BIN=path/to/pkgbuild skips the release build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -z "${BIN:-}" ]; then
    cargo build --release -q
    BIN=$ROOT/target/release/pkgbuild
fi

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$BIN" keygen --key-size 2048 "$W/k.rsa" >/dev/null 2>&1
echo "building the base repository ..." >&2
"$BIN" build --runner host -q examples/base/*.yaml --out-dir "$W/base" --signing-key "$W/k.rsa" >/dev/null 2>&1
printf 'contents:\n  packages: [build-base]\naccounts:\n  users: [{username: b, uid: 1000}]\n  run-as: b\n' >"$W/toolchain.yaml"

run_image() {
    SOURCE_DATE_EPOCH=0 "$BIN" image "$W/toolchain.yaml" --out "$W/img.tar" \
        -r "$W/base" -k "$W/k.rsa.pub" --apk-cache-dir "$W/cache" >/dev/null 2>&1
}

ARCH=$(uname -m)
run_baseline() {
    rm -rf "$W/root" && mkdir -p "$W/root"
    if command -v apk >/dev/null; then
        apk add -q --initdb --root "$W/root" --keys-dir "$W" --repository "$W/base" \
            --arch "$ARCH" --no-scripts build-base >/dev/null
    else
        for f in $(grep -o '^[^=]*' "$W/pins"); do
            tar -xzf "$W/base/$ARCH/$f" -C "$W/root" 2>/dev/null
        done
    fi
}

best() {
    local fn=$1 best=
    for _ in 1 2 3; do
        local s e
        s=$(date +%s.%N)
        "$fn"
        e=$(date +%s.%N)
        best=$(echo "$e $s $best" | awk '{d=$1-$2; if ($3=="" || d<$3) print d; else print $3}')
    done
    echo "$best"
}

run_image # warm-up: fills the cache and the root template
# The installed package set, as file names, for the tar baseline.
tar -xOf "$W/img.tar" index.json >/dev/null
"$BIN" lock "$W/toolchain.yaml" -r "$W/base" -k "$W/k.rsa.pub" --apk-cache-dir "$W/cache" >/dev/null 2>&1
python3 -c "
import json,sys
l=json.load(open('$W/toolchain.lock.json'))
for p in l['contents']['packages']: print(p['name']+'-'+p['version']+'.apk')
" >"$W/pins"
run_baseline
ti=$(best run_image)
tb=$(best run_baseline)
what=$(command -v apk >/dev/null && echo "apk add --initdb" || echo "tar -xzf of each package (no apk-tools here)")
echo "packages: $(wc -l <"$W/pins"), image: $(du -h "$W/img.tar" | cut -f1)"
printf 'pkgbuild image (warm): %.2fs\nbaseline (%s): %.2fs\nratio image/baseline: %.2f\n' \
    "$ti" "$what" "$tb" "$(echo "$ti $tb" | awk '{print $1/$2}')"
