//! Small objects that coordinate maintenance (format-spec/maintenance.md): stored retention policies
//! (`policies/<id>`), the gc lease (`gc/lease`) and writer sessions (`sessions/<id>`).

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
