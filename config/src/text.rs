//! The shapes of identifiers and values a config holds as text.

use std::time::Duration;

/// `8-4-4-4-12` hexadecimal digits, the form of every Azure subscription, tenant and client id.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A tenant: its GUID, or one of its domains (contoso.onmicrosoft.com).
pub fn is_tenant(text: &str) -> bool {
    is_guid(text)
        || (text.contains('.')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
}

/// Splits `host:port` (`[v6]:port` too) without resolving it.
pub fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let hint = "expected host:port, e.g. siem.example.com:6514 or [::1]:514";
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} has no port; {hint}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{address:?} has no host; {hint}"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port between 1 and 65535; {hint}"))?;
    Ok((host.to_owned(), port))
}

/// A duration written as text (`30s`, `2m`, `1h 30m`), as every duration of a config is.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 30s, 20m or 2h: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_people_write_them() {
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        let soon = parse_duration("soon").expect_err("not a duration");
        assert!(soon.starts_with("\"soon\" is not a duration"), "{soon}");
    }
}
