//! The security-group baseline rule: an AWS Config custom-rule Lambda that reverts a security
//! group's ingress to the required HTTP/HTTPS baseline and reports the result to Config.
//!
//! [`rules`] normalises ingress rules, [`evaluate`] is the pure evaluation, [`event`] and
//! [`parameters`] parse what Config sends, [`aws`] holds the EC2 and Config calls and
//! [`handler`] ties one invocation together.

pub mod aws;
pub mod evaluate;
pub mod event;
pub mod fake;
pub mod fuzzing;
pub mod handler;
pub mod item;
#[cfg(feature = "sdk")]
pub mod logging;
pub mod pace;
pub mod parameters;
pub mod rules;
#[cfg(feature = "sdk")]
mod sdk;

pub use handler::{Handler, HandlerError, Outcome};
