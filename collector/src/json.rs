//! Fast writers for the JSON and time text every output emits. These run once or more per event,
//! so they append bytes instead of going through a serializer.

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
    fn times_are_rfc3339_with_microseconds() {
        let t = DateTime::parse_from_rfc3339("2015-01-21T22:14:26.9792776Z")
            .expect("time")
            .to_utc();
        let mut out = Vec::new();
        push_time(&mut out, t);
        assert_eq!(out, b"2015-01-21T22:14:26.979277Z");
    }
}
