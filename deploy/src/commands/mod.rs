//! What a user runs: one module per `deploy` command (`lab …` subcommands included). A command
//! reads or converges [`crate::resources`] and returns a value that prints as text or JSON;
//! [`crate::command`] runs it on one target and [`crate::fanout`] on many.

pub mod check;
pub mod check_html;
pub mod evaluate;
pub mod impact;
pub mod lab_run;
pub mod local;
pub mod logs;
pub mod open_ports;
pub mod prepare;
pub mod reset;
pub mod status;
pub mod up;
