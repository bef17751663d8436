//! A job's `schedule` and what it becomes for systemd (timer `OnCalendar=`) and cron (`/etc/cron.d` line).
//! Pure: `silo schedule` (cli/schedule.rs) writes the files.
//!
//! Forms: `hourly` (at minute 0; `hourly :15` at minute 15), `daily HH:MM`, `every Nh` (hours dividing the
//! day: 1, 2, 3, 4, 6, 8, 12), `weekly DAY HH:MM` (mon..sun), `monthly D HH:MM` (day 1-28, so every month has
//! it).
//!
//! I23: what goes into a unit or a cron line (the jobs file's path, the job, the user) is quoted, and what
//! no quoting can carry (a line break: cron and systemd read one line per entry) is refused.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    Hourly { minute: u8 },
    Daily { hour: u8, minute: u8 },
    EveryHours { hours: u8 },
    Weekly { day: u8, hour: u8, minute: u8 },
    Monthly { day: u8, hour: u8, minute: u8 },
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const FORMS: &str = "hourly, hourly :MM, daily HH:MM, every Nh (N = 1, 2, 3, 4, 6, 8 or 12), weekly DAY HH:MM, monthly D HH:MM (D = 1-28)";

fn time(text: &str) -> Option<(u8, u8)> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some((h, m))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let bad = || format!("schedule {text:?}: expected {FORMS}");
        let words: Vec<&str> = text.split_whitespace().collect();
        match words[..] {
            ["hourly"] => Ok(Schedule::Hourly { minute: 0 }),
            ["hourly", m] => {
                let minute: u8 =
                    m.strip_prefix(':').and_then(|m| m.parse().ok()).filter(|m| *m < 60).ok_or_else(bad)?;
                Ok(Schedule::Hourly { minute })
            }
            ["daily", t] => time(t).map(|(hour, minute)| Schedule::Daily { hour, minute }).ok_or_else(bad),
            ["every", n] => {
                let hours: u8 = n.strip_suffix('h').and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                [1, 2, 3, 4, 6, 8, 12].contains(&hours).then_some(Schedule::EveryHours { hours }).ok_or_else(bad)
            }
            ["weekly", d, t] => {
                let day = DAYS.iter().position(|x| x.eq_ignore_ascii_case(d)).ok_or_else(bad)? as u8;
                time(t).map(|(hour, minute)| Schedule::Weekly { day, hour, minute }).ok_or_else(bad)
            }
            ["monthly", d, t] => {
                let day: u8 = d.parse().ok().filter(|d| (1..=28).contains(d)).ok_or_else(bad)?;
                time(t).map(|(hour, minute)| Schedule::Monthly { day, hour, minute }).ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }

    /// systemd's `OnCalendar=` for the schedule (systemd.time(7)).
    pub fn on_calendar(&self) -> String {
        match *self {
            Schedule::Hourly { minute } => format!("*-*-* *:{minute:02}:00"),
            Schedule::Daily { hour, minute } => format!("*-*-* {hour:02}:{minute:02}:00"),
            Schedule::EveryHours { hours } => format!("*-*-* 00/{hours}:00:00"),
            Schedule::Weekly { day, hour, minute } => {
                let d = DAYS[usize::from(day)];
                let d = format!("{}{}", d[..1].to_uppercase(), &d[1..]);
                format!("{d} *-*-* {hour:02}:{minute:02}:00")
            }
            Schedule::Monthly { day, hour, minute } => format!("*-*-{day:02} {hour:02}:{minute:02}:00"),
        }
    }

    /// The five time fields of a crontab line.
    pub fn cron(&self) -> String {
        match *self {
            Schedule::Hourly { minute } => format!("{minute} * * * *"),
            Schedule::Daily { hour, minute } => format!("{minute} {hour} * * *"),
            Schedule::EveryHours { hours: 1 } => "0 * * * *".into(),
            Schedule::EveryHours { hours } => format!("0 */{hours} * * *"),
            Schedule::Weekly { day, hour, minute } => format!("{minute} {hour} * * {day}"),
            Schedule::Monthly { day, hour, minute } => format!("{minute} {hour} {day} * *"),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Schedule::Hourly { minute: 0 } => write!(f, "hourly"),
            Schedule::Hourly { minute } => write!(f, "hourly :{minute:02}"),
            Schedule::Daily { hour, minute } => write!(f, "daily {hour:02}:{minute:02}"),
            Schedule::EveryHours { hours } => write!(f, "every {hours}h"),
            Schedule::Weekly { day, hour, minute } => {
                write!(f, "weekly {} {hour:02}:{minute:02}", DAYS[usize::from(day)])
            }
            Schedule::Monthly { day, hour, minute } => write!(f, "monthly {day} {hour:02}:{minute:02}"),
        }
    }
}

/// The first line of every file `silo schedule` writes: it removes or replaces only files that carry it.
pub const MARKER: &str = "# Written by `silo schedule install`; `silo schedule uninstall` removes it.";

/// Unit names of a job: `silo-job-NAME.service` / `.timer`.
pub fn unit_name(job: &str, suffix: &str) -> String {
    format!("silo-job-{job}.{suffix}")
}

/// The freshness watch's unit (or cron.d file) name: `silo status --notify` on its own schedule, so a job
/// whose timer died still alerts (a job's units are `silo-job-*`, so no job name can collide).
pub const WATCH: &str = "silo-watch";

/// The systemd service and timer of the freshness watch, running `command` (`silo --config F status --notify`).
pub fn watch_units(schedule: Schedule, command: &[String]) -> Result<(String, String), String> {
    let (service, timer) = systemd_units("freshness watch", schedule, command)?;
    Ok((
        service.replace("silo backup job freshness watch", "silo freshness watch (status --notify)"),
        timer.replace("silo backup job freshness watch", "silo freshness watch (status --notify)"),
    ))
}

/// Refuses an argument no unit or cron line can carry: one with a line break or another control
/// character (it would end the line and start one of its own).
fn one_line(command: &[String]) -> Result<(), String> {
    match command.iter().find(|a| a.chars().any(char::is_control)) {
        Some(a) => Err(format!(
            "{:?} holds a line break or control character, which would inject a line into the file; rename it",
            a
        )),
        None => Ok(()),
    }
}

/// Whether `user` is a user name cron may take (`[a-z_][a-z0-9_-]*`, at most 32, optionally ending in `$`).
pub fn valid_user(user: &str) -> bool {
    let name = user.strip_suffix('$').unwrap_or(user);
    user.len() <= 32
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The systemd service and timer of `job`, running `command` (argv, absolute program path).
pub fn systemd_units(job: &str, schedule: Schedule, command: &[String]) -> Result<(String, String), String> {
    one_line(command)?;
    let exec = command.iter().map(|a| systemd_quote(a)).collect::<Vec<_>>().join(" ");
    let service = format!(
        "{MARKER}\n[Unit]\nDescription=silo backup job {job}\nWants=network-online.target\n\
         After=network-online.target\n\n[Service]\nType=oneshot\nExecStart={exec}\nNice=10\n\
         IOSchedulingClass=idle\n"
    );
    let timer = format!(
        "{MARKER}\n[Unit]\nDescription=silo backup job {job}: {schedule}\n\n[Timer]\nOnCalendar={}\n\
         Persistent=true\nRandomizedDelaySec=300\n\n[Install]\nWantedBy=timers.target\n",
        schedule.on_calendar()
    );
    Ok((service, timer))
}

/// The cron.d file of the jobs: one line each, run as `user`, with a random delay like the timers'.
pub fn cron_file(jobs: &[(String, Schedule, Vec<String>)], user: &str) -> Result<String, String> {
    if !valid_user(user) {
        return Err(format!("user {user:?} is not a user name (a-z 0-9 _ -, starting with a letter or _)"));
    }
    for (_, _, command) in jobs {
        one_line(command)?;
    }
    let mut out =
        format!("{MARKER}\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    for (job, schedule, command) in jobs {
        let cmd = command.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
        out.push_str(&format!("# {job}: {schedule}\n{} {user} {cmd}\n", schedule.cron()));
    }
    Ok(out)
}

fn systemd_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:@+,".contains(c)) {
        arg.to_string()
    } else {
        format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$"))
    }
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:@+,".contains(c)) {
        arg.to_string()
    } else {
        // cron turns an unescaped % into a newline.
        format!("'{}'", arg.replace('\'', "'\\''").replace('%', "\\%"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        for (text, calendar, cron) in [
            ("hourly", "*-*-* *:00:00", "0 * * * *"),
            ("hourly :15", "*-*-* *:15:00", "15 * * * *"),
            ("daily 02:00", "*-*-* 02:00:00", "0 2 * * *"),
            ("every 8h", "*-*-* 00/8:00:00", "0 */8 * * *"),
            ("weekly sun 03:30", "Sun *-*-* 03:30:00", "30 3 * * 0"),
            ("monthly 1 04:00", "*-*-01 04:00:00", "0 4 1 * *"),
        ] {
            let s = Schedule::parse(text).unwrap();
            assert_eq!((s.on_calendar().as_str(), s.cron().as_str()), (calendar, cron), "{text}");
            assert_eq!(s.to_string(), text);
        }
    }

    #[test]
    fn nonsense_is_refused_with_the_forms() {
        for bad in [
            "",
            "daily",
            "daily 2:00",
            "daily 24:00",
            "every 5h",
            "every 8",
            "weekly funday 03:00",
            "monthly 31 04:00",
            "hourly 15",
            "sometimes",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("daily HH:MM"), "{bad}: {e}");
        }
    }

    #[test]
    fn units_and_cron_lines_quote_what_they_must() {
        let cmd: Vec<String> =
            ["/usr/bin/silo", "--config", "/etc/silo/my jobs.toml", "run", "shop"].map(String::from).into();
        let (service, timer) = systemd_units("shop", Schedule::parse("daily 02:00").unwrap(), &cmd).unwrap();
        assert!(service.starts_with(MARKER));
        assert!(
            service.contains("ExecStart=/usr/bin/silo --config \"/etc/silo/my jobs.toml\" run shop\n"),
            "{service}"
        );
        assert!(service.contains("Nice=10") && service.contains("IOSchedulingClass=idle"));
        assert!(
            timer.contains("OnCalendar=*-*-* 02:00:00")
                && timer.contains("Persistent=true")
                && timer.contains("RandomizedDelaySec=")
        );
        let every = Schedule::parse("every 8h").unwrap();
        let cron = cron_file(&[("shop".into(), every, cmd.clone())], "root").unwrap();
        assert!(cron.contains("0 */8 * * * root /usr/bin/silo --config '/etc/silo/my jobs.toml' run shop\n"), "{cron}");
        for user in ["root\n* * * * * root evil", "-x", "Root", "", "a b"] {
            assert!(cron_file(&[("shop".into(), every, cmd.clone())], user).unwrap_err().contains("not a user name"));
        }
        assert!(cron_file(&[], "backup-1").is_ok() && cron_file(&[], "_svc$").is_ok());
        let mut injected = cmd;
        injected[2] = "/tmp/a\n* * * * * root evil\n/silo.toml".into();
        let e = cron_file(&[("shop".into(), every, injected.clone())], "root").unwrap_err();
        assert!(e.contains("inject a line"), "{e}");
        assert!(systemd_units("shop", every, &injected).is_err());
    }
}
