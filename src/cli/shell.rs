//! `silo completions SHELL` and `silo man`: shell completion scripts (clap_complete) and the manual page
//! (clap_mangen, roff) generated from the same clap definitions the commands parse with, so they cannot
//! drift from the options. Both write to stdout and touch no repository.

use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn completions(a: &CompletionsArgs) -> Result<()> {
    let mut cmd = <super::Cli as clap::CommandFactory>::command();
    // Into memory first: the generator panics on a write error (`| head`); silo's own write does not.
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "silo", &mut out);
    std::io::Write::write_all(&mut std::io::stdout(), &out).context("writing the completion script")?;
    Ok(())
}

/// The manual page of `silo` and its commands, as one roff document (`silo man | man -l -`).
pub fn man() -> Result<()> {
    let cmd = super::help::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out).context("rendering the manual page")?;
    // Each command's description and options follow, one section per command.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.extend_from_slice(format!(".SH \"SILO {}\"\n", sub.get_name().to_uppercase()).as_bytes());
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            out.extend_from_slice(format!("{}\n", about.to_string().replace('\\', "\\\\")).as_bytes());
        }
        clap_mangen::Man::new(sub.clone()).render_options_section(&mut out).context("rendering the manual page")?;
        if let Some(example) = sub.get_after_help() {
            out.extend_from_slice(format!(".PP\n{}\n", example.to_string().replace('\\', "\\\\")).as_bytes());
        }
    }
    std::io::Write::write_all(&mut std::io::stdout(), &out).context("writing the manual page")?;
    Ok(())
}
