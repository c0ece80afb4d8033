//! Credentials that can stand in text: a storage SAS (`sig` and its companions) or a token in a
//! URL's query. Every URL azlog shows — in errors, `/readyz`, the LogSource status and Events, logs
//! and dead letters — passes through [`redact`] first, because transport errors quote the URL they
//! failed on, SAS included.

use std::borrow::Cow;

/// What a redacted value reads as.
pub const REDACTED: &str = "REDACTED";

/// Query parameters whose values are credentials or describe one: the SAS signature and every
/// field signed with it (a SAS's fields are useless without `sig`, but say what it grants), the
/// user-delegation key fields, and OAuth's codes, tokens and secrets.
const SECRET_PARAMETERS: &[&str] = &[
    "sig",
    "se",
    "st",
    "sp",
    "sv",
    "spr",
    "sr",
    "srt",
    "ss",
    "si",
    "sdd",
    "skoid",
    "sktid",
    "skt",
    "ske",
    "sks",
    "skv",
    "saoid",
    "suoid",
    "scid",
    "code",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "key",
];

/// `text` with the value of every credential query parameter replaced by [`REDACTED`]; borrowed
/// when there is none.
pub fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // A parameter starts the text or follows `?`, `&` or `;`.
        let starts = i == 0 || matches!(bytes[i - 1], b'?' | b'&' | b';');
        if !starts {
            i += 1;
            continue;
        }
        let name_end = bytes[i..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(bytes.len(), |n| i + n);
        let secret = name_end > i
            && bytes.get(name_end) == Some(&b'=')
            && SECRET_PARAMETERS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&text[i..name_end]));
        if !secret {
            i = name_end.max(i + 1);
            continue;
        }
        let value_start = name_end + 1;
        let value_end = bytes[value_start..]
            .iter()
            .position(|b| ends_value(*b))
            .map_or(bytes.len(), |n| value_start + n);
        if value_end > value_start {
            let s = out.get_or_insert_with(|| String::with_capacity(text.len()));
            s.push_str(&text[copied..value_start]);
            s.push_str(REDACTED);
            copied = value_end;
        }
        i = value_end.max(i + 1);
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut s) => {
            s.push_str(&text[copied..]);
            Cow::Owned(s)
        }
    }
}

/// Where a query value ends in running text: the next parameter, or whatever quotes the URL.
fn ends_value(b: u8) -> bool {
    matches!(
        b,
        b'&' | b';'
            | b'#'
            | b' '
            | b'\t'
            | b'\r'
            | b'\n'
            | b'"'
            | b'\''
            | b'`'
            | b')'
            | b']'
            | b'>'
            | b'<'
            | b','
            | b'\\'
    )
}

/// A log writer that redacts each line before it reaches stderr: the last guard for a URL that a
/// dependency logs on its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAS: &str = "sv=2022-11-02&ss=t&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig=AbC%2Bdef%2F123%3D";

    #[test]
    fn a_transport_error_quoting_a_sas_url_keeps_no_part_of_the_sas() {
        let error = format!(
            "error sending request for url (https://diag.table.core.windows.net/WADWindowsEventLogsTable()?{SAS}&$filter=Timestamp%20ge%20x): connection refused"
        );
        let shown = redact(&error);
        for secret in ["AbC%2Bdef%2F123%3D", "2030-01-01", "srt=sco", "sp=rl"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("sig=REDACTED"), "{shown}");
        assert!(
            shown.contains("$filter=Timestamp%20ge%20x): connection refused"),
            "{shown}"
        );
        assert!(shown.starts_with("error sending request for url (https://diag.table"));
    }

    #[test]
    fn a_bare_sas_and_oauth_parameters_are_redacted_and_other_text_borrowed() {
        assert_eq!(
            redact("sig=abc&sv=1"),
            format!("sig={REDACTED}&sv={REDACTED}")
        );
        assert_eq!(
            redact("POST /token?client_secret=s3cr3t;code=xyz \"x\""),
            format!("POST /token?client_secret={REDACTED};code={REDACTED} \"x\"")
        );
        assert_eq!(redact("?SIG=abc"), format!("?SIG={REDACTED}"));
        let plain =
            "https://management.azure.com/subscriptions/x?api-version=2015-04-01&$skiptoken=abc";
        assert!(matches!(redact(plain), Cow::Borrowed(_)));
        // A parameter name inside another word is not a parameter.
        assert_eq!(redact("design=1&assign=2"), "design=1&assign=2");
        assert_eq!(redact("sig="), "sig=");
    }
}
