//! Reading a Prometheus text exposition: the collector's, the operator's and the API server's
//! `/metrics` alike.

use crate::http::http_get;

/// One series of an exposition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// What is between the braces, `a="1",b="2"`; empty without labels.
    pub labels: &'a str,
    pub value: f64,
}

impl<'a> Sample<'a> {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        let labels: &'a str = self.labels;
        let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
        labels[start..].split('"').next()
    }
}

/// Every series of `body`, comments left out.
pub fn samples(body: &str) -> impl Iterator<Item = Sample<'_>> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            Some(Sample {
                name,
                labels,
                value: value.parse().ok()?,
            })
        })
}

/// The sum of the series of `name` whose labels contain every `label="value"` in `labels` (0 when
/// none match).
pub fn sum(body: &str, name: &str, labels: &[&str]) -> f64 {
    samples(body)
        .filter(|s| s.name == name && labels.iter().all(|l| s.labels.contains(l)))
        .map(|s| s.value)
        .sum()
}

/// [`sum`] of what the `/metrics` endpoint on loopback `port` serves now.
pub fn metric(port: u16, name: &str, labels: &[&str]) -> f64 {
    sum(&http_get(port, "/metrics").1, name, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_summed_by_name_and_labels() {
        let body =
            "# HELP x\nx_total{a=\"1\",b=\"y\"} 2\nx_total{a=\"2\"} 3\nx_total_other 7\nup 1\n";
        assert_eq!(sum(body, "x_total", &[]), 5.0);
        assert_eq!(sum(body, "x_total", &["a=\"1\""]), 2.0);
        assert_eq!(sum(body, "up", &[]), 1.0);
        assert_eq!(sum(body, "missing", &[]), 0.0);
        let first = samples(body).next().expect("a sample");
        assert_eq!((first.label("b"), first.label("c")), (Some("y"), None));
    }
}
