//! The dashboard's HTML (pure): maud templates compiled into the binary, every text escaped by maud, no
//! script at all (the pages work with JavaScript disabled, and the CSP forbids inline script, I26). A state
//! is said in words beside its colour.

use super::chart;
use super::model::{NameDetail, RunRow, View, TREND_DAYS};
use crate::jobs::status::{JobStatus, State};
use crate::time::{format_micros, format_seconds};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Why the newest refresh failed, shown above whatever view is kept.
#[derive(Clone, Debug)]
pub struct Failure {
    pub since_us: i64,
    pub error: String,
}

/// The signed-in user (with `--auth-file`) and the session's form token, for the log-out button.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub csrf: String,
}

/// With `--allow-actions`: the form token, the jobs that may be run, and what is running.
#[derive(Clone, Debug)]
pub struct Controls {
    pub csrf: String,
    pub jobs: Vec<String>,
    pub state: super::model::ActionState,
}

/// The stylesheet, served as `/static/style.css` (inline styles would need a looser CSP).
pub const STYLE: &str = include_str!("style.css");

/// Bytes as `silo status` prints them.
pub fn bytes(n: u64) -> String {
    crate::text::human_bytes(n)
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn state_words(s: State) -> &'static str {
    match s {
        State::Ok => "OK",
        State::Never => "NEVER SUCCEEDED",
        State::Stale => "STALE",
        State::Shrunk => "SHRUNK",
        State::Failing => "FAILING",
        State::Damaged => "DAMAGED",
    }
}

fn when(us: i64, now_us: i64) -> String {
    let ago = u64::try_from((now_us - us).max(0) / 1_000_000).unwrap_or(0);
    format!("{} ({} ago)", format_micros(us), format_seconds(ago))
}

fn layout(
    title: &str,
    view_time: Option<i64>,
    failure: Option<&Failure>,
    session: Option<&Session>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · silo" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    nav {
                        a href="/" { "Overview" }
                        " "
                        a href="/repository" { "Repository" }
                        " "
                        a href="/api/v1/status" { "JSON" }
                        " "
                        a href="/metrics" { "Metrics" }
                        @if let Some(u) = session {
                            form.logout method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(u.csrf);
                                (u.user) " " button type="submit" { "Log out" }
                            }
                        }
                    }
                    @if let Some(t) = view_time {
                        p.refreshed { "Read from the repository at " (format_micros(t)) }
                    }
                }
                @if let Some(f) = failure {
                    section.error-panel role="alert" {
                        h2 { "The repository could not be read" }
                        p { (f.error) }
                        p { "Failing since " (format_micros(f.since_us)) "."
                            @if view_time.is_some() { " What follows is the last view that could be read." } }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The page when no view has been read yet (the first refresh is running, or failed).
pub fn waiting(failure: Option<&Failure>, session: Option<&Session>) -> Markup {
    layout(
        "Overview",
        None,
        failure,
        session,
        html! { @if failure.is_none() { p { "Reading the repository; this page refreshes when you reload it." } } },
    )
}

fn action_form(c: &Controls, action: &str, label: &str) -> Markup {
    html! {
        form.action method="post" action=(action) {
            input type="hidden" name="csrf" value=(c.csrf);
            button type="submit" disabled[c.state.running.is_some()] { (label) }
        }
    }
}

fn actions_bar(c: &Controls, now: i64) -> Markup {
    html! {
        section.actions {
            @if let Some((what, since)) = &c.state.running {
                p.running role="status" { "Running: " strong { (what) } ", started " (when(*since, now.max(*since))) ". Reload to follow it." }
            }
            @if let Some((what, at, code)) = &c.state.last {
                p.last-action { "Last action: " (what) ", ended " (format_micros(*at)) ": "
                    @match code { Some(0) => { "ok" }, Some(c) => { "FAILED (exit " (c) ")" }, None => { "killed" } } }
            }
            (action_form(c, "/actions/check", "Check now"))
        }
    }
}

pub fn overview(v: &View, failure: Option<&Failure>, controls: Option<&Controls>, session: Option<&Session>) -> Markup {
    let body = html! {
        h1 { "Backups: " span class={"state state-" (v.state.as_str())} { (state_words(v.state)) } }
        @if let Some(c) = controls { (actions_bar(c, v.refreshed_us)) }
        @if v.jobs.is_empty() {
            p { "No jobs and no snapshots yet." }
        }
        div.cards {
            @for j in &v.jobs {
                (card(v, j, controls))
            }
        }
    };
    layout("Overview", Some(v.refreshed_us), failure, session, body)
}

fn card(v: &View, j: &JobStatus, controls: Option<&Controls>) -> Markup {
    let now = v.refreshed_us;
    let detail = v.names.get(&j.job);
    let sizes = detail.map(|d| d.sizes.as_slice()).unwrap_or_default();
    let drills: Vec<(i64, u64)> = detail
        .map(|d| d.drills.iter().rev().map(|r| (r.finished_us, (r.seconds * 1000.0) as u64)).collect())
        .unwrap_or_default();
    html! {
        article class={"card state-" (j.state.as_str())} data-job=(j.job) data-state=(j.state.as_str()) {
            h2 { a href={"/name/" (segment(&j.job))} { (j.job) } " " span.state { (state_words(j.state)) } }
            @if !j.reasons.is_empty() {
                ul.reasons { @for r in &j.reasons { li { (r) } } }
            }
            dl {
                dt { "Newest snapshot" }
                dd.freshness {
                    @match (j.last_snapshot, j.freshness_seconds) {
                        (Some(t), Some(limit)) => { (when(t, now)) ", limit " (format_seconds(limit)) }
                        (Some(t), None) => { (when(t, now)) }
                        (None, _) => { "none" }
                    }
                }
                dt { "Last success" }
                dd.last-success { @match j.last_success { Some(t) => { (when(t, now)) }, None => { "never" } } }
                @if let Some(t) = j.last_failure {
                    dt { "Last failure" }
                    dd.last-failure { (when(t, now)) ": " span.error { (j.last_error.as_deref().unwrap_or("")) } }
                }
                dt { "Latest size" }
                dd.size {
                    @match j.latest_bytes { Some(b) => { (bytes(b)) }, None => { "-" } }
                    @if let Some(a) = j.latest_added_bytes { ", added " (bytes(a)) }
                }
                dt { "Snapshots" }
                dd { (j.snapshots) @if j.damaged_snapshots > 0 { ", " strong { (j.damaged_snapshots) " marked damaged" } } }
                dt { "Last check" }
                dd.last-check {
                    @match (j.last_check, j.last_check_ok) {
                        (Some(t), Some(ok)) => { (when(t, now)) ": " (if ok { "ok" } else { "FAILED" }) }
                        _ => { "never" }
                    }
                }
                dt { "Last drill" }
                dd.last-drill {
                    @match (j.last_drill, j.last_drill_ok, j.last_drill_seconds) {
                        (Some(t), Some(ok), Some(s)) => {
                            (when(t, now)) ": " (if ok { "restored" } else { "FAILED" }) " in " (format!("{s:.1}")) " s"
                        }
                        _ => { "never" }
                    }
                }
            }
            figure.size-trend {
                (PreEscaped(chart::trend(sizes, now, TREND_DAYS, &format!("Size of {}'s snapshots over {TREND_DAYS} days", j.job))))
                figcaption { "Snapshot size, last " (TREND_DAYS) " days" }
            }
            @if let Some(c) = controls.filter(|c| c.jobs.contains(&j.job)) {
                (action_form(c, &format!("/actions/run/{}", segment(&j.job)), "Run now"))
            }
            @if !drills.is_empty() {
                figure.drill-trend {
                    (PreEscaped(chart::trend(&drills, now, TREND_DAYS, &format!("Recovery time of {}'s drills (ms)", j.job))))
                    figcaption { "Drill recovery time" }
                }
            }
        }
    }
}

pub fn name_page(v: &View, name: &str, d: &NameDetail, failure: Option<&Failure>, session: Option<&Session>) -> Markup {
    let now = v.refreshed_us;
    let status = v.jobs.iter().find(|j| j.job == name);
    let body = html! {
        h1 { (name) @if let Some(s) = status { " " span class={"state state-" (s.state.as_str())} { (state_words(s.state)) } } }
        @if let Some(s) = status { @if !s.reasons.is_empty() { ul.reasons { @for r in &s.reasons { li { (r) } } } } }
        (PreEscaped(chart::trend(&d.sizes, now, TREND_DAYS, &format!("Size of {name}'s snapshots over {TREND_DAYS} days"))))
        h2 { "Retention" }
        @match &d.retention {
            Some(r) => {
                p.policy { "Policy: " code { (r.policy) } " (" (r.from) ")." }
                @if r.removes.is_empty() {
                    p.forget-preview { "A forget now would remove nothing." }
                } @else {
                    p.forget-preview { "A forget now would remove " (r.removes.len()) " snapshots:" }
                    ul.removes { @for x in r.removes.iter().take(100) {
                        li { code { (x.id[..12.min(x.id.len())]) } " " (when(x.finished_us, now)) " on " (x.host) }
                    } }
                }
            }
            None => { p.policy { "No retention policy: every snapshot is kept." } }
        }
        h2 { "Snapshots (" (d.snapshots.len()) ")" }
        table.snapshots {
            thead { tr { th { "Finished" } th { "Id" } th { "Size" } th { "Added" } th { "Host" } th { "Tags" } th { "Streams" } } }
            tbody {
                @for s in d.snapshots.iter().take(500) {
                    tr class=[s.damaged.then_some("damaged")] {
                        td { (when(s.finished_us, now)) }
                        td.id { (s.id[..12.min(s.id.len())]) @if s.damaged { " " strong { "DAMAGED" } } }
                        td { (bytes(s.bytes)) }
                        td { @match s.added_bytes { Some(a) => { (bytes(a)) }, None => { "-" } } }
                        td { (s.host) }
                        td { (s.tags.join(", ")) }
                        td { ul.streams { @for st in &s.streams {
                            li { code { (st.name) } " " (bytes(st.bytes))
                                @if let Some(f) = &st.dump { " (" (f) ")" }
                                @if let Some(c) = &st.command { br; code.command { (c) } } }
                        } } }
                    }
                }
            }
        }
        @if d.snapshots.len() > 500 { p { "The oldest " (d.snapshots.len() - 500) " are listed by " code { "/api/v1/names/" (name) } "." } }
        h2 { "Runs (" (d.runs.len()) ")" }
        (runs_table(d.runs.iter().take(200), now))
        h2 { "Drills (" (d.drills.len()) ")" }
        table.drills {
            thead { tr { th { "Finished" } th { "Snapshot" } th { "Stream" } th { "Outcome" } th { "Seconds" } } }
            tbody { @for r in d.drills.iter().take(200) {
                tr { td { (when(r.finished_us, now)) } td.id { (r.snapshot[..12.min(r.snapshot.len())]) } td { (r.stream) }
                     td { @if r.ok { "restored" } @else { "FAILED: " (r.error) } } td { (format!("{:.1}", r.seconds)) } }
            } }
        }
    };
    layout(name, Some(now), failure, session, body)
}

fn runs_table<'a>(runs: impl Iterator<Item = &'a RunRow>, now: i64) -> Markup {
    html! {
        table.runs {
            thead { tr { th { "Finished" } th { "Kind" } th { "Outcome" } th { "Added" } th { "Host" } th { "Error" } } }
            tbody { @for r in runs {
                tr class=[(!r.ok).then_some("failed")] {
                    td { (when(r.finished_us, now)) } td { (r.kind) }
                    td { @if r.ok { "ok" } @else { "FAILED (exit " (r.exit_code) ")" } }
                    td { (bytes(r.bytes_added)) } td { (r.host) } td.error { (r.error) }
                }
            } }
        }
    }
}

pub fn repository_page(v: &View, failure: Option<&Failure>, session: Option<&Session>) -> Markup {
    let r = &v.repository;
    let now = v.refreshed_us;
    let ratio = if r.stored_bytes > 0 { r.logical_bytes as f64 / r.stored_bytes as f64 } else { 0.0 };
    let body = html! {
        h1 { "Repository" }
        dl.repository {
            dt { "Snapshots" } dd.snapshots { (r.snapshots) @if r.damaged_snapshots > 0 { ", " strong { (r.damaged_snapshots) " marked damaged" } } }
            dt { "Logical bytes" } dd.logical { (bytes(r.logical_bytes)) }
            dt { "Stored bytes" } dd.stored { (bytes(r.stored_bytes)) " in " (r.packs) " packs" }
            dt { "Logical / stored" } dd.ratio { (format!("{ratio:.2}")) "x" }
            dt { "Run records" } dd { (r.run_records) @if r.damaged_run_records > 0 { ", " strong { (r.damaged_run_records) " did not open" } } }
            dt { "Last gc" } dd.last-gc { @match &r.last_gc { Some(g) => { (when(g.finished_us, now)) ": " (if g.ok { "ok" } else { "FAILED" }) }, None => { "never" } } }
            dt { "Last check" } dd.last-check { @match &r.last_check { Some(c) => { (when(c.finished_us, now)) ": " (if c.ok { "ok".to_string() } else { format!("FAILED: {}", c.error) }) }, None => { "never" } } }
        }
    };
    layout("Repository", Some(now), failure, session, body)
}

/// The login form (users of `--auth-file`); `message` says why the last try failed.
pub fn login(csrf: &str, message: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Log in" }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        form.login method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            p { label { "User " input type="text" name="user" autocomplete="username" required; } }
            p { label { "Password " input type="password" name="password" autocomplete="current-password" required; } }
            p { button type="submit" { "Log in" } }
        }
    };
    layout("Log in", None, None, None, body)
}

pub fn not_found(what: &str) -> Markup {
    layout("Not found", None, None, None, html! { h1 { "Not found" } p { (what) } p { a href="/" { "Overview" } } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_segments() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_572_864), "1.5 MiB");
        assert_eq!(segment("shop db/x"), "shop%20db%2Fx");
        assert_eq!(segment("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn a_hostile_name_is_escaped_everywhere_and_no_page_has_a_script() {
        let name = "<script>alert(1)</script>";
        let mut v = View {
            refreshed_us: 1_000_000,
            state: State::Never,
            jobs: vec![],
            names: Default::default(),
            repository: Default::default(),
        };
        v.names.insert(name.into(), NameDetail::default());
        let page = name_page(&v, name, &v.names[name], Some(&Failure { since_us: 0, error: name.into() }), None);
        let text = page.into_string();
        assert!(!text.to_ascii_lowercase().contains("<script"), "{text}");
        assert!(text.contains("&lt;script&gt;"), "{text}");
        assert!(!overview(&v, None, None, None).into_string().contains("<script"));
    }
}
