//! Shared by the tests of every crate in the workspace (a dev-dependency only).

pub mod gate;
