//! [`RawJson`]: a record's JSON text, kept as text and known to be valid.
//!
//! Records travel from the source to every output as the text Azure sent, so that outputs copy
//! them instead of serialising a tree. `serde_json`'s `RawValue` does that too, but it can only be
//! made by parsing: a row the `wad` source rewrites (annotations dropped, Int64 typed) would be
//! parsed a second time just to be wrapped. `RawJson` is made either by parsing or by code that
//! joins pieces of already-parsed JSON, which says so by calling [`RawJson::assembled`].

use serde_json::value::RawValue;

/// JSON text known to be valid, one value.
#[derive(Clone, PartialEq, Eq)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// Parses `text`, refusing anything that is not exactly one JSON value.
    pub fn parse(text: String) -> Result<RawJson, serde_json::Error> {
        RawValue::from_string(text).map(RawJson::from)
    }

    /// Text made only of valid JSON pieces (members of a parsed object, numbers this process
    /// formatted), so it is valid without being parsed again. Debug builds parse it anyway.
    pub fn assembled(text: String) -> RawJson {
        debug_assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok(),
            "assembled JSON is not valid: {text}"
        );
        RawJson(text.into_boxed_str())
    }

    /// JSON `null`, for a record not filled in yet.
    pub fn null() -> RawJson {
        RawJson("null".into())
    }

    pub fn get(&self) -> &str {
        &self.0
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> RawJson {
        RawJson(raw.into())
    }
}

impl From<&RawValue> for RawJson {
    fn from(raw: &RawValue) -> RawJson {
        RawJson(raw.get().into())
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_refuses_what_is_not_one_json_value() {
        assert_eq!(
            RawJson::parse(r#"{"a":[1,"x"]}"#.into())
                .expect("valid")
                .get(),
            r#"{"a":[1,"x"]}"#
        );
        for bad in ["{'a': 1}", r#"{"a":1"#, "1 2", ""] {
            assert!(RawJson::parse(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "assembled JSON is not valid")]
    fn assembling_broken_text_is_caught_in_tests() {
        RawJson::assembled(r#"{"a":}"#.into());
    }
}
