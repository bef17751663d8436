//! The help every command shows (docs/usage.md "Help"): each command's `--help` ends with one example, and
//! the global options (`--repo`, `--job`, `--json`, ...) are described once, on `silo --help`; a
//! subcommand's help names them in one line instead of repeating their block. `command()` is the clap
//! command the binary parses with and the manual page is rendered from; completions come from the plain
//! `Cli::command()`, which offers the global options after every subcommand.

use clap::CommandFactory;

/// One example per command, by its path (`snapshot restore`). tests/operator.rs checks that every command's
/// help shows one.
const EXAMPLES: &[(&str, &str)] = &[
    ("init", "silo --repo /backup/silo --password-file /etc/silo/password init"),
    ("snapshot", "silo snapshot list --name shop"),
    ("snapshot create", "silo snapshot create --name shop -- pg_dump shop"),
    ("snapshot list", "silo snapshot list --name shop --after yesterday"),
    ("snapshot show", "silo snapshot show shop:latest"),
    ("snapshot restore", "silo snapshot restore shop:latest --before 2026-12-01 --output shop.sql"),
    ("stats", "silo --offsite stats"),
    ("forget", "silo forget --name shop --keep-daily 7 --keep-monthly 12 --dry-run"),
    ("policy", "silo policy set shop --keep-last 3 --keep-daily 7"),
    ("policy set", "silo policy set shop --keep-last 3 --keep-daily 7"),
    ("policy show", "silo policy show"),
    ("gc", "silo gc --dry-run"),
    ("prune", "silo prune"),
    ("check", "silo check --read-data-subset 5%"),
    ("repair", "silo repair index --dry-run"),
    ("repair index", "silo repair index --dry-run"),
    ("repair packs", "silo repair packs --dry-run"),
    ("repair snapshots", "silo repair snapshots --read-data --dry-run"),
    ("unlock", "silo unlock            (a gc killed with SIGKILL on this machine)"),
    ("copy", "silo copy --to /mnt/nas/silo --to-password-file /etc/silo/nas-password --name shop"),
    ("drill", "silo drill shop:latest -- psql -q -v ON_ERROR_STOP=1 -d scratch"),
    ("restore-database", "silo restore-database shop:latest --postgres shop     (--rollback swaps back)"),
    ("key", "silo key list"),
    ("key list", "silo key list"),
    ("key add", "silo key add --writer --new-password-file /etc/silo/writer-password"),
    ("key passwd", "silo key passwd --new-password-file ~/.config/silo/new-password"),
    ("key remove", "silo key remove 3fa2c1 --force --other-password-file ~/.config/silo/new-password"),
    ("run", "silo run --dry-run --send-test shop     (then: silo run shop)"),
    ("status", "silo status --notify --prometheus /var/lib/node_exporter/textfile/silo.prom"),
    ("serve", "silo serve --listen 127.0.0.1:8470     (then: ssh -L 8470:127.0.0.1:8470 HOST)"),
    ("serve passwd", "silo serve passwd ops --auth-file /etc/silo/serve-users"),
    ("schedule", "silo schedule install --all"),
    ("schedule install", "silo schedule install shop --cron"),
    ("schedule uninstall", "silo schedule uninstall shop"),
    ("schedule list", "silo schedule list"),
    ("doctor", "silo doctor shop --send-test     (one line per check; exit 1 when any fails)"),
    ("completions", "silo completions bash > /etc/bash_completion.d/silo"),
    ("man", "silo man | man -l -"),
];

/// What a subcommand's help says instead of the global options' block.
const GLOBALS: &str = "Global options (--repo, --password-file, --job, --offsite, --config, --cache-dir, --json, \
                       --deadline, -v): see silo --help";

/// The command line as the binary parses it: the derived `Cli`, its global options shown on `silo --help`
/// only, and every command's example after its help.
pub fn command() -> clap::Command {
    let cmd = super::Cli::command();
    let globals: Vec<clap::Arg> = cmd.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    names.into_iter().fold(cmd, |cmd, name| {
        let path = name.clone();
        cmd.mut_subcommand(name, |sub| {
            // A hidden copy of each global option: clap propagates a global option only into subcommands
            // that lack one of its name, so this copy (still global, still parsed, hidden) is what the
            // subcommand and those below it get. (Completions are generated from `Cli::command()`, where
            // they stay visible.)
            let sub = globals.iter().fold(sub, |sub, a| sub.arg(a.clone().hide(true)));
            with_examples(sub, &path)
        })
    })
}

/// Adds `sub`'s example (and the line that points at the global options) after its help, and its
/// subcommands'.
fn with_examples(sub: clap::Command, path: &str) -> clap::Command {
    let text = match EXAMPLES.iter().find(|(p, _)| *p == path) {
        Some((_, e)) => format!("Example: {e}\n\n{GLOBALS}"),
        None => GLOBALS.to_string(),
    };
    let sub = sub.after_help(text);
    let names: Vec<String> = sub.get_subcommands().map(|s| s.get_name().to_string()).collect();
    names.into_iter().fold(sub, |sub, name| {
        let child = format!("{path} {name}");
        sub.mut_subcommand(name, |s| with_examples(s, &child))
    })
}
