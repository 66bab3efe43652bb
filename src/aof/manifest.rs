//! The manifest of a multi-part AOF (`appendonlydir/appendonly.aof.manifest`, Redis 7.0+ and
//! Valkey): which files hold the log, their sequence numbers and types, read by the rules the
//! server loads it by, and written back in the server's own form.
//!
//! ```text
//! file appendonly.aof.1.base.rdb seq 1 type b
//! file appendonly.aof.1.incr.aof seq 1 type i
//! ```

use std::fmt;

/// What a file of the manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The state the log starts from: an RDB (`.base.rdb`) or a rewritten AOF (`.base.aof`).
    Base,
    /// A former base or incr awaiting deletion; never loaded.
    History,
    /// Commands appended since the base, loaded in manifest order.
    Incr,
}

impl Role {
    fn letter(self) -> char {
        match self {
            Role::Base => 'b',
            Role::History => 'h',
            Role::Incr => 'i',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Base => "base",
            Role::History => "history",
            Role::Incr => "incr",
        }
    }
}

/// One `file … seq … type …` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A bare file name, in the manifest's directory.
    pub name: String,
    pub seq: u64,
    pub role: Role,
    /// The line of the manifest it is on (1-based); 0 for an entry not read from a manifest.
    pub line: usize,
}

/// The entries of a manifest, in the order it lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

/// Why a manifest cannot be used, with the line it is on (0: the manifest as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct ManifestError {
    pub line: usize,
    pub what: String,
}

/// The server refuses longer lines.
const MAX_LINE: usize = 1024;

impl Manifest {
    /// Reads a manifest as the server does: `#` lines are comments, every line ends with a
    /// newline and is at most 1024 bytes, an even number of at least six shell-quoted tokens,
    /// `file` a bare name, `seq` and `type` present, at most one base, incr sequence numbers
    /// strictly increasing.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut rest = text;
        let mut line_no = 0;
        while !rest.is_empty() {
            line_no += 1;
            let err = |what: String| ManifestError {
                line: line_no,
                what,
            };
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                return Err(err(
                    "the last line has no newline (a truncated manifest)".into()
                ));
            };
            let line = &rest[..nl];
            rest = &rest[nl + 1..];
            if line.len() + 1 > MAX_LINE {
                return Err(err(format!("longer than {MAX_LINE} bytes")));
            }
            if line.first() == Some(&b'#') {
                continue;
            }
            let entry = parse_line(line).map_err(err)?;
            let entry = Entry {
                line: line_no,
                ..entry
            };
            match entry.role {
                Role::Base if entries.iter().any(|e| e.role == Role::Base) => {
                    return Err(err("a second base file".into()));
                }
                Role::Incr => {
                    let last = entries.iter().rev().find(|e| e.role == Role::Incr);
                    if let Some(last) = last.filter(|last| entry.seq <= last.seq) {
                        return Err(err(format!(
                            "incr sequence number {} after {} (line {}): they must increase",
                            entry.seq, last.seq, last.line
                        )));
                    }
                }
                _ => {}
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(ManifestError {
                line: 0,
                what: "names no file".into(),
            });
        }
        Ok(Manifest { entries })
    }

    /// The files the server loads, in its order: the base, then the incr files.
    pub fn loaded(&self) -> impl Iterator<Item = &Entry> {
        let base = self.entries.iter().filter(|e| e.role == Role::Base);
        base.chain(self.entries.iter().filter(|e| e.role == Role::Incr))
    }
}

/// The manifest as the server writes it: base, history, incr; names quoted where needed.
impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for role in [Role::Base, Role::History, Role::Incr] {
            for e in self.entries.iter().filter(|e| e.role == role) {
                writeln!(
                    f,
                    "file {} seq {} type {}",
                    quote(&e.name),
                    e.seq,
                    role.letter()
                )?;
            }
        }
        Ok(())
    }
}

fn parse_line(line: &[u8]) -> Result<Entry, String> {
    let tokens = split(line)?;
    if tokens.len() < 6 || tokens.len() % 2 != 0 {
        return Err(format!(
            "{} tokens; a file line has at least six, in pairs",
            tokens.len()
        ));
    }
    let (mut name, mut seq, mut role) = (None, None, None);
    for pair in tokens.chunks(2) {
        let value = &pair[1];
        match pair[0].as_slice() {
            b"file" => {
                let text = String::from_utf8(value.clone())
                    .map_err(|_| "a file name that is not UTF-8".to_string())?;
                if text.is_empty() || text.contains('/') {
                    return Err(format!("file {text:?} is not a bare file name"));
                }
                name = Some(text);
            }
            b"seq" => {
                let n = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
                seq = Some(n.ok_or_else(|| {
                    format!("seq {:?} is not a number", String::from_utf8_lossy(value))
                })?);
            }
            b"type" => {
                role = Some(match value.as_slice() {
                    b"b" => Role::Base,
                    b"h" => Role::History,
                    b"i" => Role::Incr,
                    other => {
                        return Err(format!(
                            "unknown file type {:?}",
                            String::from_utf8_lossy(other)
                        ));
                    }
                });
            }
            // Unknown pairs are allowed, for forward compatibility.
            _ => {}
        }
    }
    match (name, seq, role) {
        (Some(name), Some(seq), Some(role)) => Ok(Entry {
            name,
            seq,
            role,
            line: 0,
        }),
        (None, ..) => Err("no file name".into()),
        (_, None, _) => Err("no seq".into()),
        (.., None) => Err("no type".into()),
    }
}

/// Splits a line into tokens the way the server does: blanks separate, `"…"` with C escapes
/// (`\n`, `\\`, `\"`, `\xHH`, …) and `'…'` (only `\'` escaped) quote.
fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let unbalanced = || "unbalanced quotes".to_string();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(tokens);
        }
        let mut token = Vec::new();
        match line[i] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    let &b = line.get(i).ok_or_else(unbalanced)?;
                    i += 1;
                    match b {
                        b'\\' if quote == b'"' => {
                            let (byte, used) = unescape(&line[i..]).ok_or_else(unbalanced)?;
                            token.push(byte);
                            i += used;
                        }
                        b'\\' if quote == b'\'' && line.get(i) == Some(&b'\'') => {
                            token.push(b'\'');
                            i += 1;
                        }
                        b if b == quote => break,
                        b => token.push(b),
                    }
                }
                // A closing quote must be followed by a blank or the end of the line.
                if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                    return Err("a closing quote not followed by a space".into());
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    token.push(line[i]);
                    i += 1;
                }
            }
        }
        tokens.push(token);
    }
}

/// The byte a `\` escape in double quotes stands for, and how many bytes after the `\` it used.
fn unescape(rest: &[u8]) -> Option<(u8, usize)> {
    let hex = |b: u8| (b as char).to_digit(16);
    match *rest.first()? {
        b'x' => match (
            rest.get(1).and_then(|&b| hex(b)),
            rest.get(2).and_then(|&b| hex(b)),
        ) {
            (Some(h), Some(l)) => Some(((h * 16 + l) as u8, 3)),
            _ => Some((b'x', 1)),
        },
        b'n' => Some((b'\n', 1)),
        b'r' => Some((b'\r', 1)),
        b't' => Some((b'\t', 1)),
        b'b' => Some((8, 1)),
        b'a' => Some((7, 1)),
        other => Some((other, 1)),
    }
}

/// A name as the manifest writes it: bare when it needs no quoting, else double-quoted with
/// escapes.
fn quote(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\'));
    if plain {
        return name.to_string();
    }
    let mut out = String::from("\"");
    for b in name.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_redis_writes_and_writes_it_back() {
        let text = b"file appendonly.aof.2.base.rdb seq 2 type b\n\
                     file appendonly.aof.1.incr.aof seq 1 type h\n\
                     file appendonly.aof.2.incr.aof seq 2 type i\n\
                     file appendonly.aof.3.incr.aof seq 3 type i\n";
        let m = Manifest::parse(text).unwrap();
        let loaded: Vec<_> = m.loaded().map(|e| e.name.as_str()).collect();
        assert_eq!(
            loaded,
            [
                "appendonly.aof.2.base.rdb",
                "appendonly.aof.2.incr.aof",
                "appendonly.aof.3.incr.aof"
            ]
        );
        assert_eq!(m.to_string().as_bytes(), text);
        assert_eq!(m.entries[2].line, 3);
    }

    #[test]
    fn quoted_names_round_trip() {
        let text = b"file \"my aof\\x01.1.incr.aof\" seq 1 type i future yes\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.entries[0].name, "my aof\u{1}.1.incr.aof");
        assert_eq!(Manifest::parse(m.to_string().as_bytes()).unwrap(), m);
    }

    #[test]
    fn refuses_what_the_server_refuses() {
        let cases: [(&[u8], usize, &str); 8] = [
            (
                b"file a seq 1 type b\nfile b seq 2 type b\n",
                2,
                "second base",
            ),
            (
                b"file a seq 2 type i\nfile b seq 2 type i\n",
                2,
                "must increase",
            ),
            (b"file a seq 1 type x\n", 1, "unknown file type"),
            (b"file a seq 1\n", 1, "4 tokens"),
            (b"file a seq 1 type\n", 1, "5 tokens"),
            (b"file dir/a seq 1 type i\n", 1, "bare file name"),
            (b"file a seq 1 type i", 1, "no newline"),
            (b"# only a comment\n", 0, "names no file"),
        ];
        for (text, line, what) in cases {
            let e = Manifest::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.what.contains(what), "{e}");
        }
    }
}
