#!/bin/sh
# Shared helper of the examples/base recipes: packages files of the host
# (a Debian machine) as they are. Steps run with `--runner host`, so they
# read the host's own files.
#
#   host-files.sh dpkg PKG...            list the files (not directories) of
#                                        installed Debian packages, without
#                                        docs, man pages and lintian data
#   host-files.sh copy [--no-follow] DESTDIR
#                                        copy the paths read from stdin into
#                                        DESTDIR, with their symlink chains
#                                        (--no-follow: links alone, for -dev
#                                        links into a sibling package)
#   host-files.sh check-version PKG VER  fail unless Debian package PKG's
#                                        upstream version is VER (or starts
#                                        with VER.)
#   host-files.sh multiarch              the Debian multiarch triplet
#   host-files.sh ldconf DESTDIR NAME    name the multiarch library
#                                        directories in
#                                        DESTDIR/etc/ld.so.conf.d/NAME.conf
set -eu

die() {
	echo "host-files.sh: $*" >&2
	exit 1
}

need_pkg() {
	status=$(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null) || status=
	[ "$status" = installed ] ||
		die "the host lacks the Debian package $1: apt-get install $1"
}

# dpkg records pre-merge paths (/lib/x86_64-linux-gnu/libc.so.6); the file
# is packaged where it really is, under /usr, by resolving its directory.
canonical() {
	dir=$(dirname "$1")
	real=$(cd "$dir" 2>/dev/null && pwd -P) || die "$dir: no such directory on the host"
	case "$real" in /) echo "/$(basename "$1")" ;; *) echo "$real/$(basename "$1")" ;; esac
}

copy_one() {
	src=$(canonical "$1")
	dest=$2
	if [ ! -e "$src" ] && [ ! -L "$src" ]; then
		die "$1: missing on the host"
	fi
	[ -e "$dest$src" ] || [ -L "$dest$src" ] && return 0
	mkdir -p "$dest$(dirname "$src")"
	cp -P -p "$src" "$dest$src"
	# A link's target comes along, so nothing packaged dangles.
	if [ -L "$src" ] && [ "$follow" = yes ]; then
		target=$(readlink "$src")
		case "$target" in
		/*) next=$target ;;
		*) next=$(dirname "$src")/$target ;;
		esac
		copy_one "$next" "$dest"
	fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
dpkg)
	for p in "$@"; do
		need_pkg "$p"
		dpkg-query -L "$p" | while IFS= read -r f; do
			case "$f" in
			/usr/share/doc/* | /usr/share/man/* | /usr/share/info/* | \
				/usr/share/lintian/* | /usr/share/bug/* | /usr/share/locale/*) continue ;;
			esac
			# Directories come with their files; /lib itself is a link.
			[ -d "$f" ] && continue
			printf '%s\n' "$f"
		done
	done
	;;
copy)
	follow=yes
	if [ "${1:-}" = --no-follow ]; then
		follow=no
		shift
	fi
	[ $# -eq 1 ] || die "usage: host-files.sh copy [--no-follow] DESTDIR < paths"
	n=0
	while IFS= read -r path; do
		[ -n "$path" ] || continue
		copy_one "$path" "$1"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || die "copy: no paths on stdin"
	;;
check-version)
	[ $# -eq 2 ] || die "usage: host-files.sh check-version PKG VERSION"
	need_pkg "$1"
	full=$(dpkg-query -W -f '${Version}' "$1")
	# Upstream part: no epoch, no Debian revision, no +dfsg/.dfsg repack tag.
	up=${full#*:}
	up=${up%-*}
	up=${up%%+dfsg*}
	up=${up%%.dfsg*}
	case "$up" in
	"$2" | "$2".*) ;;
	*) die "the host's $1 is $full (upstream $up), the recipe says $2: set package.version to $up" ;;
	esac
	;;
multiarch)
	echo "$(uname -m)-linux-gnu"
	;;
ldconf)
	[ $# -eq 2 ] || die "usage: host-files.sh ldconf DESTDIR NAME"
	m="$(uname -m)-linux-gnu"
	mkdir -p "$1/etc/ld.so.conf.d"
	printf '# Multiarch library directories (Debian layout)\n/usr/lib/%s\n' "$m" \
		>"$1/etc/ld.so.conf.d/$2.conf"
	;;
*)
	die "unknown command '$cmd' (dpkg, copy, check-version, multiarch, ldconf)"
	;;
esac
