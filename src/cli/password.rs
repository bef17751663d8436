//! Where passwords come from: `--password-file` (first line), `SILO_PASSWORD`, or the terminal. Bytes as
//! they are (a password need not be UTF-8); never printed, logged, or passed to commands silo starts
//! (src/child.rs).

use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::Path;

/// The repository password: from `file`, else SILO_PASSWORD, else asked on the terminal (twice with
/// `confirm`). Without any of them: `NoPassword` (exit 4).
pub fn read(file: Option<&Path>, confirm: bool) -> Result<Vec<u8>> {
    if let Some(file) = file {
        return read_file(file);
    }
    if let Some(p) = env_bytes("SILO_PASSWORD") {
        return Ok(p);
    }
    if std::io::stderr().is_terminal() {
        let p = rpassword::prompt_password("repository password: ").context("reading password from the terminal")?;
        if confirm && rpassword::prompt_password("repeat password: ").context("reading password")? != p {
            anyhow::bail!("passwords do not match");
        }
        return Ok(p.into_bytes());
    }
    Err(silo::Error::NoPassword.into())
}

/// An environment variable's bytes as they are.
pub fn env_bytes(name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::env::var_os(name).map(OsStringExt::into_vec)
}

/// The first line of a password file, without its line ending (LF or CRLF); bytes as they are.
pub fn read_file(file: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading password file {}", file.display()))?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(silo::Error::Input {
            what: format!("password file {}", file.display()),
            message: "its first line is empty; put the password on the first line".into(),
        }
        .into());
    }
    Ok(line.to_vec())
}
