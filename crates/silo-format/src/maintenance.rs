//! Small objects that coordinate maintenance (format-spec/maintenance.md): stored retention policies
//! (`policies/<id>`), the gc lease (`gc/lease`), writer sessions (`sessions/<id>`), damage marks, drill records
//! and run records (`runs/<id>`).

pub use crate::sealed::Sealed;
use crate::{ObjectId, ObjectKind};
use bincode::{Decode, Encode};

pub const MAINTENANCE_VERSION: u32 = 1;

/// Counts of periods to keep; `None` means the rule is not used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    /// Seconds before the newest snapshot of the group.
    pub within: Option<u64>,
}

impl std::fmt::Display for Policy {
    /// As the flags that set it: `keep-last 3, keep-daily 7, keep-within 86400s`; `no rules` when empty.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<String> = [
            ("keep-last", self.last),
            ("keep-hourly", self.hourly),
            ("keep-daily", self.daily),
            ("keep-weekly", self.weekly),
            ("keep-monthly", self.monthly),
            ("keep-yearly", self.yearly),
        ]
        .iter()
        .filter_map(|(flag, n)| n.map(|n| format!("{flag} {n}")))
        .chain(self.within.map(|s| format!("keep-within {s}s")))
        .collect();
        if rules.is_empty() {
            return f.write_str("no rules");
        }
        f.write_str(&rules.join(", "))
    }
}

/// The retention policy of one snapshot name; the newest `set_at` per name wins.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredPolicy {
    pub version: u32,
    pub name: String,
    pub policy: Policy,
    pub set_at: i64,
}

/// Held by the one gc allowed to run; valid until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Lease {
    pub version: u32,
    pub holder: ObjectId,
    pub host: String,
    pub pid: u32,
    pub acquired_at: i64,
    pub expires_at: i64,
}

/// A writer session in progress; `heartbeat_at` is refreshed while it runs.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Session {
    pub version: u32,
    pub host: String,
    pub pid: u32,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

impl Sealed for StoredPolicy {
    const KIND: ObjectKind = ObjectKind::Policy;
    const WHAT: &'static str = "policy";
    const VERSION: u32 = MAINTENANCE_VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

impl Sealed for Lease {
    const KIND: ObjectKind = ObjectKind::Lease;
    const WHAT: &'static str = "gc lease";
    const VERSION: u32 = MAINTENANCE_VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

impl Sealed for Session {
    const KIND: ObjectKind = ObjectKind::Session;
    const WHAT: &'static str = "session";
    const VERSION: u32 = MAINTENANCE_VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

/// `repair snapshots` found that this snapshot's data is (partly) gone. The manifest itself is kept.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DamageMark {
    pub version: u32,
    pub snapshot: ObjectId,
    pub found_at: i64,
    pub reason: String,
}

impl Sealed for DamageMark {
    const KIND: ObjectKind = ObjectKind::DamageMark;
    const WHAT: &'static str = "damage mark";
    const VERSION: u32 = MAINTENANCE_VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

/// One restore drill: a snapshot's stream restored into a command, timed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DrillRecord {
    pub version: u32,
    pub snapshot: ObjectId,
    pub stream: String,
    pub command: Vec<String>,
    pub host: String,
    pub started: i64,
    pub finished: i64,
    pub bytes: u64,
    pub exit_status: Option<i32>,
    pub ok: bool,
    /// Empty when `ok`.
    pub error: String,
}

impl Sealed for DrillRecord {
    const KIND: ObjectKind = ObjectKind::Drill;
    const WHAT: &'static str = "drill record";
    const VERSION: u32 = MAINTENANCE_VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

/// What a run record is of: a `silo run` of a job, one command, or the notifications of `silo status --notify`.
pub const RUN_KINDS: [&str; 8] = ["run", "create", "copy", "forget", "gc", "check", "drill", "status"];
/// Longest error line a run record keeps (bytes); longer ones are cut at a character boundary.
pub const RUN_ERROR_MAX: usize = 1024;

/// A word of a fixed set, stored as its string (format-spec/maintenance.md "runs": the bytes are the string's);
/// a word outside the set decodes as `Unknown` and fails the record's validation.
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A word this version does not know (the record does not validate).
            Unknown(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Unknown(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text => $name::$variant,)*
                    other => $name::Unknown(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Encode for $name {
            fn encode<E: bincode::enc::Encoder>(&self, encoder: &mut E) -> Result<(), bincode::error::EncodeError> {
                self.as_str().encode(encoder)
            }
        }

        impl<Context> Decode<Context> for $name {
            fn decode<D: bincode::de::Decoder<Context = Context>>(
                decoder: &mut D,
            ) -> Result<Self, bincode::error::DecodeError> {
                Ok($name::from(String::decode(decoder)?.as_str()))
            }
        }

        bincode::impl_borrow_decode!($name);
    };
}

string_enum! {
    /// What a run record is of (`RUN_KINDS`).
    RunKind {
        /// A `silo run` of a job.
        Run = "run",
        Create = "create",
        Copy = "copy",
        Forget = "forget",
        Gc = "gc",
        Check = "check",
        Drill = "drill",
        /// The notifications of `silo status --notify`.
        Status = "status",
    }
}

string_enum! {
    /// How a step of a run ended.
    StepOutcome {
        Ok = "ok",
        Failed = "failed",
        Skipped = "skipped",
    }
}

/// One step of a `silo run` (create, copy, forget, check, drill, notify).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RunStep {
    pub step: String,
    pub outcome: StepOutcome,
    /// Empty unless failed (one line, never a secret).
    pub error: String,
}

/// A record of one run, successful or failed (format-spec/maintenance.md "runs").
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RunRecord {
    pub version: u32,
    pub kind: RunKind,
    /// The job (for `run`) or snapshot name; empty for repository-wide commands (gc, check).
    pub job: String,
    pub host: String,
    pub started: i64,
    pub finished: i64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    /// The snapshot the run made, if any.
    pub snapshot: Option<ObjectId>,
    pub ok: bool,
    /// The process exit code the run's outcome maps to (0 when ok).
    pub exit_code: u8,
    /// Empty when `ok`.
    pub error: String,
    pub steps: Vec<RunStep>,
}

impl RunRecord {
    /// A record of a successful run that read, added and made nothing, and had no steps; the caller sets what
    /// the run did and, with `outcome`, how it ended.
    pub fn new(kind: RunKind, job: impl Into<String>, host: impl Into<String>, started: i64, finished: i64) -> Self {
        RunRecord {
            version: MAINTENANCE_VERSION,
            kind,
            job: job.into(),
            host: host.into(),
            started,
            finished,
            bytes_read: 0,
            bytes_added: 0,
            snapshot: None,
            ok: true,
            exit_code: 0,
            error: String::new(),
            steps: Vec::new(),
        }
    }

    /// The run ended with `exit_code` (0: ok) and `error` (one line, empty when ok).
    pub fn outcome(mut self, exit_code: u8, error: String) -> Self {
        self.ok = exit_code == 0;
        self.exit_code = exit_code;
        self.error = error;
        self
    }
}

impl Sealed for RunRecord {
    const KIND: ObjectKind = ObjectKind::Run;
    const WHAT: &'static str = "run record";
    const VERSION: u32 = MAINTENANCE_VERSION;
    fn version(&self) -> u32 {
        self.version
    }

    fn validate(&self) -> Result<(), crate::FormatError> {
        let bad = |why: String| Err(crate::FormatError::malformed("run record", why));
        if let RunKind::Unknown(_) = self.kind {
            return bad(format!("unknown kind {:?}", self.kind.as_str()));
        }
        if self.finished < self.started {
            return bad("finishes before it starts".into());
        }
        if self.ok != (self.exit_code == 0) {
            return bad("outcome and exit code disagree".into());
        }
        if self.error.len() > RUN_ERROR_MAX || self.steps.iter().any(|s| s.error.len() > RUN_ERROR_MAX) {
            return bad("error line too long".into());
        }
        if let Some(s) = self.steps.iter().find(|s| matches!(s.outcome, StepOutcome::Unknown(_))) {
            return bad(format!("step {:?} has outcome {:?}", s.step, s.outcome.as_str()));
        }
        Ok(())
    }
}

/// `text` cut to at most `RUN_ERROR_MAX` bytes at a character boundary, on one line.
pub fn run_error_line(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut end = one_line.len().min(RUN_ERROR_MAX);
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    one_line[..end].to_string()
}
