//! Words in messages: a count's noun in the singular or plural, and server URLs with their
//! credentials masked wherever they appear.

use std::borrow::Cow;

pub use crate::rdb::error::plural;

/// A count with thousands separators: 1,234,567.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count with thousands separators and its noun: `1 key`, `1,234 keys`.
pub fn count(n: u64, noun: &str) -> String {
    format!("{} {}", thousands(n), plural(n, noun))
}

/// `text` with the credentials of every URL in it masked: whatever lies between `scheme://`
/// and the last `@` before the next whitespace (user name and password, which may hold `@`,
/// `:`, `/`, `#` and `%` as typed), and `pass=` / `password=` query values (unix sockets).
/// A user name is kept when it is plain (letters, digits, `-._~`) and a `:` follows it.
pub fn mask_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = at + 3;
        out.push_str(&rest[..after]);
        let end = rest[after..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |e| after + e);
        let url = &rest[after..end];
        let host = match url.rfind('@') {
            Some(at) => {
                out.push_str(&masked_userinfo(&url[..at]));
                &url[at..]
            }
            None => url,
        };
        out.push_str(&masked_query(host));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn masked_userinfo(userinfo: &str) -> String {
    match userinfo.split_once(':') {
        Some((user, _))
            if user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)) =>
        {
            format!("{user}:***")
        }
        _ => "***".to_string(),
    }
}

/// `pass=` and `password=` values of a URL's query hidden.
fn masked_query(url: &str) -> Cow<'_, str> {
    let Some(q) = url.find('?') else {
        return Cow::Borrowed(url);
    };
    let mut out = url[..=q].to_string();
    for (i, pair) in url[q + 1..].split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if name == "pass" || name == "password" => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
    }
    Cow::Owned(out)
}

/// One server URL, fit to print: [`mask_credentials`] of it taken whole (a space in it, which
/// [`check_url`] refuses, does not end it).
pub fn mask_url(url: &str) -> String {
    mask_credentials(&url.replace(|c: char| c.is_whitespace() || c.is_control(), "%20"))
}

/// Refuses a server URL that the URL parser would read otherwise than typed, saying why: a
/// space or control character anywhere, or an `@` after the first `/`, `?` or `#` (a password
/// holding one of those, unencoded, would be cut there and the rest taken for the host, path
/// or fragment). `@` and `:` may stay as typed; `%` starts an escape where two hex digits
/// follow.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL cannot hold spaces or control characters: percent-encode them (%20)");
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[authority..].contains('@') {
        return Err(
            "'/', '?' and '#' in a user name or password must be percent-encoded \
             (%2F, %3F, %23; '%' itself as %25)",
        );
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS UTC` from unix seconds (days to civil date, proleptic Gregorian).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "db"), "db");
        assert_eq!(plural(0, "db"), "dbs");
        assert_eq!(plural(2, "key"), "keys");
        assert_eq!(plural(1, "entry"), "entry");
        assert_eq!(plural(3, "entry"), "entries");
        assert_eq!(plural(2, "byte"), "bytes");
        assert_eq!(plural(2, "topology refresh"), "topology refreshes");
    }

    /// Every password, as typed and percent-encoded, is masked and no piece of it shown.
    #[test]
    fn passwords_with_any_character_are_masked() {
        for password in [
            "p@ss",
            "p:ss",
            "p/ss",
            "p#ss",
            "p%ss",
            "p%41",
            "p@ss:w/rd#X%",
            "::@@",
        ] {
            let encoded: String = password
                .chars()
                .map(|c| match c {
                    '@' | ':' | '/' | '#' | '%' => format!("%{:02X}", c as u32),
                    c => c.to_string(),
                })
                .collect();
            for typed in [password, encoded.as_str()] {
                for (user, kept) in [("", ":***@"), ("bob", "bob:***@")] {
                    let url = format!("redis://{user}:{typed}@127.0.0.1:6379/2");
                    let want = format!("redis://{kept}127.0.0.1:6379/2");
                    assert_eq!(mask_credentials(&url), want, "{url}");
                    let msg = format!("rdbtool: {url}: Connection refused\n{url}");
                    assert_eq!(
                        mask_credentials(&msg),
                        format!("rdbtool: {want}: Connection refused\n{want}")
                    );
                }
            }
        }
    }

    #[test]
    fn other_urls_and_text_stay() {
        for same in [
            "redis://127.0.0.1:1/0",
            "rediss://h:6380/#insecure",
            "no URL here: a@b",
            "unix:///tmp/redis.sock?db=1",
            "",
        ] {
            assert_eq!(mask_credentials(same), same);
        }
        // No ':' or an odd user name: all of it is hidden.
        assert_eq!(mask_credentials("redis://secret@h"), "redis://***@h");
        assert_eq!(mask_credentials("redis://a/b:c@h"), "redis://***@h");
        assert_eq!(
            mask_credentials("unix:///s.sock?db=1&pass=x%40y&user=u"),
            "unix:///s.sock?db=1&pass=***&user=u"
        );
        assert_eq!(
            mask_credentials("valkeys://u:p@h:1 and redis://:q@g:2."),
            "valkeys://u:***@h:1 and redis://:***@g:2."
        );
    }

    #[test]
    fn urls_the_parser_would_misread_are_refused() {
        assert!(check_url("redis://:p@ss:w@h:1/0").is_ok());
        assert!(check_url("redis://:p%2Fss%23@h:1/0?protocol=resp3").is_ok());
        for bad in [
            "redis://:p@ss:w/rd#X@h:1",
            "redis://:p?x@h",
            "redis://:a#b@h",
            "redis://:a b@h",
            "redis://:a\tb@h",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
            let shown = mask_url(bad);
            assert!(shown.starts_with("redis://:***@h"), "{shown}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_date(4_102_444_800), "2100-01-01 00:00:00 UTC");
    }
}
