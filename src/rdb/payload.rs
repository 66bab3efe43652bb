//! DUMP/RESTORE payloads: `<type><value><2-byte LE RDB version><8-byte LE CRC-64>`, the value
//! encoded exactly as in an RDB file. Read with the same value decoder as files.

use super::crc::Crc64;
use super::error::{Error, ErrorKind, Result};
use super::input::{Input, SliceInput};
use super::problem::{Problem, ProblemKind, Severity};
use super::types::{Format, ObjectType};
use super::value::{ValueReader, is_empty_key};
use super::visit::Visitor;

/// Version and CRC footer.
const FOOTER: usize = 10;

/// What a payload holds, and what was noticed reading it.
#[derive(Debug, Clone)]
pub struct Payload {
    pub format: Format,
    pub ty: ObjectType,
    pub elements: u64,
    /// Whether the CRC-64 footer matches (RESTORE refuses the payload otherwise).
    pub crc_ok: bool,
    /// Non-fatal findings, and a CRC mismatch (which RESTORE refuses, but the body can still be
    /// checked and reported).
    pub problems: Vec<Problem>,
}

/// Builds a payload from a value's RDB bytes (`type byte + value`), stamping `version`.
pub fn build(type_and_value: &[u8], version: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(type_and_value.len() + FOOTER);
    out.extend_from_slice(type_and_value);
    out.extend_from_slice(&version.to_le_bytes());
    let crc = Crc64::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads and checks a whole payload. A wrong CRC is a [`Severity::Error`] problem; anything that
/// stops decoding is an `Err`. Empty collections are errors here: RESTORE refuses them.
pub fn read(data: &[u8], v: &mut dyn Visitor) -> Result<Payload> {
    if data.len() < FOOTER + 1 {
        return Err(Error::new(
            0,
            ErrorKind::UnexpectedEof {
                need: (FOOTER + 1 - data.len()) as u64,
                what: "DUMP payload",
            },
        ));
    }
    let body_end = data.len() - FOOTER;
    let version = u16::from_le_bytes([data[body_end], data[body_end + 1]]);
    let crc_at = data.len() - 8;
    let stored = u64::from_le_bytes(data[crc_at..].try_into().unwrap_or_default());
    let computed = Crc64::checksum(&data[..crc_at]);
    let mut problems = Vec::new();
    if stored != computed {
        problems.push(Problem {
            severity: Severity::Error,
            offset: crc_at as u64,
            kind: ProblemKind::Error(ErrorKind::Crc { stored, computed }),
            context: Default::default(),
        });
    }
    let format = Format::from_payload_version(version);
    if !format.is_supported() {
        return Err(Error::new(
            body_end as u64,
            ErrorKind::UnsupportedVersion(format!("payload version {version}")),
        ));
    }
    let ty = ObjectType::from_byte(format, data[0])
        .ok_or_else(|| Error::new(0, ErrorKind::UnknownType(data[0])))?;
    let mut inp = SliceInput::new(&data[..body_end]);
    inp.skip(1, "type")?;
    let mut values = ValueReader::new();
    let elements = values.read(&mut inp, ty, v)?;
    if inp.pos() != body_end as u64 {
        let left = body_end as u64 - inp.pos();
        return Err(Error::new(inp.pos(), ErrorKind::AfterValue { bytes: left }));
    }
    if is_empty_key(ty, elements) {
        problems.push(Problem {
            severity: Severity::Error,
            offset: 0,
            kind: ProblemKind::EmptyPayload,
            context: Default::default(),
        });
    }
    for note in values.notes() {
        problems.push(Problem {
            severity: note.severity,
            offset: note.offset,
            kind: note.kind.clone(),
            context: Default::default(),
        });
    }
    Ok(Payload {
        format,
        ty,
        elements,
        crc_ok: stored == computed,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::visit::Item;

    #[test]
    fn documented_string_payload() {
        let p = [
            0x00, 0x03, b'b', b'a', b'r', 0x0a, 0x00, 0xe6, 0xbe, 0x49, 0x60, 0xee, 0x66, 0xfd,
            0x17,
        ];
        let mut seen = Vec::new();
        let got = read(&p, &mut |i: Item<'_>| seen.push(format!("{i:?}"))).unwrap();
        assert_eq!(got.format.version, 10);
        assert!(got.problems.is_empty());
        assert_eq!(seen, vec!["Str(Bytes([98, 97, 114]))"]);
        assert_eq!(build(&p[..5], 10), p);
    }

    #[test]
    fn wrong_crc_and_trailing_bytes() {
        let mut p = build(&[0x00, 0x03, b'b', b'a', b'r'], 10);
        p[7] ^= 1;
        let got = read(&p, &mut crate::rdb::Skip).unwrap();
        assert_eq!(got.problems[0].severity, Severity::Error);
        let extra = build(&[0x00, 0x01, b'b', b'a', b'r'], 10);
        assert!(read(&extra, &mut crate::rdb::Skip).is_err());
    }
}
