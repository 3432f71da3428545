//! The front's answer to each service, one module per service, as moto keeps
//! `moto/<service>/responses.py` beside its `models.py`: here what the front does with a
//! service's requests; in the crate's service modules ([`crate::config`], [`crate::lambda`],
//! [`crate::ec2`], [`crate::s3`], …) the state it keeps and the shapes AWS gives it.
//! [`crate::Front`] only routes a request to one of these.

pub(crate) mod admin;
pub(crate) mod config;
pub(crate) mod ec2;
pub(crate) mod events;
pub(crate) mod lambda;
pub(crate) mod s3;
pub(crate) mod sts;
