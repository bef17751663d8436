//! Commands silo starts (stream producers, drill consumers) get the caller's environment minus silo's own
//! secrets: a `pg_dump` or a shell has no business reading the repository password.

/// Environment variables that hold silo's secrets (README "Use"); removed from every child's environment.
pub const SECRET_VARIABLES: [&str; 3] = ["SILO_PASSWORD", "SILO_FROM_PASSWORD", "SILO_TO_PASSWORD"];

/// `std::process::Command::new(program)` without silo's secrets in its environment.
pub fn command(program: &str) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    for name in SECRET_VARIABLES {
        c.env_remove(name);
    }
    c
}
