//! [`RawJson`]: a record's JSON text, kept as text and known to be valid.
//!
//! Records travel from the source to every output as the text Azure sent, so that outputs copy
//! them instead of serialising a tree. `serde_json`'s `RawValue` does that too, but it can only be
//! made by parsing: a row the `wad` source rewrites (annotations dropped, Int64 typed) would be
//! parsed a second time just to be wrapped. `RawJson` is made either by parsing or by code that
//! joins pieces of already-parsed JSON into a page of records, which says so by calling
//! [`RawJson::assembled_in`].

use std::ops::Range;
use std::sync::Arc;

use serde_json::value::RawValue;

/// JSON text known to be valid, one value.
#[derive(Clone)]
pub struct RawJson(Text);

#[derive(Clone)]
enum Text {
    Own(Box<str>),
    /// One record of a page whose records share one text: a page of records is then one
    /// allocation instead of one per record. The page lives as long as any of its records.
    InPage(Arc<String>, Range<usize>),
}

impl RawJson {
    /// Parses `text`, refusing anything that is not exactly one JSON value.
    pub fn parse(text: String) -> Result<RawJson, serde_json::Error> {
        RawValue::from_string(text).map(RawJson::from)
    }

    /// The record at `range` of a page's text, made only of valid JSON pieces (members of a
    /// parsed object, numbers this process formatted), so it is valid without being parsed
    /// again. Debug builds parse it anyway.
    pub fn assembled_in(page: &Arc<String>, range: Range<usize>) -> RawJson {
        debug_assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(&page[range.clone()]).is_ok(),
            "assembled JSON is not valid: {}",
            &page[range.clone()]
        );
        RawJson(Text::InPage(Arc::clone(page), range))
    }

    /// JSON `null`, for a record not filled in yet.
    pub fn null() -> RawJson {
        RawJson(Text::Own("null".into()))
    }

    pub fn get(&self) -> &str {
        match &self.0 {
            Text::Own(text) => text,
            Text::InPage(page, range) => &page[range.clone()],
        }
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.get() == other.get()
    }
}

impl Eq for RawJson {}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> RawJson {
        RawJson(Text::Own(raw.into()))
    }
}

impl From<&RawValue> for RawJson {
    fn from(raw: &RawValue) -> RawJson {
        RawJson(Text::Own(raw.get().into()))
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
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
        RawJson::assembled_in(&Arc::new(r#"{"a":1}{"a":}"#.into()), 7..13);
    }

    #[test]
    fn records_of_a_page_are_their_own_slices_of_it() {
        let page = Arc::new(String::from(r#"{"a":1}{"b":[2]}"#));
        let (a, b) = (
            RawJson::assembled_in(&page, 0..7),
            RawJson::assembled_in(&page, 7..16),
        );
        assert_eq!((a.get(), b.get()), (r#"{"a":1}"#, r#"{"b":[2]}"#));
        assert_eq!(b, RawJson::parse(r#"{"b":[2]}"#.into()).expect("json"));
    }
}
