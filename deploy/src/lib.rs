//! The `deploy` library: every console step of the lab as code, idempotent, with teardown.
//!
//! Three layers:
//! - [`resources`]: one module per AWS resource ([`bucket`], [`role`], [`recorder`],
//!   [`function`], [`rule`], [`fast_path`]), each owning how to read, converge and delete it
//!   and how it knows a resource is the lab's;
//! - [`commands`]: one module per command — [`up`] (and `down`) orders the resources;
//!   [`status`], [`logs`], [`evaluate`] and [`open_ports`] are the student's views and
//!   exercises; [`lab_run`], [`prepare`], [`reset`], [`check`] serve a class; [`local`] runs
//!   the local AWS;
//! - the machinery they share: [`cli`] parses the command line, [`connect`] turns it into a
//!   [`lab::Lab`], [`command`] runs one command on one target and [`fanout`] runs it on many
//!   ([`progress`] shows them), with [`error`], [`retry`], [`report`] and [`artifact`].

pub mod artifact;
pub mod cli;
pub mod command;
pub mod commands;
pub mod confirm;
pub mod connect;
pub mod error;
pub mod fanout;
pub mod lab;
pub mod progress;
pub mod report;
pub mod resources;
pub mod retry;

// Each module is also reachable at the crate root (`crate::bucket`, `deploy::up`), the paths
// the code and the tests use.
pub use commands::{check, check_html, evaluate, impact, lab_run, local, logs, open_ports, prepare, reset, status, up};
pub use resources::{bucket, fast_path, function, recorder, role, rule, snapshot};
