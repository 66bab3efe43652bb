//! Key selection shared by every command that reads keys (`--db`, `--key`, `--key-regex`,
//! `--type`), so the flags mean the same everywhere.

use crate::rdb::Kind;

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub dbs: Vec<u64>,
    pub globs: Vec<Vec<u8>>,
    pub regex: Option<regex::bytes::Regex>,
    pub kinds: Vec<Kind>,
}

impl Filter {
    /// Whether every key is selected (no filter given).
    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty()
            && self.globs.is_empty()
            && self.regex.is_none()
            && self.kinds.is_empty()
    }

    /// Whether function libraries go along: always without a filter, else when asked for
    /// (`--functions`): they belong to no key, so a key filter would keep or drop them all.
    pub fn functions(&self, asked: bool) -> bool {
        asked || self.is_empty()
    }

    pub fn db(&self, db: u64) -> bool {
        self.dbs.is_empty() || self.dbs.contains(&db)
    }

    /// Whether a key of this db, name and type is selected.
    pub fn key(&self, db: u64, key: &[u8], kind: Kind) -> bool {
        self.db(db) && (self.kinds.is_empty() || self.kinds.contains(&kind)) && self.key_name(key)
    }

    /// Whether a key's name matches the globs and the regex (the other selections aside).
    pub fn key_name(&self, key: &[u8]) -> bool {
        (self.globs.is_empty() || self.globs.iter().any(|g| glob_match(g, key)))
            && self.regex.as_ref().is_none_or(|r| r.is_match(key))
    }
}

/// Redis's glob (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern after it, text position it matched up to).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == text[t] => {
                    p += 2;
                    t += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open] == b'['`; returns (matched, index
/// after the class), or None when the class is not closed.
fn class(pattern: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        match *pattern.get(i)? {
            b']' => return Some((matched != negate, i + 1)),
            b'\\' => {
                i += 1;
                matched |= *pattern.get(i)? == c;
                i += 1;
            }
            lo if pattern.get(i + 1) == Some(&b'-')
                && pattern.get(i + 2).is_some_and(|&h| h != b']') =>
            {
                let hi = pattern[i + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                matched |= (lo..=hi).contains(&c);
                i += 3;
            }
            x => {
                matched |= x == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn redis_glob_semantics() {
        let m = |p: &str, t: &str| glob_match(p.as_bytes(), t.as_bytes());
        assert!(m("*", ""));
        assert!(m("user:*", "user:42"));
        assert!(!m("user:*", "session:1"));
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("*:*:profile", "user:1:profile") && !m("*:*:profile", "user:1:profiles"));
        assert!(m("a*b*c", "axxbyyc") && !m("a*b*c", "axxbyy"));
    }
}
