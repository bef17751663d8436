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

/// Where `read` takes the password from, for messages (never the password): the file, `SILO_PASSWORD`, or
/// the terminal.
pub fn source(file: Option<&Path>) -> String {
    match file {
        Some(f) => format!("the password file {} (--password-file or SILO_PASSWORD_FILE)", f.display()),
        None if std::env::var_os("SILO_PASSWORD").is_some() => "SILO_PASSWORD".into(),
        None => "the terminal".into(),
    }
}

/// An environment variable's bytes as they are.
pub fn env_bytes(name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::env::var_os(name).map(OsStringExt::into_vec)
}

/// The first line of a password file, without its line ending (LF or CRLF); bytes as they are. A file
/// other users can read is refused: the password would be theirs too.
pub fn read_file(file: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)
        .with_context(|| format!("reading password file {}", file.display()))?
        .permissions()
        .mode();
    if let Some(refusal) = open_to_others(mode) {
        return Err(silo::Error::Input {
            what: format!("password file {}", file.display()),
            message: format!("{refusal}; run `chmod 600 {}`", file.display()),
        }
        .into());
    }
    // Only the first line matters, and a password file is small: at most 64 KiB is read (not all of a
    // /dev/zero given by mistake).
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(file).with_context(|| format!("reading password file {}", file.display()))?,
            64 << 10,
        ),
        &mut bytes,
    )
    .with_context(|| format!("reading password file {}", file.display()))?;
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

/// Why a secret file of permission bits `mode` is open to other users, if it is.
pub fn open_to_others(mode: u32) -> Option<String> {
    let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
        (_, true) => "every user",
        (true, false) => "its group",
        (false, false) => return None,
    };
    Some(format!("is readable by {who} (mode {:04o})", mode & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::open_to_others;

    #[test]
    fn only_owner_only_secret_files_pass() {
        assert_eq!(open_to_others(0o100600), None);
        assert_eq!(open_to_others(0o400), None);
        assert_eq!(open_to_others(0o620), None, "group-writable is odd, but reveals nothing");
        assert_eq!(open_to_others(0o640).as_deref(), Some("is readable by its group (mode 0640)"));
        assert_eq!(open_to_others(0o100644).as_deref(), Some("is readable by every user (mode 0644)"));
        assert_eq!(open_to_others(0o604).as_deref(), Some("is readable by every user (mode 0604)"));
    }
}
