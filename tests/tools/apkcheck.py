#!/usr/bin/env python3
"""apkcheck: an independent conformance checker for Alpine .apk v2 packages
and signed APKINDEX.tar.gz files, written against ../shared/apk-format.md.

It exists because the real clients (apk-tools 2.14 / 3.x, go-apk) cannot run
in our CI. It is deliberately a second implementation in another language
from the Rust writer, with no third-party modules: gzip members are split by
hand, tar headers are decoded byte by byte, and RSA PKCS#1 v1.5 signatures
are checked with a hand-written DER parser and pow(). It judges install-time
rules too (per-file checksums, directory entries), which `apk verify` skips,
so it is stricter than `apk verify` and says so in those messages.

Usage:
  apkcheck.py package --keys-dir DIR [--allow-unsigned] FILE.apk...
  apkcheck.py index --keys-dir DIR [--packages-dir DIR] APKINDEX.tar.gz...
  apkcheck.py selftest

Exit status: 0 when every file is clean (prints `FILE: OK`), 1 when any
violation was found (one line per violation: `FILE: §SECTION [rule] what
-- what the real client says`), 2 on usage errors.
"""

import base64
import hashlib
import os
import re
import sys
import zlib

# Bounds for untrusted input. Signature and control members and index
# payloads are kept in memory; the data member is streamed.
MAX_SMALL_MEMBER = 64 << 20
MAX_PAX = 1 << 20
MAX_KEEP_FILE = 64 << 20
MAX_SIGNATURE = 65536  # apk3 ignores larger signature files
MAX_PATH = 4086  # apk: PATH_MAX - 10 gives ENAMETOOLONG
MAX_LINES_PER_RULE = 20
READ_CHUNK = 1 << 18
OUT_CHUNK = 1 << 20

# §5.1: the intersection of what apk2, apk3 and go-apk accept.
VERSION_RE = re.compile(
    r"^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc)[0-9]*)?"
    r"(_(cvs|svn|git|hg|p)[0-9]*)?-r[0-9]+$"
)
# Versions inside dependencies/provides (`so:libfoo.so.1=1`) need no -rN.
DEP_VERSION_RE = re.compile(
    r"^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc)[0-9]*)?"
    r"(_(cvs|svn|git|hg|p)[0-9]*)?(-r[0-9]+)?$"
)
PKGNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
DEP_NAME_RE = re.compile(r"^[A-Za-z0-9._+\-:,/\[\]]+$")
GOAPK_SIGN_RE = re.compile(r"^\.SIGN\.(DSA|RSA|RSA256|RSA512)\.(.*\.rsa\.pub)$")
APK_SIGN_RE = re.compile(r"^\.SIGN\.([A-Z0-9]+)\.(.+)$")
GO_APK_OPS = ("=", "<", "<=", ">", ">=", "~", "=~")

SCRIPTS = (
    ".pre-install",
    ".post-install",
    ".pre-upgrade",
    ".post-upgrade",
    ".pre-deinstall",
    ".post-deinstall",
    ".trigger",
)
SINGLE_KEYS = (
    "pkgname",
    "pkgver",
    "pkgdesc",
    "url",
    "builddate",
    "packager",
    "size",
    "arch",
    "origin",
    "commit",
    "maintainer",
    "license",
    "install_if",
    "provider_priority",
    "replaces_priority",
    "datahash",
)
DISPLAY_KEYS = ("pkgdesc", "url", "license", "maintainer", "packager", "commit")
INDEX_LETTERS = set("CPVASITULomtckDpi")
DB_LETTERS = set("rqsfFMRaZg")

DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
SIGN_ALGS = {"RSA": "sha1", "RSA256": "sha256", "RSA512": "sha512"}
RSA_OID = bytes.fromhex("2a864886f70d010101")

MSG_FORMAT = 'apk2: "package file format error"; apk3: "v2 package format error"'
MSG_BAD_SIG = 'apk2/apk3: "BAD signature"'
MSG_UNTRUSTED = 'apk2: "UNTRUSTED"; apk3: "UNTRUSTED signature"'
INSTALL_TIME = "install-time failure (`apk verify` passes, `apk add` fails): "


class Report:
    """Violations of one file; repetitive rules are capped to stay readable."""

    def __init__(self, name):
        self.name = name
        self.lines = []
        self.counts = {}
        self.warnings = []

    def warn(self, section, rule, what, clients=None):
        """Something the spec allows but a client alters (display only)."""
        line = f"{self.name}: warning: §{section} [{rule}] {what}"
        if clients:
            line += f" -- {clients}"
        if len(self.warnings) < MAX_LINES_PER_RULE:
            self.warnings.append(line)

    def add(self, section, rule, what, clients=None):
        n = self.counts.get(rule, 0) + 1
        self.counts[rule] = n
        if n > MAX_LINES_PER_RULE:
            return
        line = f"{self.name}: §{section} [{rule}] {what}"
        if clients:
            line += f" -- {clients}"
        self.lines.append(line)

    def finish(self):
        for rule, n in self.counts.items():
            if n > MAX_LINES_PER_RULE:
                self.lines.append(
                    f"{self.name}: [{rule}] ... and {n - MAX_LINES_PER_RULE} more"
                )
        return self.lines

    def ok(self):
        return not self.counts


class Bad(Exception):
    """A structural error after which a file cannot be read further."""

    def __init__(self, section, rule, what, clients=None):
        super().__init__(what)
        self.args4 = (section, rule, what, clients)


# ----------------------------------------------------------------------------
# Gzip members (RFC 1952), parsed by hand so member boundaries are exact.
# ----------------------------------------------------------------------------


class Member:
    """One gzip member starting at `start`: inflated on demand, raw bytes
    (header to trailer) hashed with `algos`, trailer CRC32/ISIZE checked."""

    def __init__(self, f, start, fsize, algos=()):
        self.f = f
        self.start = start
        self.fsize = fsize
        self.hashers = {a: hashlib.new(a) for a in algos}
        header = self._header()
        self._hash(header)
        self.in_pos = start + len(header)
        self.tail = b""
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self.buf = bytearray()
        self.crc = 0
        self.usize = 0
        self.done = False
        self.end = None

    def _read_at(self, pos, n):
        self.f.seek(pos)
        return self.f.read(n)

    def _hash(self, data):
        for h in self.hashers.values():
            h.update(data)

    def _header(self):
        head = self._read_at(self.start, 10)
        if len(head) < 10 or head[:2] != b"\x1f\x8b":
            raise Bad("1.1", "gzip-header", "not a gzip member (bad magic)")
        if head[2] != 8:
            raise Bad("1.1", "gzip-header", f"gzip method {head[2]} is not deflate")
        flg = head[3]
        if flg & 0xE0:
            raise Bad("1.1", "gzip-header", "reserved gzip FLG bits set")
        pos = self.start + 10
        if flg & 4:  # FEXTRA
            xlen = self._read_at(pos, 2)
            if len(xlen) < 2:
                raise Bad("1.1", "gzip-header", "truncated gzip FEXTRA")
            pos += 2 + int.from_bytes(xlen, "little")
        for bit in (8, 16):  # FNAME, FCOMMENT: NUL-terminated
            if flg & bit:
                chunk = self._read_at(pos, 65536)
                nul = chunk.find(b"\0")
                if nul < 0:
                    raise Bad("1.1", "gzip-header", "unterminated gzip FNAME/FCOMMENT")
                pos += nul + 1
        if flg & 2:  # FHCRC
            pos += 2
        header = self._read_at(self.start, pos - self.start)
        if len(header) != pos - self.start:
            raise Bad("1.1", "gzip-header", "truncated gzip header")
        if flg & 2:
            want = int.from_bytes(header[-2:], "little")
            if zlib.crc32(header[:-2]) & 0xFFFF != want:
                raise Bad("1.1", "gzip-header", "gzip header CRC16 mismatch")
        return header

    def _fill(self):
        if self.done:
            return False
        data = self.tail
        fed_end = self.in_pos
        if not data:
            data = self._read_at(self.in_pos, READ_CHUNK)
            if not data:
                raise Bad("1.1", "gzip-truncated", "gzip member is truncated")
            self.in_pos += len(data)
            fed_end = self.in_pos
        else:
            fed_end = self.in_pos
        try:
            out = self.inflater.decompress(data, OUT_CHUNK)
        except zlib.error as e:
            raise Bad("1.1", "gzip-corrupt", f"deflate stream is corrupt: {e}")
        # At stream end CPython may leave the leftover input in both
        # unconsumed_tail and unused_data; only unused_data counts then.
        if self.inflater.eof:
            rest = len(self.inflater.unused_data)
        else:
            rest = len(self.inflater.unconsumed_tail)
        self._hash(data[: len(data) - rest])
        self.crc = zlib.crc32(out, self.crc)
        self.usize += len(out)
        self.buf += out
        if self.inflater.eof:
            deflate_end = fed_end - rest
            trailer = self._read_at(deflate_end, 8)
            if len(trailer) < 8:
                raise Bad("1.1", "gzip-truncated", "gzip trailer is truncated")
            self._hash(trailer)
            if int.from_bytes(trailer[:4], "little") != self.crc:
                raise Bad("1.1", "gzip-crc", "gzip CRC32 does not match the content")
            if int.from_bytes(trailer[4:], "little") != self.usize & 0xFFFFFFFF:
                raise Bad("1.1", "gzip-crc", "gzip ISIZE does not match the content")
            self.end = deflate_end + 8
            self.done = True
            self.tail = b""
        else:
            self.tail = self.inflater.unconsumed_tail
        return True

    def read(self, n):
        while len(self.buf) < n and self._fill():
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def finish(self):
        """Drain to the trailer; returns the number of bytes not consumed."""
        left = len(self.buf)
        self.buf.clear()
        while self._fill():
            left += len(self.buf)
            self.buf.clear()
        return left

    def digest(self, algo):
        return self.hashers[algo].digest()


class DataChain:
    """The data segment as apk2 reads it: one tar stream that continues
    through any further gzip members (each one is counted and reported)."""

    def __init__(self, f, pos, fsize):
        self.f = f
        self.fsize = fsize
        self.member = Member(f, pos, fsize)
        self.count = 1
        self.end = None

    def _next(self):
        self.member.finish()
        pos = self.member.end
        if pos < self.fsize and is_gzip_at(self.f, pos):
            self.member = Member(self.f, pos, self.fsize)
            self.count += 1
            return True
        self.end = pos
        return False

    def read(self, n):
        out = self.member.read(n)
        while len(out) < n and self.end is None and self._next():
            out += self.member.read(n - len(out))
        return out

    def finish(self):
        while self.end is None:
            self._next()


def hash_range(f, start, end, algo):
    h = hashlib.new(algo)
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(left, READ_CHUNK))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    return h.digest()


def is_gzip_at(f, pos):
    f.seek(pos)
    return f.read(2) == b"\x1f\x8b"


# ----------------------------------------------------------------------------
# Tar (ustar + PAX), strict: what apk's, Go's and Python's readers agree on.
# ----------------------------------------------------------------------------


class Entry:
    __slots__ = (
        "name",
        "type",
        "mode",
        "uid",
        "gid",
        "size",
        "linkname",
        "pax",
        "content",
        "sha1",
        "header_raw_name",
    )


def parse_octal(field, what, report, sect="1.2"):
    """apk reads octal digits, then allows only NUL/space (§1.2)."""
    if field and field[0] & 0x80:
        report.add(sect, "tar-base256", f"{what}: base-256 number", MSG_FORMAT)
        return 0
    i = 0
    while i < len(field) and 0x30 <= field[i] <= 0x37:
        i += 1
    value = int(field[:i], 8) if i else 0
    rest = field[i:]
    if any(c not in (0, 0x20) for c in rest):
        report.add(
            sect,
            "tar-octal",
            f"{what}: field {bytes(field)!r} is not octal digits followed by NUL/space",
            MSG_FORMAT,
        )
    return value


def cstr(field):
    nul = field.find(b"\0")
    return field if nul < 0 else field[:nul]


def parse_pax(data, report, where):
    """Records `<LEN> key=value\\n` with LEN exact (§1.3)."""
    out = {}
    i = 0
    while i < len(data):
        sp = data.find(b" ", i)
        digits = data[i:sp] if sp > 0 else b""
        if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
            report.add(
                "1.3", "pax-record", f"{where}: PAX record length at byte {i} is not a decimal"
            )
            return out
        n = int(digits)
        rec = data[i : i + n]
        if n <= len(digits) + 2 or len(rec) != n or rec[-1:] != b"\n":
            report.add(
                "1.3",
                "pax-record",
                f"{where}: PAX record length {n} does not end at a newline"
                " (LEN must count the whole record including its own digits)",
            )
            return out
        kv = rec[len(digits) + 1 : -1]
        eq = kv.find(b"=")
        if eq <= 0:
            report.add("1.3", "pax-record", f"{where}: PAX record without key=value")
            return out
        key = kv[:eq].decode("utf-8", "replace")
        if key in out:
            report.add("1.3", "pax-record", f"{where}: PAX key {key} given twice")
        out[key] = kv[eq + 1 :]
        i += n
    return out


def iter_tar(member, report, seg, keep_limit, hash_files):
    """Yield the entries of one gzip member's tar. Checks every header.
    `seg` names the segment for messages and end-of-archive policy."""
    pax = None
    longname = None
    zero_blocks = 0
    eoa_reported = False
    while True:
        blk = member.read(512)
        if not blk:
            break
        if len(blk) < 512:
            report.add("1.1", "tar-partial", f"{seg} member ends inside a 512-byte tar block")
            break
        if blk[0] == 0:
            # apk ends the archive at any header whose name starts with NUL.
            if any(blk):
                report.add(
                    "1.5",
                    "tar-empty-name",
                    f"{seg}: header with an empty name field (apk reads it as end-of-archive)",
                )
            zero_blocks += 1
            if seg in ("signature", "control") and not eoa_reported:
                eoa_reported = True
                if seg == "signature":
                    clients = 'apk2: "BAD archive"; apk3: "file format is invalid or inconsistent"'
                    rule = "sig-eoa"
                else:
                    clients = 'apk2: "BAD archive"; apk3: "unexpected end of file"'
                    rule = "ctl-eoa"
                report.add(
                    "1.1",
                    rule,
                    f"end-of-archive (zero) blocks inside the {seg} member",
                    clients,
                )
            continue
        if zero_blocks and seg not in ("signature", "control"):
            report.add(
                "1.1",
                "tar-after-eoa",
                f"{seg}: entries after end-of-archive blocks (tar readers never see them)",
            )
        zero_blocks = 0
        e = parse_header(blk, report, seg)
        size = e.size
        padded = (size + 511) & ~511
        if e.type == "x":
            if pax is not None:
                report.add("1.3", "pax-orphan", f"{seg}: two PAX headers in a row")
            if size > MAX_PAX:
                raise Bad("1.3", "pax-size", f"{seg}: PAX header of {size} bytes")
            raw = member.read(padded)
            if len(raw) < padded:
                raise Bad("1.1", "tar-truncated", f"{seg}: PAX header crosses the member end")
            pax = parse_pax(raw[:size], report, f"{seg} PAX header")
            continue
        if e.type == "g":
            report.add(
                "1.2",
                "tar-global-pax",
                f"{seg}: PAX global header `g`",
                'go-apk: "unsupported file type" (Go returns it as an entry)',
            )
            member.read(padded)
            continue
        if e.type == "L":
            if size > MAX_PAX:
                raise Bad("1.5", "tar-longname", f"{seg}: GNU long name of {size} bytes")
            raw = member.read(padded)
            longname = cstr(raw[:size])
            continue
        if e.type == "K":
            report.add(
                "1.3",
                "tar-gnu-longlink",
                f"{seg}: GNU long-link header `K` (apk ignores it; use PAX linkpath)",
            )
            member.read(padded)
            continue
        if longname is not None:
            e.name = longname
            longname = None
        e.pax = pax or {}
        pax = None
        if "path" in e.pax:
            e.name = e.pax["path"]
        if "linkpath" in e.pax:
            e.linkname = e.pax["linkpath"]
        for key in ("size", "uid", "gid", "uname", "gname"):
            if key in e.pax:
                report.add(
                    "1.3",
                    "pax-unsupported",
                    f"{seg}: {show(e.name)}: PAX `{key}` record (apk ignores it, Go honours it)",
                )
        if e.type in ("1", "2", "3", "4", "5", "6") and size:
            report.add("1.2", "tar-size", f"{seg}: {show(e.name)}: non-file entry with size {size}")
        # Content: hashed (and kept when small) for regular files.
        e.content = None
        e.sha1 = None
        h = hashlib.sha1() if hash_files else None
        keep = bytearray() if size <= keep_limit else None
        left = padded
        want = size
        while left:
            chunk = member.read(min(left, OUT_CHUNK))
            if not chunk:
                raise Bad("1.1", "tar-truncated", f"{seg}: {show(e.name)}: content crosses the gzip member end")
            left -= len(chunk)
            body = chunk[:want] if want < len(chunk) else chunk
            want -= len(body)
            if h:
                h.update(body)
            if keep is not None:
                keep += body
        if keep is not None:
            e.content = bytes(keep)
        if h:
            e.sha1 = h.hexdigest()
        yield e
    if pax is not None:
        report.add("1.3", "pax-orphan", f"{seg}: PAX header not followed by an entry")


def parse_header(blk, report, seg):
    e = Entry()
    name = cstr(blk[0:100])
    prefix = cstr(blk[345:500])
    e.type = chr(blk[156]) if blk[156] else "\\0"
    where = f"{seg}: {show(name)}"
    magic = blk[257:265]
    if magic[:5] != b"ustar":
        report.add("1.2", "tar-magic", f"{where}: no `ustar` magic", MSG_FORMAT)
    elif magic not in (b"ustar\x0000", b"ustar  \x00"):
        report.add(
            "1.2", "tar-magic", f"{where}: magic/version {bytes(magic)!r} (Go reads it as V7)"
        )
    chk = parse_octal(blk[148:156], f"{where}: chksum", report)
    total = sum(blk[:148]) + 8 * 0x20 + sum(blk[156:])
    if chk != total:
        report.add(
            "1.2",
            "tar-chksum",
            f"{where}: header checksum {chk:o} != computed {total:o}",
            'go-apk / Python tarfile: "invalid header" (apk does not check)',
        )
    e.mode = parse_octal(blk[100:108], f"{where}: mode", report)
    e.uid = parse_octal(blk[108:116], f"{where}: uid", report)
    e.gid = parse_octal(blk[116:124], f"{where}: gid", report)
    e.size = parse_octal(blk[124:136], f"{where}: size", report)
    parse_octal(blk[136:148], f"{where}: mtime", report)
    parse_octal(blk[329:337], f"{where}: devmajor", report)
    parse_octal(blk[337:345], f"{where}: devminor", report)
    if e.mode > 0o7777:
        report.add("1.2", "tar-mode", f"{where}: mode {e.mode:o} has bits beyond 07777")
    if e.type not in ("0", "1", "2", "3", "4", "5", "6", "x", "g", "L", "K"):
        if e.type == "7":
            msg = "typeflag `7` (apk reads a file, go-apk installs only `0`)"
        else:
            msg = f"typeflag {e.type!r} is not one apk/go-apk install"
        report.add("1.2", "tar-typeflag", f"{where}: {msg}")
    if prefix and e.type not in ("x", "g"):
        name = prefix + b"/" + name
    e.name = name
    e.linkname = cstr(blk[157:257])
    return e


def show(name):
    if isinstance(name, bytes):
        name = name.decode("utf-8", "backslashreplace")
    return repr(name) if any(ord(c) < 0x20 or c == "\x7f" for c in name) else name


# ----------------------------------------------------------------------------
# RSA PKCS#1 v1.5 with a minimal DER reader (§3).
# ----------------------------------------------------------------------------


def der_next(buf, i):
    """(tag, content, next index) of the DER element at `i`."""
    if i + 2 > len(buf):
        raise ValueError("truncated DER")
    tag = buf[i]
    n = buf[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or i + k > len(buf):
            raise ValueError("bad DER length")
        n = int.from_bytes(buf[i : i + k], "big")
        i += k
    if i + n > len(buf):
        raise ValueError("DER element overruns its parent")
    return tag, buf[i : i + n], i + n


def der_rsa_public(body):
    """RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }"""
    tag, seq, _ = der_next(body, 0)
    if tag != 0x30:
        raise ValueError("RSAPublicKey is not a SEQUENCE")
    tag, n, i = der_next(seq, 0)
    tag2, e, _ = der_next(seq, i)
    if tag != 0x02 or tag2 != 0x02:
        raise ValueError("RSAPublicKey fields are not INTEGERs")
    return int.from_bytes(n, "big"), int.from_bytes(e, "big")


def load_public_key(text):
    """(n, e, kind) from PEM; kind is 'spki' or 'pkcs1'."""
    m = re.search(
        r"-----BEGIN (RSA )?PUBLIC KEY-----\s*(.*?)\s*-----END (RSA )?PUBLIC KEY-----",
        text,
        re.S,
    )
    if not m:
        raise ValueError("no PEM PUBLIC KEY block")
    der = base64.b64decode("".join(m.group(2).split()), validate=True)
    if m.group(1):
        n, e = der_rsa_public(der)
        return n, e, "pkcs1"
    tag, spki, _ = der_next(der, 0)
    if tag != 0x30:
        raise ValueError("SubjectPublicKeyInfo is not a SEQUENCE")
    tag, alg, i = der_next(spki, 0)
    tag_oid, oid, _ = der_next(alg, 0)
    if tag != 0x30 or tag_oid != 0x06 or oid != RSA_OID:
        raise ValueError("not an rsaEncryption key")
    tag, bits, _ = der_next(spki, i)
    if tag != 0x03 or not bits or bits[0] != 0:
        raise ValueError("subjectPublicKey is not a BIT STRING")
    n, e = der_rsa_public(bits[1:])
    return n, e, "spki"


def rsa_verify(n, e, digest_name, digest, sig):
    k = (n.bit_length() + 7) // 8
    if len(sig) != k:
        return False
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    t = DIGEST_INFO[digest_name] + digest
    if k < len(t) + 11:
        return False
    want = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return em == want


class Keys:
    def __init__(self, directory):
        self.dir = directory
        self.cache = {}

    def get(self, name):
        """(n, e, kind) or None when apk would not find the key file."""
        if "/" in name or name in (".", ".."):
            return None
        if name not in self.cache:
            path = os.path.join(self.dir, name)
            try:
                with open(path, encoding="ascii", errors="replace") as f:
                    text = f.read(65536)
                self.cache[name] = load_public_key(text)
            except (OSError, ValueError):
                self.cache[name] = None
        return self.cache[name]


def check_signatures(entries, digests, keys, report, what):
    """apk: the first .SIGN whose key file exists decides; go-apk (index):
    any RSA/RSA256 signature with a known key. Every signature with a known
    key must verify: a bad one is a writer bug even if another passes."""
    chosen = None
    goapk_ok = False
    for e in entries:
        name = e.name.decode("utf-8", "replace")
        m = APK_SIGN_RE.match(name)
        if not m:
            report.add("3.1", "sig-name", f"signature entry {show(name)} is not .SIGN.<ALG>.<key>")
            continue
        alg, keyname = m.group(1), m.group(2)
        if not GOAPK_SIGN_RE.match(name):
            report.add(
                "3.1",
                "sig-name-goapk",
                f"{name}: does not match ^\\.SIGN\\.(DSA|RSA|RSA256|RSA512)\\.(.*\\.rsa\\.pub)$",
                'go-apk: "failed to find key name in signature file name"',
            )
        if e.type != "0":
            report.add("1.7", "sig-entry", f"{name}: signature is not a regular file")
        if alg not in SIGN_ALGS:
            report.add("3.2", "sig-alg", f"{name}: algorithm {alg} is not RSA/RSA256/RSA512")
            continue
        content = e.content or b""
        if len(content) > MAX_SIGNATURE:
            report.add("3.1", "sig-size", f"{name}: signature of {len(content)} bytes (apk3 ignores > 65536)")
            continue
        key = keys.get(keyname)
        if key is None:
            continue
        n, exp, kind = key
        if kind == "pkcs1":
            report.add(
                "3.1",
                "key-pkcs1",
                f"{keyname}: key is PKCS#1 `RSA PUBLIC KEY`",
                "go-apk: x509.ParsePKIXPublicKey fails",
            )
        good = rsa_verify(n, exp, SIGN_ALGS[alg], digests[SIGN_ALGS[alg]], content)
        if chosen is None:
            chosen = (name, good)
        if not good:
            report.add(
                "3.3",
                "sig-bad",
                f"{name}: RSA PKCS#1 v1.5 {SIGN_ALGS[alg]} signature does not verify over"
                f" the compressed {what} bytes",
                MSG_BAD_SIG,
            )
        elif alg in ("RSA", "RSA256"):
            goapk_ok = True
    if chosen is None:
        report.add(
            "3.1", "sig-untrusted", f"no signature by a key in the keys dir ({what})", MSG_UNTRUSTED
        )
    return chosen, goapk_ok


# ----------------------------------------------------------------------------
# .PKGINFO and dependencies (§2, §5)
# ----------------------------------------------------------------------------


def check_dep(item, key, report, sect="5.3", allow_ops=True):
    where = f"{key} {item!r}"
    body = item
    if body.startswith("!"):
        if key in ("provides", "p"):
            report.add(sect, "dep-syntax", f"{where}: `!` is not allowed in provides")
        body = body[1:]
    if "@" in body:
        report.add(
            sect,
            "dep-tag",
            f"{where}: repository tag `@` in package metadata",
            "apk3 marks the package uninstallable",
        )
        return
    m = re.match(r"^([^<>=~]*)([<>=~]*)(.*)$", body)
    name, op, ver = m.group(1), m.group(2), m.group(3)
    if not name or not DEP_NAME_RE.match(name):
        report.add(sect, "dep-name", f"{where}: name {name!r} has characters outside [A-Za-z0-9._+-:,/[]]")
    if op:
        if op not in GO_APK_OPS:
            report.add(sect, "dep-op", f"{where}: operator {op!r} (go-apk knows only {' '.join(GO_APK_OPS)})")
        elif key in ("provides", "p") and op != "=":
            report.add(sect, "dep-op", f"{where}: provides allows only `name=version`")
        if not DEP_VERSION_RE.match(ver):
            report.add(
                sect,
                "dep-version",
                f"{where}: version {ver!r} outside the §5.1 grammar",
                "apk3 marks the package uninstallable",
            )
    elif ver:
        report.add(sect, "dep-syntax", f"{where}: trailing text after the name")


def parse_pkginfo(raw, report):
    """Returns (dict key -> [values], ok). Checks line syntax (§2.1)."""
    fields = {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        report.add("2.1", "pkginfo-utf8", ".PKGINFO is not valid UTF-8")
        text = raw.decode("utf-8", "replace")
    if text and not text.endswith("\n"):
        report.add("2.1", "pkginfo-eol", ".PKGINFO does not end with a newline")
    for no, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        if "\r" in line:
            report.add("2.1", "pkginfo-eol", f".PKGINFO line {no}: carriage return")
        if " = " not in line:
            report.add("2.1", "pkginfo-line", f".PKGINFO line {no} {line!r} has no ` = ` (apk silently ignores it)")
            continue
        key, value = line.split(" = ", 1)
        if key != key.lower() or not re.match(r"^[a-z_]+$", key):
            report.add("2.1", "pkginfo-key", f".PKGINFO line {no}: key {key!r} is not lowercase")
        fields.setdefault(key, []).append(value)
    return fields


def check_pkginfo(fields, report):
    for key in ("pkgname", "pkgver", "arch", "size", "datahash"):
        if key not in fields:
            clients = None
            if key == "datahash":
                clients = (
                    'apk2: "BAD signature" (warning "Support for packages without datahash'
                    ' will be dropped"); apk3: "v2 package format error"'
                )
            elif key == "pkgname":
                clients = 'apk3: "v2 package format error"; apk2: ENOTSUP'
            report.add("2.2", f"pkginfo-no-{key}", f".PKGINFO has no `{key}`", clients)
    for key, values in fields.items():
        if key == "triggers" and len(values) > 1:
            report.add(
                "2.1",
                "pkginfo-triggers",
                f"{len(values)} `triggers` lines; each replaces the previous one in apk",
            )
        elif key in SINGLE_KEYS and len(values) > 1:
            report.add("2.1", "pkginfo-repeat", f"`{key}` given {len(values)} times (apk keeps the last)")
        # In display-only fields the spec accepts go-apk's truncation.
        flag = report.warn if key in DISPLAY_KEYS else report.add
        for v in values:
            if "#" in v or ";" in v:
                flag(
                    "2.1",
                    "pkginfo-goapk-comment",
                    f"`{key}` value {v!r} contains `#` or `;`",
                    "go-apk (gopkg.in/ini) truncates it there",
                )
            if v != v.strip() or v[:1] in ('"', "`", "'"):
                flag(
                    "2.1",
                    "pkginfo-goapk-trim",
                    f"`{key}` value {v!r} has edge whitespace or a leading quote (go-apk alters it)",
                )
    name = last(fields, "pkgname")
    if name is not None and not PKGNAME_RE.match(name):
        report.add("2.2", "pkginfo-pkgname", f"pkgname {name!r} outside [A-Za-z0-9][A-Za-z0-9._+-]*")
    ver = last(fields, "pkgver")
    if ver is not None and not VERSION_RE.match(ver):
        report.add("5.1", "pkginfo-version", f"pkgver {ver!r} outside the §5.1 intersection grammar (with -rN)")
    for key in ("size", "builddate", "provider_priority", "replaces_priority"):
        v = last(fields, key)
        if v is not None and not re.match(r"^[0-9]+$", v):
            report.add("2.2", "pkginfo-number", f"`{key}` {v!r} is not a decimal number")
    dh = last(fields, "datahash")
    if dh is not None and not re.match(r"^[0-9a-f]{64}$", dh):
        report.add("2.2", "pkginfo-datahash", f"datahash {dh!r} is not 64 lowercase hex digits")
    for key in ("depend", "provides", "replaces"):
        for v in fields.get(key, []):
            if " " in v.strip():
                report.add("2.1", "pkginfo-list", f"`{key} = {v}`: several items on one line (go-apk reads one per line)")
            for item in v.split():
                check_dep(item, key, report)
    for v in fields.get("install_if", []):
        for item in v.split():
            check_dep(item, "install_if", report)
    for v in fields.get("triggers", []):
        for glob in v.split():
            if not glob.startswith("/"):
                report.add("2.3", "pkginfo-triggers", f"trigger glob {glob!r} is not absolute")


def last(fields, key):
    v = fields.get(key)
    return v[-1] if v else None


# ----------------------------------------------------------------------------
# Packages (§1, §2, §3)
# ----------------------------------------------------------------------------


class DataState:
    def __init__(self, report):
        self.report = report
        self.dirs = set()
        self.nondirs = {}
        self.regular = {}
        self.seen = set()
        self.count = 0
        self.installed = 0
        self.first = True


def check_data_entry(st, e):
    r = st.report
    raw = e.name
    name = raw.decode("utf-8", "backslashreplace")
    where = show(raw)
    st.count += 1
    if st.first:
        st.first = False
        if raw.startswith(b".") and b"/" not in raw.rstrip(b"/"):
            r.add(
                "1.4.1",
                "data-dotfile",
                f"data: {where}: first data entry looks like a control file (apk starts data at it)",
            )
    if any(c < 0x20 or c == 0x7F for c in raw):
        r.add("1.4.1", "data-name", f"data: {where}: control character in name")
    if raw.startswith(b"/"):
        r.add("1.4.1", "data-name", f"data: {where}: absolute name")
    if raw.startswith(b"./") or raw == b".":
        r.add(
            "1.4.1",
            "data-dot-slash",
            f"data: {where}: name starts with `./`",
            'apk2/apk3: "OK" but nothing is installed (entries starting with `.` are skipped)',
        )
    elif raw.startswith(b"."):
        r.add(
            "1.4.1",
            "data-dotfile",
            f"data: {where}: top-level dotfile",
            "apk2/apk3 silently never install it (treated as a control file)",
        )
    is_dir = e.type == "5"
    path = raw[:-1] if is_dir and raw.endswith(b"/") else raw
    if raw.endswith(b"/") and not is_dir:
        r.add("1.4.1", "data-name", f"data: {where}: trailing `/` on a non-directory")
    parts = path.split(b"/")
    if any(p in (b"", b".", b"..") for p in parts) and not raw.startswith((b"/", b"./")):
        r.add("1.4.1", "data-name", f"data: {where}: empty, `.` or `..` path component")
    if len(path) >= MAX_PATH:
        r.add("1.5", "data-path-length", f"data: {where[:80]}...: path of {len(path)} bytes", "apk: ENAMETOOLONG")
    if len(e.linkname) >= MAX_PATH:
        r.add("1.5", "data-path-length", f"data: {where}: link target of {len(e.linkname)} bytes", "apk: ENAMETOOLONG")
    if path in st.seen:
        r.add("1.4.1", "data-duplicate", f"data: {where}: path appears twice")
    # Ancestors must be directory entries, parents first (§1.4.1).
    if len(parts) > 1:
        parent = b"/".join(parts[:-1])
        if parent in st.nondirs:
            r.add("1.4.1", "data-parent-type", f"data: {where}: parent {show(parent)} is not a directory")
        elif parent not in st.dirs:
            r.add(
                "1.4.1",
                "data-no-dirent",
                f"data: {where}: no directory entry for {show(parent)}/ before it",
                INSTALL_TIME + f'apk2/apk3: "{name}: no dirent in archive"',
            )
        else:
            for k in range(1, len(parts) - 1):
                anc = b"/".join(parts[:k])
                if anc not in st.dirs:
                    r.add(
                        "1.4.1",
                        "data-no-ancestor",
                        f"data: {where}: ancestor {show(anc)}/ has no directory entry",
                        INSTALL_TIME + f'apk2: "Failed to create {name}: No such file or directory"',
                    )
                    break
    st.seen.add(path)
    if "APK-TOOLS.checksum.MD5" in e.pax:
        r.add("1.3", "data-md5", f"data: {where}: legacy APK-TOOLS.checksum.MD5 record (apk3 ignores it)")
    for key in e.pax:
        if key.startswith("SCHILY.xattr.") and len(key) == len("SCHILY.xattr."):
            r.add("1.4.6", "data-xattr", f"data: {where}: xattr record without a name")
    csum = e.pax.get("APK-TOOLS.checksum.SHA1")
    if csum is not None:
        csum = csum.decode("ascii", "replace")
        if not re.match(r"^[0-9a-fA-F]{40}$", csum):
            r.add("1.4.2", "data-csum-format", f"data: {where}: checksum {csum!r} is not 40 hex digits")
            csum = "bad"
        csum = csum.lower()
    if is_dir:
        st.dirs.add(path)
        return
    st.nondirs[path] = e.type
    if e.type == "0":
        st.regular[path] = e
        st.installed += e.size
        if csum is None:
            r.add(
                "1.4.2",
                "data-no-file-csum",
                f"data: {where}: regular file without APK-TOOLS.checksum.SHA1",
                INSTALL_TIME
                + 'apk2: "support for packages without embedded checksums will be dropped'
                f' in apk-tools 3." + 1 error; apk3: "failed to extract {name}: file format is'
                ' obsolete (e.g. missing embedded checksum)"',
            )
        elif csum != e.sha1:
            r.add(
                "1.4.2",
                "data-bad-file-csum",
                f"data: {where}: checksum {csum} != sha1(content) {e.sha1}",
                f'apk audit: "U {name}"; go-apk: "checksum mismatch"',
            )
    elif e.type == "2":
        want = hashlib.sha1(e.linkname).hexdigest()
        if not e.linkname:
            r.add("1.4.5", "data-symlink", f"data: {where}: symlink with an empty target")
        if csum is None:
            r.add(
                "1.4.2",
                "data-no-symlink-csum",
                f"data: {where}: symlink without APK-TOOLS.checksum.SHA1",
                INSTALL_TIME + 'apk2: "support for packages without embedded checksums" + 1 error',
            )
        elif csum != want:
            r.add(
                "1.4.2",
                "data-bad-symlink-csum",
                f"data: {where}: checksum {csum} != sha1(target) {want}",
                f'apk audit: "U {name}"',
            )
    elif e.type == "1":
        target = e.linkname
        tgt = st.regular.get(target)
        if tgt is None:
            r.add(
                "1.4.4",
                "data-hardlink",
                f"data: {where}: hard link target {show(target)} is not an earlier regular file",
                INSTALL_TIME + f'apk: "{name}: no hard link target ({show(target)}) in archive"',
            )
        elif (tgt.mode, tgt.uid, tgt.gid) != (e.mode, e.uid, e.gid):
            r.add("1.4.4", "data-hardlink-meta", f"data: {where}: mode/owner differ from its target")
    elif e.type in ("3", "4", "6"):
        r.add(
            "1.4.6",
            "data-device",
            f"data: {where}: device node or fifo (typeflag {e.type})",
            'go-apk/apko: "unsupported file type"',
        )


def read_small_member(f, pos, fsize, report, seg, algos=()):
    """Parse a small member fully; returns (member, entries)."""
    m = Member(f, pos, fsize, algos)
    entries = list(iter_tar(m, report, seg, MAX_KEEP_FILE, False))
    if m.finish():
        report.add("1.1", "tar-partial", f"{seg}: bytes after the last tar block")
    if m.usize > MAX_SMALL_MEMBER:
        raise Bad("1.1", "member-size", f"{seg} member inflates to {m.usize} bytes")
    return m, entries


def first_entry_name(f, pos, fsize):
    m = Member(f, pos, fsize)
    blk = m.read(512)
    if len(blk) < 512:
        return b""
    prefix = cstr(blk[345:500])
    name = cstr(blk[0:100])
    return prefix + b"/" + name if prefix else name


def check_package(path, keys, allow_unsigned=False, report=None):
    """Returns (report, summary) with summary keys: fields, control_sha1, size."""
    report = report or Report(path)
    summary = {"fields": {}, "control_sha1": None, "size": None}
    try:
        with open(path, "rb") as f:
            fsize = os.fstat(f.fileno()).st_size
            summary["size"] = fsize
            _check_package(f, fsize, keys, allow_unsigned, report, summary)
    except Bad as b:
        report.add(*b.args4)
    except OSError as e:
        report.add("1", "io", f"cannot read: {e}")
    return report, summary


def _check_package(f, fsize, keys, allow_unsigned, report, summary):
    pos = 0
    sig_entries = None
    if fsize == 0:
        raise Bad("1.1", "empty", "empty file")
    if first_entry_name(f, 0, fsize).startswith(b".SIGN."):
        sig_m, sig_entries = read_small_member(f, 0, fsize, report, "signature")
        for e in sig_entries:
            if not e.name.startswith(b".SIGN."):
                report.add("1.1", "sig-member", f"signature member holds {show(e.name)}")
        pos = sig_m.end
    if pos >= fsize or not is_gzip_at(f, pos):
        raise Bad("1.1", "members", "no control member after the signature member")
    ctl_m, ctl_entries = read_small_member(f, pos, fsize, report, "control", ("sha1", "sha256", "sha512"))
    summary["control_sha1"] = ctl_m.digest("sha1")
    pos = ctl_m.end
    digests = {a: ctl_m.digest(a) for a in ("sha1", "sha256", "sha512")}
    if sig_entries is None:
        if not allow_unsigned:
            report.add("1.1", "sig-missing", "package has no signature member", MSG_UNTRUSTED)
    else:
        check_signatures(sig_entries, digests, keys, report, "control member")

    # Control member (§1.6).
    pkginfo = None
    names = set()
    scripts = set()
    for i, e in enumerate(ctl_entries):
        name = e.name.decode("utf-8", "replace")
        if i == 0 and name != ".PKGINFO":
            report.add("1.6", "ctl-order", f"control: first entry is {show(name)}, not .PKGINFO",
                       'melange: "unexpected file in control section"')
        if not name.startswith(".") or "/" in name:
            report.add("1.6", "ctl-name", f"control: {show(name)} does not start with `.` or contains `/` (apk starts data there)")
        if name.startswith(".SIGN."):
            report.add("1.6", "ctl-name", f"control: signature entry {name} outside the signature member")
        if name in names:
            report.add("1.6", "ctl-duplicate", f"control: {name} appears twice")
        names.add(name)
        if e.type != "0":
            report.add("1.6", "ctl-type", f"control: {show(name)} is not a regular file (typeflag {e.type})")
        if name == ".INSTALL":
            report.add("1.6", "ctl-install", "control: legacy .INSTALL", 'apk3: "v2 package format error"')
        if name == ".PKGINFO":
            pkginfo = e
            if e.mode != 0o644:
                report.add("1.6", "ctl-mode", f"control: .PKGINFO mode {e.mode:o}, expected 644")
        if name in SCRIPTS:
            scripts.add(name)
            if e.mode != 0o755:
                report.add("2.3", "ctl-script-mode", f"control: {name} mode {e.mode:o}, expected 755")
            if not (e.content or b"").startswith(b"#!"):
                report.add("2.3", "ctl-script-shebang", f"control: {name} does not start with `#!` (apk execve()s it)")
    fields = {}
    if pkginfo is None:
        report.add("1.6", "ctl-no-pkginfo", "control member has no .PKGINFO", MSG_FORMAT)
    else:
        fields = parse_pkginfo(pkginfo.content or b"", report)
        check_pkginfo(fields, report)
    summary["fields"] = fields
    has_trigger = ".trigger" in scripts
    if has_trigger != ("triggers" in fields):
        report.add("2.3", "ctl-trigger", "`.trigger` script and `triggers` line must come together")

    # Data member (§1.4): exactly one, streamed.
    if pos >= fsize:
        raise Bad("1.1", "members", "no data member")
    if not is_gzip_at(f, pos):
        raise Bad("1.1", "members", "bytes after the control member are not a gzip member")
    st = DataState(report)
    data = DataChain(f, pos, fsize)
    for e in iter_tar(data, report, "data", 0, True):
        check_data_entry(st, e)
    data.finish()
    dh = last(fields, "datahash")
    actual = hash_range(f, pos, fsize, "sha256").hex()
    pos = data.end
    if dh is not None and dh != actual:
        report.add(
            "3.3",
            "datahash",
            f"datahash {dh} != sha256(data member) {actual}",
            'apk2: "BAD signature"; apk3: "v2 package integrity error"; go-apk: "data hash mismatch"',
        )
    if data.count > 1:
        report.add(
            "1.1",
            "data-members",
            f"data is split into {data.count} gzip members",
            'apk2: "WARNING: Support for packages with multiple data parts will be dropped in'
            ' apk-tools 3."; apk3: "file format is invalid or inconsistent"',
        )
    if pos < fsize:
        report.add("1.1", "trailing-bytes", f"{fsize - pos} bytes after the last gzip member")
    size = last(fields, "size")
    if size is not None and size.isdigit() and int(size) == 0 and (st.count or scripts):
        report.add(
            "2.2",
            "pkginfo-size-zero",
            "`size = 0` on a package with content or scripts",
            'apk2/apk3: "OK" but nothing is extracted and no script runs (virtual package)',
        )


# ----------------------------------------------------------------------------
# Index (§4)
# ----------------------------------------------------------------------------


def b64_sha1(digest):
    return "Q1" + base64.b64encode(digest).decode()


def check_index(path, keys, packages_dir=None):
    report = Report(path)
    extra_reports = []
    try:
        with open(path, "rb") as f:
            fsize = os.fstat(f.fileno()).st_size
            if fsize > MAX_SMALL_MEMBER:
                raise Bad("4.1", "index-size", f"index of {fsize} bytes")
            records = _check_index(f, fsize, keys, report)
    except Bad as b:
        report.add(*b.args4)
        records = []
    except OSError as e:
        report.add("4", "io", f"cannot read: {e}")
        records = []
    if packages_dir is not None:
        extra_reports = check_index_packages(records, packages_dir, keys, report)
    return [report] + extra_reports


def _check_index(f, fsize, keys, report):
    pos = 0
    sig_entries = None
    if fsize == 0:
        raise Bad("4.1", "empty", "empty file")
    if first_entry_name(f, 0, fsize).startswith(b".SIGN."):
        sig_m, sig_entries = read_small_member(f, 0, fsize, report, "signature")
        pos = sig_m.end
    f.seek(pos)
    rest = f.read()
    digests = {a: hashlib.new(a, rest).digest() for a in ("sha1", "sha256", "sha512")}
    if sig_entries is None:
        report.add(
            "4.1",
            "sig-missing",
            "index has no signature member",
            'apk2/apk3: "WARNING: opening ...: UNTRUSTED signature" then "(no such package)"',
        )
    else:
        for e in sig_entries:
            if not e.name.startswith(b".SIGN."):
                report.add("4.1", "sig-member", f"signature member holds {show(e.name)}")
        chosen, goapk_ok = check_signatures(sig_entries, digests, keys, report, "index tar member")
        if chosen and not goapk_ok:
            report.add("3.2", "sig-goapk", "no valid RSA/RSA256 signature (go-apk skips RSA512/DSA)")
    if pos >= fsize or not is_gzip_at(f, pos):
        raise Bad("4.1", "members", "no index tar member after the signature member")
    m, entries = read_small_member(f, pos, fsize, report, "index")
    pos = m.end
    count = 1
    while pos < fsize and is_gzip_at(f, pos):
        count += 1
        extra = Member(f, pos, fsize)
        extra.finish()
        pos = extra.end
    if count > 1:
        report.add("4.1", "index-members", f"index payload is {count} gzip members, expected 1")
    if pos < fsize:
        report.add("4.1", "trailing-bytes", f"{fsize - pos} bytes after the last gzip member")
    apkindex = None
    for e in entries:
        name = e.name.decode("utf-8", "replace")
        if name not in ("DESCRIPTION", "APKINDEX"):
            report.add(
                "4.1",
                "index-entry",
                f"index tar holds {show(name)}",
                f'go-apk: "unexpected file found in APKINDEX: {name}"',
            )
            continue
        if e.type != "0":
            report.add("4.1", "index-entry", f"{name} is not a regular file")
        if name == "DESCRIPTION" and e.size > 160:
            report.add("4.1", "index-description", f"DESCRIPTION of {e.size} bytes (apk3 loads ≤ 160)")
        if name == "APKINDEX":
            if apkindex is not None:
                report.add("4.1", "index-entry", "APKINDEX appears twice")
            apkindex = e.content or b""
    if apkindex is None:
        report.add("4.1", "index-no-apkindex", "no APKINDEX entry", 'apk2: "archive does not contain expected data"')
        return []
    return check_apkindex_text(apkindex, report)


def check_apkindex_text(raw, report):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        report.add("4.2", "apkindex-utf8", "APKINDEX is not valid UTF-8")
        text = raw.decode("utf-8", "replace")
    if not text.endswith("\n\n"):
        report.add(
            "4.2",
            "apkindex-end",
            "APKINDEX does not end with a blank line",
            "go-apk drops the last record",
        )
    records = []
    cur = None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for no, line in enumerate(lines, 1):
        if line == "":
            if cur is None:
                report.add("4.2", "apkindex-blank", f"APKINDEX line {no}: empty record (extra blank line)")
            else:
                records.append(cur)
            cur = None
            continue
        if len(line) < 2 or line[1] != ":":
            report.add("4.2", "apkindex-line", f"APKINDEX line {no} {line[:60]!r}: no `:` at byte 2 (go-apk rejects)")
            continue
        letter, value = line[0], line[2:]
        if cur is None:
            cur = {"_line": no}
        if letter in cur:
            report.add("4.2", "apkindex-repeat", f"APKINDEX line {no}: `{letter}:` repeated in one record")
        cur[letter] = value
        if letter not in INDEX_LETTERS:
            if letter.isupper():
                report.add(
                    "4.2",
                    "apkindex-letter",
                    f"APKINDEX line {no}: unknown uppercase field `{letter}:`",
                    "apk marks the package uninstallable",
                )
            elif letter in DB_LETTERS:
                report.add("4.2", "apkindex-letter", f"APKINDEX line {no}: `{letter}:` is an installed-db field, not an index field")
    if cur is not None:
        records.append(cur)
    prev = None
    seen = set()
    for rec in records:
        where = f"APKINDEX record at line {rec['_line']}"
        for letter in "CPV":
            if letter not in rec:
                report.add("4.2", "apkindex-required", f"{where}: no `{letter}:`")
        c = rec.get("C")
        if c is not None:
            ok = bool(re.match(r"^Q1[A-Za-z0-9+/]{27}=$", c))
            if ok:
                ok = len(base64.b64decode(c[2:])) == 20
            if not ok:
                report.add("4.2", "apkindex-C", f"{where}: C:{c} is not Q1 + base64(SHA-1) (28 chars)",
                           "go-apk requires Q1; apk3 drops records without a SHA-1 identity")
        p, v = rec.get("P"), rec.get("V")
        if p is not None and not PKGNAME_RE.match(p):
            report.add("4.2", "apkindex-P", f"{where}: P:{p!r} is not a package name")
        if v is not None and not VERSION_RE.match(v):
            report.add("5.1", "apkindex-V", f"{where}: V:{v!r} outside the §5.1 intersection grammar")
        for letter in "SItk":
            if letter in rec and not re.match(r"^[0-9]+$", rec[letter]):
                report.add("4.2", "apkindex-number", f"{where}: {letter}:{rec[letter]!r} is not decimal")
        if "A" in rec and not rec["A"]:
            report.add("4.2", "apkindex-A", f"{where}: empty A:")
        for letter in "Dpi":
            val = rec.get(letter)
            if val is None:
                continue
            if val.startswith("[") and val.endswith("]"):
                report.add("4.2", "apkindex-goslice", f"{where}: {letter}:{val} looks like a Go slice")
            for item in val.split(" "):
                if item:
                    check_dep(item, letter, report, "4.2")
                else:
                    report.add("4.2", "apkindex-list", f"{where}: {letter}: has an empty item (double space)")
        if p is not None and v is not None:
            if (p, v) in seen:
                report.add("4.2", "apkindex-duplicate", f"{where}: {p}-{v} listed twice")
            seen.add((p, v))
            if prev is not None:
                pp, pv = prev
                order = (pp.encode() > p.encode()) or (pp == p and version_compare(pv, v) > 0)
                if order:
                    report.add("4.2", "apkindex-order", f"{where}: {p}-{v} sorts before {pp}-{pv} (by name, then version)")
            prev = (p, v)
    return records


INDEX_FROM_PKGINFO = {
    "P": "pkgname",
    "V": "pkgver",
    "I": "size",
    "T": "pkgdesc",
    "U": "url",
    "L": "license",
    "o": "origin",
    "m": "maintainer",
    "t": "builddate",
    "c": "commit",
    "k": "provider_priority",
    "i": "install_if",
}


def check_index_packages(records, packages_dir, keys, report):
    """C:, S:, fetch location and the other letters against each package."""
    arch_dir = os.path.basename(os.path.normpath(packages_dir))
    repo = os.path.dirname(os.path.normpath(packages_dir))
    reports = []
    for rec in records:
        p, v = rec.get("P"), rec.get("V")
        if not p or not v or "/" in p or "/" in v:
            continue
        where = f"APKINDEX {p}-{v}"
        file = os.path.join(packages_dir, f"{p}-{v}.apk")
        if not os.path.isfile(file):
            report.add("4.4", "index-missing-file", f"{where}: {file} does not exist")
            continue
        arch = rec.get("A", arch_dir)
        fetch = os.path.join(repo, arch, f"{p}-{v}.apk")
        if not os.path.isfile(fetch):
            report.add(
                "4.4",
                "index-fetch-path",
                f"{where}: apk fetches {fetch} (from A:{arch}), which does not exist",
                'apk2/apk3: "package mentioned in index not found (try \'apk update\')"',
            )
        pkg_report, summary = check_package(file, keys)
        reports.append(pkg_report)
        if summary["control_sha1"] is not None and rec.get("C") != b64_sha1(summary["control_sha1"]):
            report.add(
                "3.3",
                "index-C-mismatch",
                f"{where}: C:{rec.get('C')} != {b64_sha1(summary['control_sha1'])} (SHA-1 of its control member)",
                'apk2: "BAD signature"; apk3: "v2 package integrity error"; go-apk: "control hash mismatch"',
            )
        if rec.get("S") != str(summary["size"]):
            report.add("4.2", "index-S-mismatch", f"{where}: S:{rec.get('S')} != file size {summary['size']}")
        fields = summary["fields"]
        for letter, key in INDEX_FROM_PKGINFO.items():
            want = last(fields, key) or ""
            if letter == "t" and want == "0":
                want = ""
            got = rec.get(letter, "")
            if got != want:
                report.add("4.2", "index-field-mismatch", f"{where}: {letter}:{got!r} but .PKGINFO {key} = {want!r}")
        for letter, key in (("D", "depend"), ("p", "provides")):
            want = " ".join(item for line in fields.get(key, []) for item in line.split())
            got = rec.get(letter, "")
            if got != want:
                report.add("4.2", "index-field-mismatch", f"{where}: {letter}:{got!r} but .PKGINFO {key} gives {want!r}")
        pkg_arch = last(fields, "arch")
        if pkg_arch is not None and rec.get("A") not in (pkg_arch, arch_dir if pkg_arch == "noarch" else pkg_arch):
            report.add("4.4", "index-A-mismatch", f"{where}: A:{rec.get('A')} but .PKGINFO arch = {pkg_arch}")
    return reports


# ----------------------------------------------------------------------------
# Versions (§5.2): apk3's ordering, including leading-zero string compare.
# ----------------------------------------------------------------------------

T_INITIAL, T_DIGIT, T_LETTER, T_SUFFIX, T_SUFFIX_NO, T_HASH, T_REV, T_END, T_INVALID = range(9)
PRE_SUFFIXES = ("alpha", "beta", "pre", "rc")
POST_SUFFIXES = ("cvs", "svn", "git", "hg", "p")


def version_tokens(v):
    """[(kind, value)] ending in T_END or T_INVALID. Values: int for numbers,
    str for letters/hashes, rank for suffixes (pre < 0 < post)."""
    out = []
    i = 0
    m = re.match(r"[0-9]+", v)
    if not m:
        return [(T_INVALID, None)]
    out.append((T_INITIAL, m.group()))
    i = m.end()
    kind = T_INITIAL
    while True:
        if i == len(v):
            out.append((T_END, None))
            return out
        c = v[i]
        if "a" <= c <= "z" and kind <= T_DIGIT:
            kind = T_LETTER
            out.append((kind, c))
            i += 1
        elif (c == "." and kind <= T_DIGIT) or (c.isdigit() and kind == T_SUFFIX):
            if c == ".":
                i += 1
            m = re.match(r"[0-9]+", v[i:])
            if not m:
                break
            kind = T_DIGIT if kind <= T_DIGIT else T_SUFFIX_NO
            out.append((kind, m.group()))
            i += m.end()
        elif c == "_" and kind <= T_SUFFIX_NO:
            m = re.match(r"[a-z]+", v[i + 1 :])
            word = m.group() if m else ""
            if word in PRE_SUFFIXES:
                rank = PRE_SUFFIXES.index(word) - len(PRE_SUFFIXES)
            elif word in POST_SUFFIXES:
                rank = POST_SUFFIXES.index(word) + 1
            else:
                break
            kind = T_SUFFIX
            out.append((kind, rank))
            i += 1 + len(word)
        elif c == "~" and kind < T_HASH:
            m = re.match(r"[0-9a-f]+", v[i + 1 :])
            if not m:
                break
            kind = T_HASH
            out.append((kind, m.group()))
            i += 1 + m.end()
        elif c == "-" and kind < T_REV and v[i : i + 2] == "-r":
            m = re.match(r"[0-9]+", v[i + 2 :])
            if not m:
                break
            kind = T_REV
            out.append((kind, m.group()))
            i += 2 + m.end()
        else:
            break
    out.append((T_INVALID, None))
    return out


def _token_cmp(kind, a, b):
    if kind == T_DIGIT and (a[0] == "0" or b[0] == "0"):
        return (a > b) - (a < b)  # leading zero: string order
    if kind in (T_INITIAL, T_DIGIT, T_SUFFIX_NO, T_REV):
        a, b = int(a), int(b)
    return (a > b) - (a < b)


def version_compare(a, b):
    """-1, 0, 1 as `apk version -t a b` prints <, =, >."""
    ta, tb = version_tokens(a), version_tokens(b)
    i = 0
    while i < len(ta) and i < len(tb):
        (ka, va), (kb, vb) = ta[i], tb[i]
        if ka != kb or ka >= T_END:
            break
        r = _token_cmp(ka, va, vb)
        if r:
            return r
        i += 1
    ka, va = ta[i]
    kb, vb = tb[i]
    if ka == kb:
        return 0
    # One side continues: it is greater unless it continues with a
    # pre-release suffix.
    if ka == T_SUFFIX and va < 0:
        return -1
    if kb == T_SUFFIX and vb < 0:
        return 1
    return -1 if ka > kb else 1


# ----------------------------------------------------------------------------
# Self-test
# ----------------------------------------------------------------------------

VERSION_TABLE = [
    ("1.0", "1.0-r1", -1),
    ("1.0-r0", "1.0", 1),
    ("1.0-r1", "1.0-r2", -1),
    ("1.0_rc1", "1.0", -1),
    ("1.0_alpha", "1.0_beta", -1),
    ("1.0_beta", "1.0_pre", -1),
    ("1.0_pre", "1.0_rc", -1),
    ("1.0_p1", "1.0", 1),
    ("1.0_git20240101", "1.0", 1),
    ("1.0_cvs", "1.0_svn", -1),
    ("1.0_svn", "1.0_git", -1),
    ("1.0_git", "1.0_hg", -1),
    ("1.0_hg", "1.0_p", -1),
    ("1.0a", "1.0", 1),
    ("1.0a", "1.0.1", -1),
    ("1.0", "1.0.0", -1),
    ("1.01", "1.1", -1),
    ("1.1", "1.01", 1),
    ("1.001", "1.01", -1),
    ("1.0.10", "1.0.9", 1),
    ("2", "10", -1),
    ("1.0_rc1_p2", "1.0_rc1", 1),
    ("1.2.3_rc1-r3", "1.2.3-r0", -1),
    ("1.0_rc", "1.0_rc0", -1),
    ("1.0~abc123", "1.0", 1),
    ("1.0~abc", "1.0~abd", -1),  # apk3; apk2 says =
    ("1.0", "1.0", 0),
    ("1.0a", "1.0b", -1),
    ("1.0_alpha", "1.0_alpha1", -1),
    ("1.0_p1", "1.0_p1", 0),
]

GRAMMAR_OK = ["1.0-r0", "2-r10", "1.2.3a_rc1_p2-r3", "1.0_git20240101-r0", "0.1b_alpha-r1"]
GRAMMAR_BAD = [
    "1.0",  # no -rN
    "v1.0-r0",
    "1.-r0",
    ".1-r0",
    "1..2-r0",
    "1.0a1-r0",
    "1.0.a-r0",
    "1.0-r",
    "1.0~abc123-r0",
    "1.0_rc1_rc2-r0",
    "1.0_p1_rc1-r0",
    "1.0-1",
]


def selftest():
    failures = []
    for a, b, want in VERSION_TABLE:
        got = version_compare(a, b)
        back = version_compare(b, a)
        if got != want or back != -want:
            failures.append(f"version_compare({a}, {b}) = {got} / reverse {back}, want {want}")
    for v in GRAMMAR_OK:
        if not VERSION_RE.match(v):
            failures.append(f"grammar rejects {v}")
    for v in GRAMMAR_BAD:
        if VERSION_RE.match(v):
            failures.append(f"grammar accepts {v}")
    failures += selftest_crypto()
    failures += selftest_mutations()
    for line in failures:
        print(f"selftest: FAIL {line}")
    if failures:
        return 1
    print(f"selftest: OK ({len(VERSION_TABLE)} version pairs, mutations and RSA checked)")
    return 0


def _is_probable_prime(n, rounds=24):
    if n < 4:
        return n in (2, 3)
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    x = 0x9E3779B97F4A7C15
    for _ in range(rounds):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        a = 2 + x % (n - 3)
        y = pow(a, d, n)
        if y in (1, n - 1):
            continue
        for _ in range(s - 1):
            y = pow(y, 2, n)
            if y == n - 1:
                break
        else:
            return False
    return True


def _prime_from(seed, bits):
    n = int.from_bytes(hashlib.sha512(seed).digest() * 2, "big") >> (1024 - bits)
    n |= (1 << (bits - 1)) | 1
    while not _is_probable_prime(n):
        n += 2
    return n


def test_rsa_key():
    """A deterministic 1024-bit key (test only) so the self-test needs no files."""
    e = 65537
    p = _prime_from(b"apkcheck-p", 512)
    q = _prime_from(b"apkcheck-q", 512)
    n = p * q
    d = pow(e, -1, (p - 1) * (q - 1))
    return n, e, d


def rsa_sign(n, d, digest_name, data):
    k = (n.bit_length() + 7) // 8
    t = DIGEST_INFO[digest_name] + hashlib.new(digest_name, data).digest()
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return pow(int.from_bytes(em, "big"), d, n).to_bytes(k, "big")


def _der(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(ln)]) + ln + body


def _der_int(v):
    b = v.to_bytes(v.bit_length() // 8 + 1, "big")
    return _der(0x02, b)


def spki_pem(n, e):
    rsa = _der(0x30, _der_int(n) + _der_int(e))
    alg = _der(0x30, _der(0x06, RSA_OID) + b"\x05\x00")
    spki = _der(0x30, alg + _der(0x03, b"\x00" + rsa))
    body = base64.b64encode(spki).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def selftest_crypto():
    failures = []
    n, e, d = test_rsa_key()
    pn, pe, kind = load_public_key(spki_pem(n, e))
    if (pn, pe, kind) != (n, e, "spki"):
        failures.append("SPKI PEM round trip")
    for name in ("sha1", "sha256", "sha512"):
        sig = rsa_sign(n, d, name, b"data")
        if not rsa_verify(n, e, name, hashlib.new(name, b"data").digest(), sig):
            failures.append(f"rsa {name} valid signature rejected")
        if rsa_verify(n, e, name, hashlib.new(name, b"datb").digest(), sig):
            failures.append(f"rsa {name} wrong data accepted")
    return failures


# A tiny independent package writer, used only to produce one violation at a
# time and prove each rule fires (the Rust writer is never used here).


def _octal(v, width):
    return (b"%0*o" % (width - 1, v)) + b"\0"


def t_header(name, typeflag=b"0", size=0, mode=0o644, link=b"", prefix=b"", raw=None):
    h = bytearray(512)
    h[0 : len(name)] = name
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(0, 8)
    h[116:124] = _octal(0, 8)
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(1700000000, 12)
    h[156:157] = typeflag
    h[157 : 157 + len(link)] = link
    h[257:265] = b"ustar\x0000"
    h[265:269] = b"root"
    h[297:301] = b"root"
    h[329:337] = _octal(0, 8)
    h[337:345] = _octal(0, 8)
    h[345 : 345 + len(prefix)] = prefix
    for off, val in (raw or {}).items():
        h[off : off + len(val)] = val
    h[148:156] = b"        "
    if not (raw and 148 in raw):
        h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pax_record(key, value):
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def t_entry(name, typeflag=b"0", data=b"", mode=0o644, link=b"", pax=(), **kw):
    out = b""
    if pax:
        recs = b"".join(pax_record(k, v) for k, v in pax)
        out += t_header(b"PaxHeaders/x", b"x", len(recs)) + recs + b"\0" * (-len(recs) % 512)
    out += t_header(name, typeflag, len(data), mode, link, **kw)
    return out + data + b"\0" * (-len(data) % 512)


def t_file(name, data, mode=0o755):
    return t_entry(name, b"0", data, mode, pax=[(b"APK-TOOLS.checksum.SHA1", hashlib.sha1(data).hexdigest().encode())])


def gz(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = c.compress(data) + c.flush()
    return (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"
        + body
        + zlib.crc32(data).to_bytes(4, "little")
        + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
    )


def _noise(n):
    out = bytearray()
    block = b"apkcheck"
    while len(out) < n:
        block = hashlib.sha512(block).digest()
        out += block
    return bytes(out[:n])


def base_data():
    return [
        t_entry(b"usr/", b"5", mode=0o755),
        t_entry(b"usr/bin/", b"5", mode=0o755),
        t_file(b"usr/bin/hello", b"#!/bin/sh\necho hi\n"),
        t_entry(b"usr/bin/hello-link", b"2", mode=0o777, link=b"hello",
                pax=[(b"APK-TOOLS.checksum.SHA1", hashlib.sha1(b"hello").hexdigest().encode())]),
        t_entry(b"usr/bin/hello-hard", b"1", mode=0o755, link=b"usr/bin/hello"),
    ]


def build_package(key, data_entries=None, pkginfo_extra="", pkginfo_override=None, ctl_extra=b"", size=18,
                  ctl_eoa=False, sig_eoa=False, data_split=False, trailing=b"", sign_name=None):
    n, _, d = key
    data_tar = b"".join(base_data() if data_entries is None else data_entries) + b"\0" * 1024
    if data_split:
        half = (len(data_tar) // 2) // 512 * 512
        data_member = gz(data_tar[:half]) + gz(data_tar[half:])
        datahash = hashlib.sha256(data_member).hexdigest()
    else:
        data_member = gz(data_tar)
        datahash = hashlib.sha256(data_member).hexdigest()
    pkginfo = pkginfo_override if pkginfo_override is not None else (
        "# Generated by apkcheck selftest\npkgname = hello\npkgver = 1.0-r0\npkgdesc = Hello\n"
        f"size = {size}\narch = x86_64\nlicense = MIT\n{pkginfo_extra}datahash = {datahash}\n"
    )
    pk = pkginfo.encode()
    ctl_tar = t_entry(b".PKGINFO", b"0", pk) + ctl_extra + (b"\0" * 1024 if ctl_eoa else b"")
    ctl_member = gz(ctl_tar)
    sig = rsa_sign(n, d, "sha256", ctl_member)
    sig_tar = t_entry((sign_name or ".SIGN.RSA256.selftest.rsa.pub").encode(), b"0", sig)
    sig_member = gz(sig_tar + (b"\0" * 1024 if sig_eoa else b""))
    return sig_member + ctl_member + data_member + trailing


def selftest_mutations():
    import tempfile

    failures = []
    key = test_rsa_key()
    body = b"#!/bin/sh\necho hi\n"
    csum = [(b"APK-TOOLS.checksum.SHA1", hashlib.sha1(body).hexdigest().encode())]
    d = base_data()
    cases = [
        ("clean", {}, None),
        ("ctl eoa", {"ctl_eoa": True}, "ctl-eoa"),
        ("sig eoa", {"sig_eoa": True}, "sig-eoa"),
        ("data split", {"data_split": True}, "data-members"),
        ("trailing", {"trailing": b"junk"}, "trailing-bytes"),
        ("unknown key", {"sign_name": ".SIGN.RSA256.other.rsa.pub"}, "sig-untrusted"),
        ("go-apk key name", {"sign_name": ".SIGN.RSA256.selftest.pem"}, "sig-name-goapk"),
        ("no datahash", {"pkginfo_override": "pkgname = a\npkgver = 1-r0\narch = x\nsize = 1\n"}, "pkginfo-no-datahash"),
        ("bad version", {"pkginfo_extra": "pkgver = 1.0\n"}, "pkginfo-version"),
        ("two triggers", {"pkginfo_extra": "triggers = /a\ntriggers = /b\n",
                          "ctl_extra": t_entry(b".trigger", b"0", b"#!/bin/sh\n", 0o755)}, "pkginfo-triggers"),
        ("hash in url", {"pkginfo_extra": "url = https://x/#frag\n"}, "warn:pkginfo-goapk-comment"),
        ("semicolon in origin", {"pkginfo_extra": "origin = a;b\n"}, "pkginfo-goapk-comment"),
        ("no separator", {"pkginfo_extra": "url=https://x\n"}, "pkginfo-line"),
        ("dep with tag", {"pkginfo_extra": "depend = foo@edge\n"}, "dep-tag"),
        ("dep fuzzy op", {"pkginfo_extra": "depend = foo>~1.0\n"}, "dep-op"),
        ("dep bad version", {"pkginfo_extra": "depend = foo>=1.0~x\n"}, "dep-version"),
        ("size zero", {"size": 0}, "pkginfo-size-zero"),
        ("repeated key", {"pkginfo_extra": "pkgdesc = again\n"}, "pkginfo-repeat"),
        ("script mode", {"ctl_extra": t_entry(b".post-install", b"0", b"#!/bin/sh\n", 0o644)}, "ctl-script-mode"),
        (".INSTALL", {"ctl_extra": t_entry(b".INSTALL", b"0", b"#!/bin/sh\n", 0o755)}, "ctl-install"),
        ("no parent", {"data_entries": [d[0]] + d[2:]}, "data-no-dirent"),
        ("no ancestor", {"data_entries": d[1:]}, "data-no-ancestor"),
        ("no file csum", {"data_entries": d[:2] + [t_entry(b"usr/bin/hello", b"0", body, 0o755)] + d[3:]},
         "data-no-file-csum"),
        ("bad file csum", {"data_entries": d[:2] + [t_entry(b"usr/bin/hello", b"0", body + b"x", 0o755, pax=csum)]},
         "data-bad-file-csum"),
        ("bad symlink csum", {"data_entries": d[:3] + [t_entry(b"usr/bin/l", b"2", mode=0o777, link=b"x", pax=csum)]},
         "data-bad-symlink-csum"),
        ("hardlink first", {"data_entries": d[:2] + [d[4], d[2]]}, "data-hardlink"),
        ("dot slash", {"data_entries": [t_entry(b"./usr/", b"5", mode=0o755)]}, "data-dot-slash"),
        ("dotfile", {"data_entries": [t_file(b".hidden", b"x")]}, "data-dotfile"),
        ("device", {"data_entries": d + [t_entry(b"usr/null", b"3", mode=0o666)]}, "data-device"),
        ("typeflag 7", {"data_entries": d + [t_entry(b"usr/seven", b"7")]}, "tar-typeflag"),
        ("global pax", {"data_entries": [t_entry(b"pax_global", b"g", b"10 a=bcde\n")] + d}, "tar-global-pax"),
        ("bad chksum", {"data_entries": [t_entry(b"usr/", b"5", raw={148: b"0000001\0"})] + d[1:]}, "tar-chksum"),
        ("base-256", {"data_entries": [t_entry(b"usr/", b"5", raw={108: b"\x80\0\0\0\0\0\0\x01"})] + d[1:]},
         "tar-base256"),
        ("octal junk", {"data_entries": [t_entry(b"usr/", b"5", raw={100: b"0755x\0\0\0"})] + d[1:]}, "tar-octal"),
        ("no magic", {"data_entries": [t_entry(b"usr/", b"5", raw={257: b"gnutar\0\0"})] + d[1:]}, "tar-magic"),
        ("pax length", {"data_entries": [t_header(b"PaxHeaders/x", b"x", 11) + b"99 path=ab\n".ljust(512, b"\0")] + d},
         "pax-record"),
        ("long path", {"data_entries": d + [t_entry(b"usr/long", b"0", body, pax=csum + [(b"path", b"usr/" + b"a" * 4090)])]},
         "data-path-length"),
        ("long name ok", {"data_entries": d + [t_entry(b"usr/long", b"0", body, pax=csum + [(b"path", b"usr/" + b"a" * 300)])]},
         None),
        # Exercise inflate output limits and several raw reads per member.
        ("big zeros ok", {"data_entries": d + [t_file(b"usr/zeros", b"\0" * (3 * OUT_CHUNK + 7))]}, None),
        ("big noise ok", {"data_entries": d + [t_file(b"usr/noise", _noise(3 * READ_CHUNK + 11))]}, None),
        ("ustar prefix ok", {"data_entries": d + [t_entry(b"hello2", b"0", body, pax=csum, prefix=b"usr/bin")]}, None),
        ("empty name", {"data_entries": d + [t_entry(b"", b"5", prefix=b"usr/share")]}, "tar-empty-name"),
        ("md5", {"data_entries": d[:2] + [t_entry(b"usr/bin/hello", b"0", body, 0o755,
                                                   pax=csum + [(b"APK-TOOLS.checksum.MD5", b"0" * 32)])]}, "data-md5"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        keys_dir = os.path.join(tmp, "keys")
        os.mkdir(keys_dir)
        with open(os.path.join(keys_dir, "selftest.rsa.pub"), "w") as f:
            f.write(spki_pem(key[0], key[1]))
        with open(os.path.join(keys_dir, "selftest.pem"), "w") as f:
            f.write(spki_pem(key[0], key[1]))
        keys = Keys(keys_dir)
        for label, kw, rule in cases:
            path = os.path.join(tmp, "t.apk")
            with open(path, "wb") as f:
                f.write(build_package(key, **kw))
            rep, _ = check_package(path, keys)
            fired = set(rep.counts)
            if rule is not None and rule.startswith("warn:"):
                if fired or not any(f"[{rule[5:]}]" in w for w in rep.warnings):
                    failures.append(f"mutation {label!r}: expected only warning {rule[5:]}, got"
                                    f" {rep.finish() + rep.warnings}")
            elif rule is None and fired:
                failures.append(f"mutation {label!r}: expected clean, got {rep.finish()}")
            elif rule is not None and rule not in fired:
                failures.append(f"mutation {label!r}: rule {rule} did not fire (got {sorted(fired)})")
        failures += selftest_index(tmp, key, keys)
        failures += selftest_garbage(tmp, build_package(key), keys)
    return failures


def selftest_garbage(tmp, clean, keys):
    """Flipped, cut and padded copies of a clean package: every one must
    be judged (no traceback), and every truncated one rejected."""
    import random

    failures = []
    rnd = random.Random(5)
    path = os.path.join(tmp, "garbage.apk")
    for i in range(150):
        b = bytearray(clean)
        op = i % 3
        if op == 0:
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        elif op == 1:
            del b[rnd.randrange(len(b)) :]
        else:
            b += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
        with open(path, "wb") as f:
            f.write(b)
        try:
            rep, _ = check_package(path, keys)
        except Exception as e:  # noqa: BLE001 - a crash is what we look for
            failures.append(f"garbage case {i}: {type(e).__name__}: {e}")
            continue
        if op != 0 and rep.ok():
            failures.append(f"garbage case {i}: damaged package accepted")
    return failures


def build_index(key, text, extra_entries=b"", sign=True, desc=b"test repo"):
    n, _, d = key
    tar = t_entry(b"DESCRIPTION", b"0", desc) + t_entry(b"APKINDEX", b"0", text.encode()) + extra_entries
    member = gz(tar + b"\0" * 1024)
    if not sign:
        return member
    sig = rsa_sign(n, d, "sha256", member)
    return gz(t_entry(b".SIGN.RSA256.selftest.rsa.pub", b"0", sig)) + member


def selftest_index(tmp, key, keys):
    failures = []
    rec = "C:Q1nO7CmxdGHJEmoneupOUkkhqAtxk=\nP:{p}\nV:{v}\nA:x86_64\nS:1\nI:1\nT:t\nU:u\nL:MIT\n\n"
    good = rec.format(p="a", v="1.0-r0") + rec.format(p="a", v="1.0.1-r0") + rec.format(p="b", v="1-r0")
    cases = [
        ("clean", {"text": good}, None),
        ("unsigned", {"text": good, "sign": False}, "sig-missing"),
        ("order", {"text": rec.format(p="a", v="1.1-r0") + rec.format(p="a", v="1.01-r0")}, "apkindex-order"),
        ("no final blank", {"text": good[:-1]}, "apkindex-end"),
        ("colon", {"text": "C:Q1nO7CmxdGHJEmoneupOUkkhqAtxk=\nP :a\n\n"}, "apkindex-line"),
        ("letter", {"text": good + "C:Q1nO7CmxdGHJEmoneupOUkkhqAtxk=\nP:c\nV:1-r0\nX:y\n\n"}, "apkindex-letter"),
        ("C", {"text": "C:X1abc\nP:a\nV:1-r0\n\n"}, "apkindex-C"),
        ("extra entry", {"text": good, "extra_entries": t_entry(b"extra", b"0", b"x")}, "index-entry"),
        ("description", {"text": good, "desc": b"d" * 161}, "index-description"),
    ]
    for label, kw, rule in cases:
        path = os.path.join(tmp, "APKINDEX.tar.gz")
        with open(path, "wb") as f:
            f.write(build_index(key, **kw))
        rep = check_index(path, keys)[0]
        fired = set(rep.counts)
        if rule is None and fired:
            failures.append(f"index mutation {label!r}: expected clean, got {rep.finish()}")
        elif rule is not None and rule not in fired:
            failures.append(f"index mutation {label!r}: rule {rule} did not fire (got {sorted(fired)})")
    return failures


# ----------------------------------------------------------------------------


def usage():
    sys.stderr.write(__doc__.split("Usage:", 1)[1].split("Exit status", 1)[0])
    return 2


def main(argv):
    if not argv:
        return usage()
    cmd, args = argv[0], argv[1:]
    if cmd == "selftest":
        return selftest()
    if cmd not in ("package", "index"):
        return usage()
    keys_dir = None
    packages_dir = None
    allow_unsigned = False
    files = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--keys-dir", "--packages-dir") and i + 1 < len(args):
            if a == "--keys-dir":
                keys_dir = args[i + 1]
            else:
                packages_dir = args[i + 1]
            i += 2
            continue
        if a == "--allow-unsigned" and cmd == "package":
            allow_unsigned = True
        elif a.startswith("--"):
            return usage()
        else:
            files.append(a)
        i += 1
    if keys_dir is None or not files or (packages_dir and cmd != "index"):
        return usage()
    if not os.path.isdir(keys_dir):
        sys.stderr.write(f"apkcheck: keys dir {keys_dir} is not a directory\n")
        return 2
    keys = Keys(keys_dir)
    status = 0
    for path in files:
        if cmd == "package":
            reports = [check_package(path, keys, allow_unsigned)[0]]
        else:
            reports = check_index(path, keys, packages_dir)
        for rep in reports:
            for line in rep.warnings:
                print(line)
            if rep.ok():
                note = f" ({len(rep.warnings)} warnings)" if rep.warnings else ""
                print(f"{rep.name}: OK{note}")
            else:
                status = 1
                for line in rep.finish():
                    print(line)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
