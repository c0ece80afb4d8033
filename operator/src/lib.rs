//! The azlog operator. Its controllers are built on the collector crate, whose config type they render.
