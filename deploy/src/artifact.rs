//! The function's deployment zip: must hold a Linux executable named `bootstrap` at its root.
//! Its architecture is read from the ELF header, so an x86_64 build is never deployed as arm64.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Where `scripts/package` puts the zips, in order of preference when `--zip` is not given.
pub const DEFAULT_ZIPS: [&str; 2] =
    ["target/lambda/x86_64/bootstrap/bootstrap.zip", "target/lambda/arm64/bootstrap/bootstrap.zip"];

const BUILD_HINT: &str = "build it with scripts/package (cargo lambda build --release --output-format zip)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// Lambda's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// A checked deployment zip.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// Base64 SHA-256 of the zip, as Lambda reports `CodeSha256`.
    pub sha256: String,
    pub architecture: Architecture,
}

impl Artifact {
    /// The zip given with `--zip`, or the first of [`DEFAULT_ZIPS`] that exists.
    pub fn locate(zip: Option<&Path>) -> Result<Self> {
        let path = match zip {
            Some(path) => path.to_path_buf(),
            None => DEFAULT_ZIPS.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
                Error::Usage(format!(
                    "no function zip found at {}: {BUILD_HINT}, or pass --zip PATH",
                    DEFAULT_ZIPS.join(" or ")
                ))
            })?,
        };
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::Usage(format!("cannot read the function zip {} ({e}): {BUILD_HINT}", path.display()))
        })?;
        Self::from_bytes(path, bytes)
    }

    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<Self> {
        let shown = path.display().to_string();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes))
            .map_err(|e| Error::Usage(format!("{shown} is not a zip file ({e}): {BUILD_HINT}")))?;
        let mut header = Vec::with_capacity(20);
        archive
            .by_name("bootstrap")
            .map_err(|_| {
                Error::Usage(format!(
                    "{shown} has no `bootstrap` at its root, so Lambda could not start it: {BUILD_HINT}"
                ))
            })?
            .take(20)
            .read_to_end(&mut header)
            .map_err(|e| Error::Usage(format!("cannot read `bootstrap` in {shown}: {e}")))?;
        let architecture = elf_architecture(&header)
            .map_err(|why| Error::Usage(format!("`bootstrap` in {shown} {why}: {BUILD_HINT}")))?;
        let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        Ok(Artifact { path, bytes, sha256, architecture })
    }
}

/// Reads the machine of an ELF header.
pub fn elf_architecture(header: &[u8]) -> std::result::Result<Architecture, String> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return Err("is not a Linux executable (no ELF header)".into());
    }
    if header[4] != 2 || header[5] != 1 {
        return Err("is not a 64-bit little-endian executable".into());
    }
    match u16::from_le_bytes([header[18], header[19]]) {
        0x3e => Ok(Architecture::X86_64),
        0xb7 => Ok(Architecture::Arm64),
        other => Err(format!("is built for ELF machine {other:#x}, which Lambda does not run (x86_64 or arm64 only)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn elf(machine: u16) -> Vec<u8> {
        let mut header = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        header.resize(18, 0);
        header.extend_from_slice(&machine.to_le_bytes());
        header.extend_from_slice(&[0; 44]);
        header
    }

    fn zip_with(name: &str, content: &[u8]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut out);
        writer.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(content).unwrap();
        writer.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn architecture_comes_from_the_elf_header() {
        let x86 = Artifact::from_bytes("a.zip".into(), zip_with("bootstrap", &elf(0x3e))).unwrap();
        assert_eq!(x86.architecture, Architecture::X86_64);
        let arm = Artifact::from_bytes("a.zip".into(), zip_with("bootstrap", &elf(0xb7))).unwrap();
        assert_eq!(arm.architecture, Architecture::Arm64);
        assert_ne!(x86.sha256, arm.sha256);
        assert_eq!(x86.sha256.len(), 44);
    }

    #[test]
    fn bad_zips_say_how_to_build_a_good_one() {
        let cases = [
            (b"not a zip".to_vec(), "is not a zip file"),
            (zip_with("main", &elf(0x3e)), "has no `bootstrap` at its root"),
            (zip_with("bootstrap", b"#!/bin/sh\necho hi\n"), "is not a Linux executable"),
            (zip_with("bootstrap", &elf(0x28)), "ELF machine 0x28"),
        ];
        for (bytes, expected) in cases {
            let err = Artifact::from_bytes("f.zip".into(), bytes).unwrap_err();
            assert!(matches!(err, Error::Usage(_)));
            let message = err.to_string();
            assert!(message.contains(expected) && message.contains("scripts/package"), "{message}");
        }
    }

    #[test]
    fn a_missing_zip_names_the_build_command() {
        let err = Artifact::locate(Some(Path::new("/nonexistent/bootstrap.zip"))).unwrap_err();
        assert!(err.to_string().contains("cannot read the function zip /nonexistent/bootstrap.zip"), "{err}");
        assert!(err.to_string().contains("cargo lambda build --release --output-format zip"), "{err}");
    }
}
