//! What the lab creates in an account, one module per AWS resource. Each owns how to read it,
//! how to converge it (`ensure`), how to delete it, and how it knows the resource is the lab's
//! (its tag, or its name and shape where a resource cannot carry one), so `down` never deletes
//! what `up` did not create. [`crate::commands::up`] orders them.

pub mod bucket;
pub mod fast_path;
pub mod function;
pub mod recorder;
pub mod role;
pub mod rule;
/// The record of the groups' ingress before the lab (an object in the lab's bucket).
pub mod snapshot;
