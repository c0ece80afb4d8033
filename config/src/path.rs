//! Where a mistake is: the path of the field its author has to change.
//!
//! Each part of a config checks itself against an [`At`], the place that part was written. In the
//! collector's own file every part is where the config names it (`source.wad.account`); the operator
//! writes a collector config from a LogSource and places each part at the LogSource field it came
//! from (`spec.wad.accountKey` for `source.wad.accountKeyFile`). No path is ever parsed back.

use std::fmt;

/// One mistake in a configuration: where, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The place one part of a config was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct At {
    base: String,
    moved: Vec<(&'static str, String)>,
}

impl At {
    /// A part whose fields are below `base` (`""` for the top level).
    pub fn new(base: impl Into<String>) -> At {
        At {
            base: base.into(),
            moved: Vec::new(),
        }
    }

    /// `field`, and everything below it, was written at `path` instead, under another name.
    pub fn moved(mut self, field: &'static str, path: impl Into<String>) -> At {
        self.moved.push((field, path.into()));
        self
    }

    /// The part written at `field` of this one (`sharing` of `source.eventHubs`).
    pub fn child(&self, field: &str) -> At {
        At::new(self.path(field))
    }

    /// The path of `field` (`account`, `subscriptions[2]`, `tls.caFile`) of this part.
    pub fn path(&self, field: &str) -> String {
        for (from, to) in &self.moved {
            if let Some(rest) = field.strip_prefix(from)
                && (rest.is_empty() || rest.starts_with(['.', '[']))
            {
                return format!("{to}{rest}");
            }
        }
        match (self.base.is_empty(), field.is_empty()) {
            (true, _) => field.to_owned(),
            (false, true) => self.base.clone(),
            (false, false) => format!("{}.{field}", self.base),
        }
    }
}

/// Where each part of a whole config was written.
pub trait Layout {
    /// `name`, `subscriptionId` and the `outputs` list itself.
    fn top(&self) -> At;
    /// The source block, by its kind (`wad`, `activityLog`, …).
    fn source(&self, kind: &str) -> At;
    fn azure(&self) -> At;
    /// The `index`th output, by its kind (`file`, `syslog`, …).
    fn output(&self, index: usize, kind: &str) -> At;
    fn pipeline(&self) -> At;
    fn checkpoint(&self) -> At;
}

/// A config file as its author wrote it: every field where the config names it.
#[derive(Debug, Clone, Copy)]
pub struct AsWritten;

impl Layout for AsWritten {
    fn top(&self) -> At {
        At::new("")
    }
    fn source(&self, kind: &str) -> At {
        At::new(format!("source.{kind}"))
    }
    fn azure(&self) -> At {
        At::new("azure")
    }
    fn output(&self, index: usize, kind: &str) -> At {
        At::new(format!("outputs[{index}].{kind}"))
    }
    fn pipeline(&self) -> At {
        At::new("pipeline")
    }
    fn checkpoint(&self) -> At {
        At::new("checkpoint")
    }
}

/// The mistakes found so far.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// Records that `field` of the part at `at` is wrong.
    pub fn add(&mut self, at: &At, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            path: at.path(field),
            message: message.into(),
        });
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

/// Whether the files a config names must exist where it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    MustExist,
    /// Checked where the config is written, not where it runs: the operator renders configs for
    /// pods where those files are Secrets mounted later.
    Elsewhere,
}

impl Files {
    pub(crate) fn missing(self, path: &std::path::Path) -> bool {
        self == Files::MustExist && !path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_reported_below_its_part_or_where_it_was_moved() {
        let at = At::new("spec.outputs[0].syslog")
            .moved("tls.caFile", "spec.outputs[0].syslog.tls.ca")
            .moved("startAt", "spec.startAt");
        assert_eq!(at.path("address"), "spec.outputs[0].syslog.address");
        assert_eq!(at.path("tls.caFile"), "spec.outputs[0].syslog.tls.ca");
        assert_eq!(at.path("startAt"), "spec.startAt");
        // A field that only begins like a moved one is not moved.
        assert_eq!(at.path("startAtX"), "spec.outputs[0].syslog.startAtX");
        assert_eq!(At::new("").path("name"), "name");
        assert_eq!(At::new("spec").path(""), "spec");
        let listed = At::new("spec.wad").moved("subscriptions", "spec.subs");
        assert_eq!(listed.path("subscriptions[2]"), "spec.subs[2]");
    }
}
