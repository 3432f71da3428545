//! The `deploy` library: every console step of the lab as code, idempotent, with teardown.
//!
//! One module per AWS resource ([`bucket`], [`role`], [`recorder`], [`function`], [`rule`]),
//! each owning how to read, converge and delete it; [`up`] orders them; [`status`], [`logs`],
//! [`evaluate`] and [`open_ports`] are the student's views and exercises; [`connect`] turns the
//! command line into a [`lab::Lab`]; [`command`] runs one command on one target and
//! [`fanout`] runs it on many.

pub mod artifact;
pub mod bucket;
pub mod check;
pub mod check_html;
pub mod cli;
pub mod command;
pub mod connect;
pub mod error;
pub mod evaluate;
pub mod fanout;
pub mod fast_path;
pub mod function;
pub mod impact;
pub mod lab;
pub mod lab_run;
pub mod local;
pub mod logs;
pub mod open_ports;
pub mod prepare;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod reset;
pub mod retry;
pub mod role;
pub mod rule;
pub mod snapshot;
pub mod status;
pub mod up;
