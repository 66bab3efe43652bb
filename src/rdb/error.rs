//! Errors found while reading a dump, and the context both they and problems carry.
//!
//! A fatal [`Error`] ends the record stream (nothing after a broken length can be trusted); a
//! [`Problem`](super::problem::Problem) is something the reader noticed but could read past.
//! Both carry the byte offset and what was being read, so one line can tell an operator where
//! to look.

use std::borrow::Cow;
use std::fmt;

/// What the reader was doing, in redis-check-rdb's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Header,
    ReadType,
    ReadExpire,
    ReadKey,
    ReadValue,
    ReadAux,
    ReadModuleAux,
    ReadFunction,
    ReadLen,
    Checksum,
    Trailer,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Header => "header",
            Phase::ReadType => "read-type",
            Phase::ReadExpire => "read-expire",
            Phase::ReadKey => "read-key",
            Phase::ReadValue => "read-value",
            Phase::ReadAux => "read-aux",
            Phase::ReadModuleAux => "read-module-aux",
            Phase::ReadFunction => "read-function",
            Phase::ReadLen => "read-len",
            Phase::Checksum => "checksum",
            Phase::Trailer => "trailer",
        }
    }
}

/// Where in the keyspace a problem sits. Filled in by the record reader; the value decoders
/// only know offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub phase: Option<Phase>,
    pub db: Option<u64>,
    pub key: Option<Vec<u8>>,
    pub type_name: Option<&'static str>,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(p) = self.phase {
            parts.push(format!("while {}", p.as_str()));
        }
        if let Some(db) = self.db {
            parts.push(format!("db {db}"));
        }
        if let Some(k) = &self.key {
            parts.push(format!("key \"{}\"", escape(k)));
        }
        if let Some(t) = self.type_name {
            parts.push(format!("type {t}"));
        }
        if parts.is_empty() {
            return Ok(());
        }
        write!(f, " ({})", parts.join(", "))
    }
}

/// `noun` as `n` of it reads: `1 key`, `2 keys`, `0 keys`, `1 entry`, `2 entries`.
pub fn plural(n: u64, noun: &str) -> Cow<'_, str> {
    if n == 1 {
        return Cow::Borrowed(noun);
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{stem}ies").into(),
        _ if ["s", "sh", "ch", "x"].iter().any(|e| noun.ends_with(e)) => format!("{noun}es").into(),
        _ => format!("{noun}s").into(),
    }
}

/// Escapes bytes for one terminal line, inside double quotes: text as is; `\\` and `"` after a
/// backslash; control characters and bytes that are not UTF-8 as `\xNN` (or `\n`, `\t`...), so
/// that different keys never look the same.
pub fn escape(bytes: &[u8]) -> String {
    use bstr::ByteSlice;
    bytes.escape_bytes().to_string().replace('"', "\\\"")
}

/// What went wrong, without where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    #[error("unexpected end of input: needed {need} more {} for {what}", plural(*.need, "byte"))]
    UnexpectedEof { need: u64, what: &'static str },
    /// The first bytes, escaped.
    #[error("not an RDB file: bad signature \"{0}\"")]
    BadMagic(String),
    /// An AOF (or its manifest) where an RDB file was expected.
    #[error(
        "not an RDB file: \"{start}\" looks like {what}; AOF files are not checked yet \
         (rdbtool replay loads an AOF into a server)"
    )]
    Aof { start: String, what: &'static str },
    #[error("unsupported RDB format version {0}")]
    UnsupportedVersion(String),
    #[error("invalid object type or opcode {0} (0x{0:02x})")]
    UnknownType(u8),
    #[error("{0}")]
    Unsupported(Cow<'static, str>),
    #[error("unknown length encoding 0x{0:02x}")]
    BadLength(u8),
    #[error("encoded string (0x{0:02x}) where a plain length was expected")]
    SpecialLength(u8),
    #[error("unknown string encoding type {0}")]
    BadStringEncoding(u8),
    #[error("invalid LZF compressed string: {0}")]
    Lzf(Cow<'static, str>),
    #[error("{what} length {len} exceeds the {left} {} left", plural(*.left, "byte"))]
    TooLong {
        what: &'static str,
        len: u64,
        left: u64,
    },
    #[error("CRC-64 mismatch: stored 0x{stored:016x}, computed 0x{computed:016x}")]
    Crc { stored: u64, computed: u64 },
    #[error("{encoding} integrity check failed: {detail}")]
    Encoding {
        encoding: &'static str,
        detail: Cow<'static, str>,
    },
    /// A member or field read twice in one collection: `what` it is and its bytes, escaped.
    #[error("duplicate {what} \"{name}\"")]
    Duplicate { what: &'static str, name: String },
    /// A big set, hash or zset holds a member twice, found after it was read (which one is
    /// known only by reading it again).
    #[error("a member or field occurs twice in this collection")]
    SpreadRepeat,
    #[error("zset with NaN score")]
    NanScore,
    /// A score stored as text that is not a number: `what` held it.
    #[error("{0} is not a number")]
    NotANumber(&'static str),
    #[error("invalid hash field expiry time")]
    BadFieldExpiry,
    #[error("unknown module value opcode {0}")]
    UnknownModuleOpcode(u64),
    #[error("module aux: bad when opcode")]
    BadModuleAuxWhen,
    /// Bytes between a DUMP payload's value and its footer.
    #[error("{bytes} {} after the value", plural(*.bytes, "byte"))]
    AfterValue { bytes: u64 },
    /// A reader asked for something its state does not hold (a value when no key was read,
    /// a record by offset before the first pass): a caller's mistake, said in these words.
    #[error("{0}")]
    OutOfOrder(&'static str),
    /// Writing what was read failed.
    #[error("{0}")]
    Output(String),
}

impl ErrorKind {
    /// A stable name of the kind, for machines (`verify --format json`): snake_case, never
    /// changed once released.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::UnexpectedEof { .. } => "unexpected_eof",
            ErrorKind::BadMagic(_) => "bad_magic",
            ErrorKind::Aof { .. } => "aof",
            ErrorKind::UnsupportedVersion(_) => "unsupported_version",
            ErrorKind::UnknownType(_) => "unknown_type",
            ErrorKind::Unsupported(_) => "unsupported",
            ErrorKind::BadLength(_) => "bad_length",
            ErrorKind::SpecialLength(_) => "special_length",
            ErrorKind::BadStringEncoding(_) => "bad_string_encoding",
            ErrorKind::Lzf(_) => "lzf",
            ErrorKind::TooLong { .. } => "too_long",
            ErrorKind::Crc { .. } => "crc_mismatch",
            ErrorKind::Encoding { .. } => "corrupt_encoding",
            ErrorKind::Duplicate { .. } => "duplicate_member",
            ErrorKind::SpreadRepeat => "duplicate_member",
            ErrorKind::NanScore => "nan_score",
            ErrorKind::NotANumber(_) => "score_not_a_number",
            ErrorKind::BadFieldExpiry => "bad_field_expiry",
            ErrorKind::UnknownModuleOpcode(_) => "unknown_module_opcode",
            ErrorKind::BadModuleAuxWhen => "bad_module_aux_when",
            ErrorKind::AfterValue { .. } => "bytes_after_value",
            ErrorKind::OutOfOrder(_) => "out_of_order",
            ErrorKind::Output(_) => "output",
        }
    }
}

/// A fatal error: the record stream cannot go on.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub offset: u64,
    pub kind: ErrorKind,
    pub context: Context,
}

impl Error {
    pub fn new(offset: u64, kind: ErrorKind) -> Self {
        Error {
            offset,
            kind,
            context: Context::default(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offset {} (0x{:x}): {}{}",
            self.offset, self.offset, self.kind, self.context
        )
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an encoding integrity error.
pub fn corrupt(encoding: &'static str, detail: impl Into<Cow<'static, str>>) -> ErrorKind {
    ErrorKind::Encoding {
        encoding,
        detail: detail.into(),
    }
}

/// An error inside an embedded blob, at a byte offset within it; the caller knows where the
/// blob sits and makes an [`Error`] of it.
#[derive(Debug, Clone, PartialEq)]
pub struct At(pub usize, pub ErrorKind);

pub type BlobResult<T> = std::result::Result<T, At>;

#[cfg(test)]
mod tests {
    use super::{ErrorKind, escape};

    #[test]
    fn named_kinds_say_what_the_one_invalid_kind_said() {
        let said = |k: ErrorKind| (k.to_string(), k.code());
        let dup = ErrorKind::Duplicate {
            what: "member",
            name: "a".into(),
        };
        assert_eq!(
            said(dup),
            ("duplicate member \"a\"".into(), "duplicate_member")
        );
        assert_eq!(said(ErrorKind::NanScore).0, "zset with NaN score");
        assert_eq!(
            said(ErrorKind::NotANumber("zset score")).0,
            "zset score is not a number"
        );
        assert_eq!(
            said(ErrorKind::AfterValue { bytes: 1 }).0,
            "1 byte after the value"
        );
        assert_eq!(
            said(ErrorKind::AfterValue { bytes: 2 }).0,
            "2 bytes after the value"
        );
        assert_eq!(
            said(ErrorKind::UnknownModuleOpcode(9)).0,
            "unknown module value opcode 9"
        );
        assert_eq!(
            said(ErrorKind::BadModuleAuxWhen).0,
            "module aux: bad when opcode"
        );
        assert_eq!(
            said(ErrorKind::BadFieldExpiry).0,
            "invalid hash field expiry time"
        );
    }

    #[test]
    fn escaped_keys_keep_every_byte_apart() {
        assert_eq!(escape(b"user:1"), "user:1");
        assert_eq!(escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(escape(b"a\xffb\xfe"), r"a\xFFb\xFE");
        assert_eq!(escape(b"q\"\\\n\t\x00"), r#"q\"\\\n\t\0"#);
        assert_ne!(escape(b"\xff"), escape(b"\xfe"));
    }
}
