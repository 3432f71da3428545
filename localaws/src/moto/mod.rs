//! Starting moto, the backend.
//!
//! moto runs as its own `moto_server` would, patched by `server.py` (run with the interpreter
//! moto is installed for; the script's docstring says what and why, each with the EC2 page it
//! follows): DescribeSecurityGroupRules filtered by group id reads only the named groups (moto
//! 5.2.1 copies every rule of the region first: seconds a read at 5,000 groups, which AWS does
//! not charge); security-group reads answer in pages of `MaxResults`; Authorize and Revoke are
//! all-or-nothing and answer every rule they changed, so that the front ([`crate::ec2`]) makes
//! a change one moto call, not three. A `moto_server` that is not a Python script (no `#!` line
//! naming an interpreter that exists) is started as it is, and the front then reads a group's
//! rules around each change to answer it.

use std::path::{Path, PathBuf};

/// The script that patches moto's read and starts its server.
const SERVER: &str = include_str!("server.py");

/// The command that starts moto's server for the program `moto_server` (a path, or a name
/// looked up on PATH), with `args` (`-H`, `-p`).
pub fn command(moto_server: &str, args: &[&str]) -> tokio::process::Command {
    match interpreter(moto_server) {
        Some(python) => {
            let mut command = tokio::process::Command::new(python);
            command.arg("-c").arg(SERVER).args(args);
            command
        }
        None => {
            let mut command = tokio::process::Command::new(moto_server);
            command.args(args);
            command
        }
    }
}

/// The interpreter named by the `#!` line of the `moto_server` script, when it exists.
fn interpreter(moto_server: &str) -> Option<PathBuf> {
    let path = resolve(moto_server)?;
    let head = std::fs::read(&path).ok()?;
    let first = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?.trim();
    // `#!/path/to/python` only: an `env` line or arguments are left to the script itself.
    if line.contains(' ') {
        return None;
    }
    let python = PathBuf::from(line);
    let name = python.file_name()?.to_str()?;
    (name.starts_with("python") && python.is_file()).then_some(python)
}

fn resolve(program: &str) -> Option<PathBuf> {
    let direct = Path::new(program);
    if direct.components().count() > 1 {
        return direct.is_file().then(|| direct.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_script_runs_with_its_interpreter_and_anything_else_as_it_is() {
        let dir = std::env::temp_dir().join(format!("localaws-moto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let python = dir.join("python3");
        std::fs::write(&python, "").unwrap();
        let script = dir.join("moto_server");
        std::fs::write(&script, format!("#!{}\nimport moto\n", python.display())).unwrap();
        assert_eq!(interpreter(script.to_str().unwrap()), Some(python.clone()));
        std::fs::write(&script, "#!/usr/bin/env python3\n").unwrap();
        assert_eq!(interpreter(script.to_str().unwrap()), None);
        std::fs::write(&script, format!("#!{}/missing/python3\n", dir.display())).unwrap();
        assert_eq!(interpreter(script.to_str().unwrap()), None);
        assert_eq!(interpreter(dir.join("absent").to_str().unwrap()), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
