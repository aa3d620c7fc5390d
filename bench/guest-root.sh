#!/usr/bin/env bash
# bench/guest-root.sh: how fast does pkgbuild prepare a guest root of the
# base repository's toolchain, compared with apk (issue #8: "no slower
# than apk")?
#
# Builds the release binary and, once, the base repository of
# examples/base/ (`pkgbuild build --runner host`, about 20 s), then warms
# the cache with one `pkgbuild root` of $PKGS (default build-base), and
# times, each into a fresh directory, median of N (default 5) rounds after a
# warm-up (the variants interleaved round by round):
#   warm:  pkgbuild root DIR -r BASE -k KEY build-base
#          (packages cached, unpacked-root template reused: the path every
#          hermetic build after the first takes)
#   cold:  the same with the template cache (<apk-cache>/roots) removed
#          before each run (packages cached; unpack, install scripts, apk
#          database, new template, copy)
# For context (stderr only): `cp -a` of the template itself, the floor of
# the warm path (it writes every file of the root once more).
# Against one baseline, in the same run:
#   apk:   apk add --root DIR --initdb --keys-dir K --repository BASE PKGS,
#          when `apk` is on PATH;
#   tar:   otherwise (apk-tools is not packaged for Debian), the lower bound
#          any installer pays: `tar -xzf` of every package file of the
#          resolved set (the set `pkgbuild root` installed) into one
#          directory, sequentially. It checks nothing (no signature,
#          checksum, conflict or database), so matching it is a stronger
#          result than matching apk, which does all of that.
# The repository is a local directory, as in the README's base example.
# Prints the ratios ours/baseline of the medians (goal: warm <= 1); the
# medians themselves go to stderr.
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

# Time `$1 DIR` on a fresh DIR; `$2` (optional) runs before, untimed, and
# so does a sync, so no run pays for the previous one's writeback. The DIR
# is checked, then removed (untimed).
time_one() {
    local fn=$1 prep=${2:-} d s e
    d=$(mktemp -d -u "$W/roots/run.XXXXXX")
    if [[ -n $prep ]]; then $prep; fi
    sync
    s=$(now)
    $fn "$d"
    e=$(now)
    # Real roots only: the packages' files are there.
    [[ -n "$(ls -A "$d/usr" 2>/dev/null)" ]] || { echo "$fn left no /usr in $d" >&2; exit 1; }
    chmod -R u+rwX "$d" 2>/dev/null || true
    rm -rf "$d"
    echo $((e - s))
}
drop_templates() { rm -rf "$CACHE/roots"; }
copy_template() {
    local t
    t=$(find "$CACHE/roots" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | head -1)
    cp -a "$t" "$1"
}

# Interleaved, so a change in the machine's load (it is shared) hits every
# variant alike. Cold goes first in each round: it leaves the template the
# warm run then reuses.
time_one ours >/dev/null
time_one baseline >/dev/null
: >"$W/t_warm"; : >"$W/t_cold"; : >"$W/t_base"; : >"$W/t_copy"
for i in $(seq "$N"); do
    time_one ours drop_templates >>"$W/t_cold"
    time_one ours >>"$W/t_warm"
    time_one baseline >>"$W/t_base"
    time_one copy_template >>"$W/t_copy"
    echo "round $i/$N done" >&2
done

warm=$(median <"$W/t_warm")
cold=$(median <"$W/t_cold")
base=$(median <"$W/t_base")
copy=$(median <"$W/t_copy")
echo "baseline: $BASELINE, because $WHY"
awk -v w="$warm" -v c="$cold" -v b="$base" -v p="$copy" -v n="$N" -v bl="$BASELINE" 'BEGIN {
    printf "median of %d runs (ms): pkgbuild root warm %.1f, cold template %.1f, %s %.1f; cp -a of the template %.1f (warm/cp -a %.3f)\n", n, w / 1e6, c / 1e6, bl, b / 1e6, p / 1e6, w / p > "/dev/stderr"
    printf "ratio warm/%s: %.3f (goal <= 1)\n", bl, w / b
    printf "ratio cold/%s: %.3f\n", bl, c / b
}'
