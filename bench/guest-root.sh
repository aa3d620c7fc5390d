#!/usr/bin/env bash
# bench/guest-root.sh: how fast does pkgbuild prepare a guest root of the
# base repository's toolchain, compared with apk (issue #8: "no slower
# than apk")?
#
# Builds the release binary and, once, the base repository of
# examples/base/ (`pkgbuild build --runner host`, about 20 s), then warms
# the cache with one `pkgbuild root` of $PKGS (default build-base), and
# times, each into a fresh directory, median of N (default 5) runs after a
# warm-up:
#   warm:  pkgbuild root DIR -r BASE -k KEY build-base
#          (packages cached, unpacked-root template reused: the path every
#          hermetic build after the first takes)
#   cold:  the same with the template cache (<apk-cache>/roots) removed
#          before each run (packages cached; unpack, install scripts, apk
#          database, new template, copy)
# against one baseline, run in the same process:
#   apk:   apk add --root DIR --initdb --keys-dir K --repository BASE PKGS,
#          when `apk` is on PATH;
#   tar:   otherwise (apk-tools is not packaged for Debian), the lower bound
#          any installer pays: `tar -xzf` of every package file of the
#          resolved set (the set `pkgbuild root` installed) into one
#          directory, sequentially. It checks nothing (no signature,
#          checksum, conflict or database), so ratio 1 here is better than
#          "as fast as apk".
# The repository is a local directory, as in the README's base example.
# Prints the medians and the ratios ours/baseline (goal: warm <= 1).
# This is a benchmark, not a test: it asserts only that the roots are real.
#
# Usage: bench/guest-root.sh        (N=5 PKGS="build-base" by default)
set -euo pipefail

N=${N:-5}
PKGS=${PKGS:-build-base}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release -q
BIN=$ROOT/target/release/pkgbuild

W=$(mktemp -d)
# Roots may hold read-only directories.
trap 'chmod -R u+rwX "$W" 2>/dev/null; rm -rf "$W"' EXIT
"$BIN" keygen --key-size 2048 "$W/bench.rsa" >/dev/null 2>&1
mkdir -p "$W/keys" "$W/roots"
cp "$W/bench.rsa.pub" "$W/keys/"

echo "building the base repository (examples/base/*.yaml) in $W/base ..." >&2
"$BIN" build --runner host -q --out-dir "$W/base" --signing-key "$W/bench.rsa" \
    --cache-dir "$W/build-cache" examples/base/*.yaml >/dev/null 2>"$W/build.log" ||
    { cat "$W/build.log" >&2; exit 1; }
ARCH=$(basename "$(dirname "$(ls "$W"/base/*/APKINDEX.tar.gz | head -1)")")
CACHE=$W/apk-cache

ours() {
    "$BIN" root "$1" -r "$W/base" -k "$W/bench.rsa.pub" --apk-cache-dir "$CACHE" \
        --arch "$ARCH" $PKGS >/dev/null
}
ours "$W/roots/first"

# The resolved set, as installed: name and version from the apk database.
awk -F: '/^P:/ { p = $2 } /^V:/ { print p "-" $2 ".apk" }' \
    "$W/roots/first/lib/apk/db/installed" >"$W/set"
FILES=()
while read -r f; do FILES+=("$W/base/$ARCH/$f"); done <"$W/set"
count=${#FILES[@]}
bytes=$(cat "${FILES[@]}" | wc -c)
installed=$(du -sb --exclude=lib/apk "$W/roots/first" | cut -f1)
nfiles=$(find "$W/roots/first" -not -type d | wc -l)
echo "set: $PKGS -> $count packages ($((bytes / 1024)) KiB packaged, $((installed / 1024)) KiB and $nfiles files installed), arch $ARCH, cores $(nproc)" >&2

if command -v apk >/dev/null 2>&1; then
    BASELINE=apk
    WHY="apk is on PATH ($(apk --version 2>/dev/null | head -1))"
    baseline() {
        apk add --root "$1" --initdb --keys-dir "$W/keys" --repository "$W/base" \
            --arch "$ARCH" --quiet --no-progress $PKGS >/dev/null
    }
else
    BASELINE="tar -xzf"
    WHY="apk is not on PATH (apk-tools is not packaged here), so the baseline is the lower bound of any installer: tar -xzf of the $count package files, one after another, checking nothing"
    baseline() {
        mkdir -p "$1"
        for f in "${FILES[@]}"; do
            tar -xzf "$f" -C "$1" --warning=no-unknown-keyword
        done
    }
fi

now() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Time `$1 DIR` on a fresh DIR; `$2` (optional) runs before, untimed.
# The DIR is checked, then removed (untimed).
time_one() {
    local fn=$1 prep=${2:-} d
    d=$(mktemp -d -u "$W/roots/run.XXXXXX")
    if [[ -n $prep ]]; then $prep; fi
    local s e
    s=$(now)
    $fn "$d"
    e=$(now)
    # Real roots only: the last package's files are there.
    [[ -n "$(ls -A "$d/usr" 2>/dev/null)" ]] || { echo "$fn left no /usr in $d" >&2; exit 1; }
    chmod -R u+rwX "$d" 2>/dev/null || true
    rm -rf "$d"
    echo $((e - s))
}
drop_templates() { rm -rf "$CACHE/roots"; }

series() { # NAME FN [PREP]: warm-up, then N timed runs, one per line
    time_one "$2" "${3:-}" >/dev/null
    for _ in $(seq "$N"); do time_one "$2" "${3:-}"; done >"$W/t_$1"
}
series warm ours
series cold ours drop_templates
series base baseline

warm=$(median <"$W/t_warm")
cold=$(median <"$W/t_cold")
base=$(median <"$W/t_base")
echo "baseline: $BASELINE, because $WHY"
awk -v w="$warm" -v c="$cold" -v b="$base" -v n="$N" -v bl="$BASELINE" 'BEGIN {
    printf "median of %d runs (ms): pkgbuild root warm %.1f, cold template %.1f, %s %.1f\n", n, w / 1e6, c / 1e6, bl, b / 1e6
    printf "ratio warm/%s: %.3f (goal <= 1)\n", bl, w / b
    printf "ratio cold/%s: %.3f\n", bl, c / b
}'
