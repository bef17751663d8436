//! How silo writes sizes and recorded commands for people, the same in the CLI's reports and on the
//! dashboard (pure).

/// Bytes in binary units: `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A recorded command as the user typed it (`--stream NAME=CMD` is stored as `sh -c CMD`).
pub fn command_text(argv: &[String]) -> String {
    match argv {
        [sh, c, cmd] if sh == "sh" && c == "-c" => cmd.clone(),
        _ => argv.join(" "),
    }
}
