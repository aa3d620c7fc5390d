//! CPU architecture names in every spelling a build meets: apk's (`x86_64`,
//! `armv7`), Go/OCI's (`amd64`, `arm/v7`) and the GNU and Rust target triplets.
//!
//! The strings returned here feed `${{build.arch}}`, `${{build.goarch}}`,
//! `${{host.triplet.*}}` and `${{cross.triplet.*}}`, so they are the ones melange
//! (through apko's architecture type) produces, quirks included:
//! - `build.goarch` is the OCI platform spelling, so 32-bit ARM gives `arm/v6` and
//!   `arm/v7` rather than Go's `arm`.
//! - 32-bit ARM triplets carry an `eabihf` ABI suffix (`armv7l-unknown-linux-gnueabihf`),
//!   and the Rust one for armhf is melange's `armv6-unknown-linux-gnueabihf`.
//! - x86's GNU triplet is `i486-pc-linux-*`, its Rust triplet `i686-unknown-linux-*`.
//! - melange has no mapping for loongarch64; we use Go's own name, `loong64`.

use std::fmt;

/// A target architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Aarch64,
    /// 32-bit ARMv7 with hardware float (OCI `arm/v7`).
    Armv7,
    /// 32-bit ARMv6 with hardware float (OCI `arm/v6`).
    Armhf,
    /// 32-bit x86 (OCI `386`).
    X86,
    Ppc64le,
    S390x,
    Riscv64,
    Loongarch64,
}

/// The C library a triplet targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Libc {
    Glibc,
    Musl,
}

impl Libc {
    fn abi(self) -> &'static str {
        match self {
            Libc::Glibc => "gnu",
            Libc::Musl => "musl",
        }
    }
}

impl Arch {
    /// Every architecture, in a stable order.
    pub const ALL: [Arch; 9] = [
        Arch::X86_64,
        Arch::Aarch64,
        Arch::Armv7,
        Arch::Armhf,
        Arch::X86,
        Arch::Ppc64le,
        Arch::S390x,
        Arch::Riscv64,
        Arch::Loongarch64,
    ];

    /// Parses an apk name or a Go/OCI spelling (an optional `linux/` platform
    /// prefix is accepted). Unknown names give `None`.
    pub fn parse(s: &str) -> Option<Arch> {
        let s = s.strip_prefix("linux/").unwrap_or(s);
        Some(match s {
            "x86_64" | "amd64" => Arch::X86_64,
            "aarch64" | "arm64" | "arm64/v8" => Arch::Aarch64,
            "armv7" | "arm/v7" | "armv7l" => Arch::Armv7,
            "armhf" | "arm/v6" | "armv6" => Arch::Armhf,
            "x86" | "386" | "i386" | "i486" | "i586" | "i686" => Arch::X86,
            "ppc64le" | "powerpc64le" => Arch::Ppc64le,
            "s390x" => Arch::S390x,
            "riscv64" => Arch::Riscv64,
            "loongarch64" | "loong64" => Arch::Loongarch64,
            _ => return None,
        })
    }

    /// The apk name (`${{build.arch}}`, the `<repo>/<arch>/` directory).
    pub fn apk(&self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
            Arch::Armhf => "armhf",
            Arch::X86 => "x86",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
            Arch::Riscv64 => "riscv64",
            Arch::Loongarch64 => "loongarch64",
        }
    }

    /// The Go/OCI spelling (`${{build.goarch}}`).
    pub fn go(&self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::Armv7 => "arm/v7",
            Arch::Armhf => "arm/v6",
            Arch::X86 => "386",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
            Arch::Riscv64 => "riscv64",
            Arch::Loongarch64 => "loong64",
        }
    }

    /// GNU `cpu-vendor`, Rust `cpu-vendor` and the ABI suffix after the libc name.
    fn triplet_parts(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Arch::X86_64 => ("x86_64-pc", "x86_64-unknown", ""),
            Arch::X86 => ("i486-pc", "i686-unknown", ""),
            Arch::Aarch64 => ("aarch64-unknown", "aarch64-unknown", ""),
            Arch::Armhf => ("arm-unknown", "armv6-unknown", "eabihf"),
            Arch::Armv7 => ("armv7l-unknown", "armv7-unknown", "eabihf"),
            Arch::Ppc64le => ("powerpc64le-unknown", "powerpc64le-unknown", ""),
            Arch::S390x => ("s390x-ibm", "s390x-unknown", ""),
            Arch::Riscv64 => ("riscv64-unknown", "riscv64-unknown", ""),
            Arch::Loongarch64 => ("loongarch64-unknown", "loongarch64-unknown", ""),
        }
    }

    /// The GNU triplet (`${{host.triplet.gnu}}`, `${{cross.triplet.gnu.*}}`).
    pub fn gnu_triplet(&self, libc: Libc) -> String {
        let (gnu, _, suffix) = self.triplet_parts();
        format!("{gnu}-linux-{}{suffix}", libc.abi())
    }

    /// The Rust target triplet (`${{host.triplet.rust}}`, `${{cross.triplet.rust.*}}`).
    pub fn rust_triplet(&self, libc: Libc) -> String {
        let (_, rust, suffix) = self.triplet_parts();
        format!("{rust}-linux-{}{suffix}", libc.abi())
    }

    /// The architecture this program was compiled for, if it is one we build for.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            "x86" => Some(Arch::X86),
            // Rust has one `arm` for v6 and v7; hard-float v7 is what distributions ship.
            "arm" => Some(Arch::Armv7),
            "powerpc64" if cfg!(target_endian = "little") => Some(Arch::Ppc64le),
            "s390x" => Some(Arch::S390x),
            "riscv64" => Some(Arch::Riscv64),
            "loongarch64" => Some(Arch::Loongarch64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.apk())
    }
}

/// Whether a `target-architecture` list admits `arch`: an empty list or
/// exactly `[all]` admits every arch (melange's rule; an `all` beside other
/// names does not widen the list). Otherwise the list must name `arch` in
/// any spelling `Arch::parse` takes: melange itself compares apk names only,
/// but recipes written with the Go/OCI names (`amd64`, `arm64`) mean the
/// same machines, and pkgbuild accepts both spellings everywhere.
pub fn matches_target_architecture(list: &[String], arch: Arch) -> bool {
    match list {
        [] => true,
        [only] if only == "all" => true,
        _ => list.iter().any(|s| Arch::parse(s) == Some(arch)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apk_and_go_names_round_trip() {
        for a in Arch::ALL {
            assert_eq!(Arch::parse(a.apk()), Some(a), "{a}");
            assert_eq!(Arch::parse(a.go()), Some(a), "{a}");
            assert_eq!(Arch::parse(&format!("linux/{}", a.go())), Some(a));
        }
    }

    #[test]
    fn parse_spellings() {
        assert_eq!(Arch::parse("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::parse("386"), Some(Arch::X86));
        assert_eq!(Arch::parse("i686"), Some(Arch::X86));
        assert_eq!(Arch::parse("arm/v7"), Some(Arch::Armv7));
        assert_eq!(Arch::parse("arm/v6"), Some(Arch::Armhf));
        assert_eq!(Arch::parse("linux/arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::parse("arm"), None);
        assert_eq!(Arch::parse("X86_64"), None);
        assert_eq!(Arch::parse(""), None);
        assert_eq!(Arch::parse("all"), None);
    }

    #[test]
    fn melange_values_for_x86_64() {
        let a = Arch::X86_64;
        assert_eq!(a.apk(), "x86_64");
        assert_eq!(a.go(), "amd64");
        assert_eq!(a.gnu_triplet(Libc::Glibc), "x86_64-pc-linux-gnu");
        assert_eq!(a.gnu_triplet(Libc::Musl), "x86_64-pc-linux-musl");
        assert_eq!(a.rust_triplet(Libc::Glibc), "x86_64-unknown-linux-gnu");
        assert_eq!(a.rust_triplet(Libc::Musl), "x86_64-unknown-linux-musl");
    }

    #[test]
    fn melange_values_for_other_arches() {
        assert_eq!(
            Arch::Aarch64.gnu_triplet(Libc::Glibc),
            "aarch64-unknown-linux-gnu"
        );
        assert_eq!(Arch::Aarch64.go(), "arm64");
        assert_eq!(Arch::X86.gnu_triplet(Libc::Glibc), "i486-pc-linux-gnu");
        assert_eq!(
            Arch::X86.rust_triplet(Libc::Musl),
            "i686-unknown-linux-musl"
        );
        assert_eq!(
            Arch::Armv7.gnu_triplet(Libc::Glibc),
            "armv7l-unknown-linux-gnueabihf"
        );
        assert_eq!(
            Arch::Armv7.rust_triplet(Libc::Musl),
            "armv7-unknown-linux-musleabihf"
        );
        assert_eq!(
            Arch::Armhf.gnu_triplet(Libc::Musl),
            "arm-unknown-linux-musleabihf"
        );
        assert_eq!(Arch::Armhf.go(), "arm/v6");
        assert_eq!(Arch::S390x.gnu_triplet(Libc::Glibc), "s390x-ibm-linux-gnu");
        assert_eq!(
            Arch::S390x.rust_triplet(Libc::Glibc),
            "s390x-unknown-linux-gnu"
        );
        assert_eq!(
            Arch::Ppc64le.rust_triplet(Libc::Glibc),
            "powerpc64le-unknown-linux-gnu"
        );
        assert_eq!(
            Arch::Riscv64.gnu_triplet(Libc::Glibc),
            "riscv64-unknown-linux-gnu"
        );
    }

    #[test]
    fn host_is_known_on_supported_machines() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(Arch::host(), Some(Arch::X86_64));
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(Arch::host(), Some(Arch::Aarch64));
        }
    }

    #[test]
    fn target_architecture_lists() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches_target_architecture(&l(&["all"]), Arch::S390x));
        assert!(matches_target_architecture(&l(&[]), Arch::X86_64));
        assert!(matches_target_architecture(&l(&["x86_64"]), Arch::X86_64));
        assert!(matches_target_architecture(
            &l(&["aarch64", "x86_64"]),
            Arch::X86_64
        ));
        assert!(matches_target_architecture(&l(&["armv7"]), Arch::Armv7));
        // Go/OCI spellings name the same machines...
        assert!(matches_target_architecture(&l(&["amd64"]), Arch::X86_64));
        assert!(matches_target_architecture(&l(&["arm64"]), Arch::Aarch64));
        assert!(!matches_target_architecture(&l(&["arm64"]), Arch::X86_64));
        // ...and `all` only means "every arch" on its own.
        assert!(!matches_target_architecture(
            &l(&["aarch64", "all"]),
            Arch::X86_64
        ));
        assert!(!matches_target_architecture(&l(&["aarch64"]), Arch::X86_64));
        assert!(!matches_target_architecture(&l(&["bogus"]), Arch::X86_64));
    }
}
