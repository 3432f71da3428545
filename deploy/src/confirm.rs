//! Asking the person at the terminal before a change that reaches beyond the lab: `down`'s
//! deletions, `up`'s first evaluation of groups besides the default one. Callers check first
//! that stdin is a terminal, and refuse without `--yes` when it is not.

use std::io::Write;

use crate::error::{Error, Result};

/// Prints `prompt` (it ends with the choices, e.g. `[y/N] `) on stderr and reads one line:
/// `true` for `y`, `Y` or `yes`, `false` for anything else.
pub fn ask(prompt: &str) -> Result<bool> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| Error::Declined(format!("no answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
