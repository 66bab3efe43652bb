//! The 9-byte signature: which format and version a file is in, or, when it is no RDB file,
//! whether it looks like an AOF.

use super::error::{ErrorKind, escape};
use super::types::{Flavor, Format};

/// Parses the 9-byte signature.
pub fn parse_magic(magic: &[u8; 9]) -> std::result::Result<Format, ErrorKind> {
    let digits = |d: &[u8]| -> Option<u16> {
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0u16, |n, &c| n * 10 + u16::from(c - b'0')))
    };
    let shown = || escape(magic);
    let format = if let Some(rest) = magic.strip_prefix(b"REDIS") {
        digits(rest).map(|version| Format {
            flavor: Flavor::Redis,
            version,
        })
    } else if let Some(rest) = magic.strip_prefix(b"VALKEY") {
        digits(rest).map(|version| Format {
            flavor: Flavor::Valkey,
            version,
        })
    } else {
        None
    };
    let format = format.ok_or_else(|| match aof_like(magic) {
        Some(what) => ErrorKind::Aof {
            start: shown(),
            what,
        },
        None => ErrorKind::BadMagic(shown()),
    })?;
    if !format.is_supported() {
        return Err(ErrorKind::UnsupportedVersion(shown()));
    }
    Ok(format)
}

/// What the start of a file that is not an RDB file looks like, if it looks like an AOF: RESP
/// commands (`*2\r\n$6\r\nSELECT...`), a timestamp annotation (`#TS:1700000000\r\n`), or
/// the manifest of an appendonlydir (`file appendonly.aof.1.base.rdb seq 1 type b`).
fn aof_like(start: &[u8]) -> Option<&'static str> {
    match start {
        [b'*', d, ..] if d.is_ascii_digit() => Some("an AOF (commands in RESP)"),
        [b'#', b'T', b'S', b':', ..] => Some("an AOF (a #TS: timestamp annotation)"),
        [b'f', b'i', b'l', b'e', b' ', ..] => {
            Some("the manifest of an appendonlydir (its *.base.rdb file is an RDB file)")
        }
        _ => None,
    }
}
