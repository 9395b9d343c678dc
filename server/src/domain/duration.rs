//! Durations in flags and files: the one grammar every program of the
//! project reads (`500ms`, `30s`, `5m`; `0` is zero), from the API crate.

pub(crate) use release_manager::duration::parse;
