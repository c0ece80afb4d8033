//! JSON as text: records kept as the text Azure sent ([`RawJson`]), compacted to one line, and
//! fast writers for the JSON and time text every output emits. These run once or more per event,
//! so they append bytes instead of going through a serializer.

mod raw;

pub use raw::RawJson;

use std::borrow::Cow;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Appends `s` as a JSON string literal (RFC 8259 escaping), quotes included.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[last..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        last = i + 1;
    }
    out.extend_from_slice(&bytes[last..]);
    out.push(b'"');
}

/// A `Display` wrapper that writes a JSON string literal; for `format!`-built documents.
#[derive(Debug)]
pub struct JsonStr<'a>(pub &'a str);

impl std::fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = Vec::with_capacity(self.0.len() + 2);
        push_str(&mut buf, self.0);
        // push_str only inserts ASCII escapes between whole UTF-8 sequences of a valid &str.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| std::fmt::Error)?)
    }
}

/// The text a JSON string literal stands for, given what is between its quotes. The literal comes
/// from JSON the parser has already checked, so this only decodes; an escape that names no
/// character (a lone UTF-16 surrogate) is still refused, as the parser would refuse it in a String.
pub fn unescape(content: &str) -> Result<String, String> {
    decode(content, false)
}

/// [`unescape`] for text that is only shown: a lone surrogate becomes U+FFFD, and text without
/// escapes is borrowed.
pub fn unescape_lossy(content: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\\', content.as_bytes()).is_none() {
        return Cow::Borrowed(content);
    }
    // Lossy decoding only fails on an escape checked JSON cannot hold; show such text as written.
    decode(content, true).map_or(Cow::Borrowed(content), Cow::Owned)
}

fn decode(content: &str, lossy: bool) -> Result<String, String> {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        let escape = &rest[at + 1..];
        let (ch, used) = match escape.as_bytes().first() {
            Some(b'"') => ('"', 1),
            Some(b'\\') => ('\\', 1),
            Some(b'/') => ('/', 1),
            Some(b'b') => ('\u{8}', 1),
            Some(b'f') => ('\u{c}', 1),
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'u') => {
                let unit = hex_unit(escape, 1)?;
                match unit {
                    0xD800..=0xDBFF => {
                        let low = escape
                            .strip_prefix("u")
                            .and_then(|e| e.get(4..))
                            .filter(|e| e.starts_with("\\u"))
                            .map(|e| hex_unit(e, 2))
                            .transpose()?
                            .filter(|low| (0xDC00..=0xDFFF).contains(low));
                        match low {
                            Some(low) => {
                                let code = 0x10000
                                    + ((u32::from(unit) - 0xD800) << 10)
                                    + (u32::from(low) - 0xDC00);
                                (
                                    char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
                                    11,
                                )
                            }
                            None if lossy => (char::REPLACEMENT_CHARACTER, 5),
                            None => return Err(format!("lone UTF-16 surrogate \\u{unit:04X}")),
                        }
                    }
                    0xDC00..=0xDFFF if lossy => (char::REPLACEMENT_CHARACTER, 5),
                    0xDC00..=0xDFFF => return Err(format!("lone UTF-16 surrogate \\u{unit:04X}")),
                    _ => (
                        char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER),
                        5,
                    ),
                }
            }
            _ => {
                return Err(format!(
                    "invalid escape at byte {}",
                    content.len() - rest.len() + at
                ));
            }
        };
        out.push(ch);
        rest = &escape[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The four hex digits of a `\u` escape starting at `text[at..]`.
fn hex_unit(text: &str, at: usize) -> Result<u16, String> {
    text.get(at..at + 4)
        .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        .ok_or_else(|| "a \\u escape without four hex digits".to_owned())
}

fn push_digits(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut v = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Appends `2026-11-22T04:15:00.123456Z`: RFC 3339 with microseconds, the precision RFC 5424 allows.
pub fn push_time(out: &mut Vec<u8>, t: DateTime<Utc>) {
    // Each field accessor of a DateTime<Utc> applies the (zero) offset again; the naive time does not.
    let t = t.naive_utc();
    let year = t.year().clamp(0, 9999) as u32;
    push_digits(out, year, 4);
    out.push(b'-');
    push_digits(out, t.month(), 2);
    out.push(b'-');
    push_digits(out, t.day(), 2);
    out.push(b'T');
    push_digits(out, t.hour(), 2);
    out.push(b':');
    push_digits(out, t.minute(), 2);
    out.push(b':');
    // A leap second is carried in the nanoseconds; RFC 5424 forbids second 60, so it stays 59.
    push_digits(out, t.second(), 2);
    out.push(b'.');
    push_digits(out, (t.nanosecond() % 1_000_000_000) / 1000, 6);
    out.push(b'Z');
}

/// Removes insignificant whitespace so every record fits on one line (pretty-printed API responses
/// would otherwise break NDJSON). JSON strings cannot hold a raw line break, so a record without
/// one is already a single line and is borrowed as it is: the common case, found with one memchr.
pub fn compact_json(text: &str) -> Cow<'_, str> {
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let first_space = bytes.iter().enumerate().position(|(_, &b)| {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            false
        } else if b == b'"' {
            in_string = true;
            false
        } else {
            b.is_ascii_whitespace()
        }
    });
    let Some(start) = first_space else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    let (mut in_string, mut escaped) = (false, false);
    for ch in text[start..].chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if !ch.is_ascii_whitespace() {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "line\nbreak\r\ttab",
            "\u{1}\u{1f}",
            "ünïcødé 山田",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, s);
            let parsed: String = serde_json::from_slice(&out).expect("valid JSON string");
            assert_eq!(parsed, s);
        }
    }

    #[test]
    fn unescaping_reads_what_serde_json_reads() {
        for literal in [
            r#""plain""#,
            r#""q\"uote back\\slash \/ \b\f\n\r\t""#,
            r#""\u00e9t\u00E9 \u5c71\u7530 \ud83d\ude00 end""#,
            r#""An account failed to log on.\r\n\r\nSubject:\r\n\tSecurity ID:\t\tS-1-0-0""#,
            r#""\u0000 nul""#,
        ] {
            let expected: String = serde_json::from_str(literal).expect("valid literal");
            let content = &literal[1..literal.len() - 1];
            assert_eq!(
                unescape(content).as_deref(),
                Ok(expected.as_str()),
                "{literal}"
            );
        }
    }

    #[test]
    fn lone_surrogates_are_refused_like_serde_json_refuses_them() {
        for content in [r"\ud83d", r"\ud83d\u0041", r"\ude00 x", r"\ud83d\ud83d"] {
            assert!(unescape(content).is_err(), "{content}");
            assert!(serde_json::from_str::<String>(&format!("\"{content}\"")).is_err());
        }
    }

    #[test]
    fn shown_text_borrows_without_escapes_and_marks_lone_surrogates() {
        assert!(matches!(
            unescape_lossy("plain é"),
            Cow::Borrowed("plain é")
        ));
        assert_eq!(unescape_lossy(r"a\r\nb\u00e9"), "a\r\nbé");
        assert_eq!(unescape_lossy(r"\ud83d\ude00"), "\u{1F600}");
        assert_eq!(unescape_lossy(r"\ud83d\u0041"), "\u{FFFD}A");
        assert_eq!(unescape_lossy(r"\ude00 x"), "\u{FFFD} x");
        assert_eq!(unescape_lossy(r"\ud83d\ud83d\ude00"), "\u{FFFD}\u{1F600}");
        assert_eq!(unescape_lossy(r"end\ud83d"), "end\u{FFFD}");
    }

    #[test]
    fn times_are_rfc3339_with_microseconds() {
        let t = DateTime::parse_from_rfc3339("2015-01-21T22:14:26.9792776Z")
            .expect("time")
            .to_utc();
        let mut out = Vec::new();
        push_time(&mut out, t);
        assert_eq!(out, b"2015-01-21T22:14:26.979277Z");
    }

    #[test]
    fn compaction_keeps_whitespace_inside_strings() {
        let text = "{ \"a\" : \"x  y\\\" z\",\n \"b\":[1, 2] }";
        assert_eq!(compact_json(text), "{\"a\":\"x  y\\\" z\",\"b\":[1,2]}");
        assert!(
            matches!(compact_json("{\"a\": 1}"), Cow::Borrowed(_)),
            "one line already"
        );
    }
}
