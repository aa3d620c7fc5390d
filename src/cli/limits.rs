//! `--max-unpacked-size` and `--max-entries`: what reading one untrusted
//! package's data may cost `lint` and `verify` (see [`Limits`]).

use crate::apk::read::Limits;

#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Stop reading a package whose files add up to more than SIZE bytes
    /// unpacked (suffixes K, M, G, T: powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "8G", value_parser = parse_size)]
    pub max_unpacked_size: u64,
    /// Stop reading a package with more than N entries.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_entries)]
    pub max_entries: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_unpacked: self.max_unpacked_size,
            max_entries: self.max_entries,
        }
    }
}

/// `123`, `64K`, `512M`, `8G`, `1T` (powers of 1024) as bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{t:?}: expected a size such as 512M or 8G")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{t:?}: expected a size such as 512M or 8G"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{t:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert!(parse_size("8X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
