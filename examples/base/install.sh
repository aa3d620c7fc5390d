#!/bin/sh
# install(1) for a root whose busybox lacks the applet (Debian's static
# busybox has none). The options builds use: -d, -D, -m MODE, -o, -g,
# -t DIR, -T, and the accepted no-ops -c, -p, -s, -v.
set -e
mode=755 dirs=0 lead=0 owner= group= target= notdir=0
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--directory) dirs=1 ;;
    -D) lead=1 ;;
    -m) mode=$2; shift ;;
    -m*) mode=${1#-m} ;;
    --mode=*) mode=${1#*=} ;;
    -o) owner=$2; shift ;;
    -g) group=$2; shift ;;
    -t) target=$2; shift ;;
    --target-directory=*) target=${1#*=} ;;
    -T|--no-target-directory) notdir=1 ;;
    -c|-p|-s|-v|--strip|--verbose|--preserve-timestamps) ;;
    --) shift; break ;;
    -*)
      # Bundled flags such as -Dm644 or -dm755.
      flags=${1#-}
      case "$flags" in
        *m*) mode=${flags#*m}; flags=${flags%%m*} ;;
      esac
      case "$flags" in *D*) lead=1 ;; esac
      case "$flags" in *d*) dirs=1 ;; esac
      if [ -z "$mode" ]; then mode=$2; shift; fi
      ;;
    *) break ;;
  esac
  shift
done
fix() {
  chmod "$mode" "$1"
  if [ -n "$owner" ]; then chown "$owner" "$1"; fi
  if [ -n "$group" ]; then chgrp "$group" "$1"; fi
}
if [ "$dirs" = 1 ]; then
  for d in "$@"; do mkdir -p "$d"; fix "$d"; done
  exit 0
fi
if [ -n "$target" ]; then
  [ "$lead" = 1 ] && mkdir -p "$target"
  for f in "$@"; do
    cp "$f" "$target/${f##*/}"; fix "$target/${f##*/}"
  done
  exit 0
fi
[ $# -ge 2 ] || { echo "install: missing destination" >&2; exit 1; }
eval "dest=\${$#}"
if [ $# -eq 2 ] && { [ "$notdir" = 1 ] || [ ! -d "$dest" ]; }; then
  [ "$lead" = 1 ] && mkdir -p "$(dirname "$dest")"
  rm -f "$dest"
  cp "$1" "$dest"; fix "$dest"
  exit 0
fi
[ "$lead" = 1 ] && mkdir -p "$dest"
n=$#
i=1
for f in "$@"; do
  [ $i -lt $n ] || break
  cp "$f" "$dest/${f##*/}"; fix "$dest/${f##*/}"
  i=$((i + 1))
done
