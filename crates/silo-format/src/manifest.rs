//! Snapshot manifests: what a snapshot is (name, host, tags, times) and, per stream, the ordered chunk list,
//! byte count, whole-stream BLAKE3, the producing command with its exit status and, from version 2, what
//! silo recognised and checked in the stream (a dump record) (format-spec/manifest.md).

use crate::{encoding, Aad, FormatError, Keys, ObjectId, ObjectKind, RepoId, Sealed};
use bincode::{Decode, Encode};

/// The newest manifest version. Writers use version 1 when no stream carries a dump record, so a snapshot of
/// unrecognised streams stays readable by silo versions that know only version 1.
pub const MANIFEST_VERSION: u32 = 2;

/// `DumpRecord.format` values: which tool's output a stream was recognised as.
pub mod dump_format {
    pub const PG_DUMP_PLAIN: u8 = 1;
    pub const PG_DUMP_CUSTOM: u8 = 2;
    pub const PG_DUMP_TAR: u8 = 3;
    pub const PG_DUMPALL: u8 = 4;
    pub const MYSQLDUMP: u8 = 5;
    pub const SQLITE_DUMP: u8 = 6;
    pub const SQLITE_FILE: u8 = 7;
    pub const REDIS_RDB: u8 = 8;
    pub const LDIF: u8 = 9;
    pub const LAST: u8 = LDIF;

    /// The name `snapshot show` and `--json` use.
    pub fn name(format: u8) -> &'static str {
        match format {
            PG_DUMP_PLAIN => "pg_dump (plain SQL)",
            PG_DUMP_CUSTOM => "pg_dump (custom archive)",
            PG_DUMP_TAR => "pg_dump (tar archive)",
            PG_DUMPALL => "pg_dumpall",
            MYSQLDUMP => "mysqldump",
            SQLITE_DUMP => "sqlite3 .dump",
            SQLITE_FILE => "SQLite database file",
            REDIS_RDB => "Redis RDB",
            LDIF => "LDIF",
            _ => "unknown",
        }
    }
}

/// One table seen in a dump: its rows (when the format shows them without decompressing) and bytes of data.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TableStat {
    /// Qualified as the dump names it: `schema.table`, `database.table`, or `database.schema.table` for
    /// pg_dumpall.
    pub name: String,
    pub rows: Option<u64>,
    pub bytes: u64,
}

/// What silo recognised in a stream while storing it, and what it checked (manifest version 2).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DumpRecord {
    /// One of `dump_format`.
    pub format: u8,
    /// The producing tool's version as the dump states it (empty when it does not).
    pub tool_version: String,
    /// `None`: every check passed. `Some(problem)`: the stream failed validation and was committed anyway
    /// (`--accept-invalid`); the problem as reported then.
    pub invalid: Option<String>,
    /// Entries seen: archive TOC entries, LDIF entries, Redis keys, SQLite pages; 0 where not counted.
    pub entries: u64,
    pub tables: Vec<TableStat>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamManifest {
    pub name: String,
    /// argv of the command silo ran to produce the stream; `None` for standard input.
    pub command: Option<Vec<String>>,
    /// The command's exit code (always 0 in a committed snapshot; kept for the record).
    pub exit_status: Option<i32>,
    pub size: u64,
    /// Unkeyed BLAKE3 of the whole stream, so a user can compare with `b3sum` of the original.
    pub blake3: [u8; 32],
    pub chunks: Vec<ObjectId>,
    /// Version 2: what the stream was recognised as and what was checked; `None` for an unrecognised stream
    /// or one stored with validation off (and for every stream of a version 1 manifest).
    pub dump: Option<DumpRecord>,
}

/// Version 1 of `StreamManifest` as encoded: version 2 without `dump`.
#[derive(Encode, Decode)]
struct StreamManifestV1 {
    name: String,
    command: Option<Vec<String>>,
    exit_status: Option<i32>,
    size: u64,
    blake3: [u8; 32],
    chunks: Vec<ObjectId>,
}

#[derive(Encode, Decode)]
struct SnapshotManifestV1 {
    version: u32,
    name: String,
    host: String,
    tags: Vec<String>,
    started: i64,
    finished: i64,
    silo_version: String,
    streams: Vec<StreamManifestV1>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SnapshotManifest {
    pub version: u32,
    pub name: String,
    pub host: String,
    pub tags: Vec<String>,
    /// Microseconds since the Unix epoch, UTC.
    pub started: i64,
    pub finished: i64,
    pub silo_version: String,
    pub streams: Vec<StreamManifest>,
}

impl SnapshotManifest {
    pub fn total_size(&self) -> u64 {
        self.streams.iter().map(|s| s.size).sum()
    }

    /// The version a writer gives this manifest: 2 when a stream carries a dump record, else 1.
    pub fn version_needed(&self) -> u32 {
        if self.streams.iter().any(|s| s.dump.is_some()) {
            2
        } else {
            1
        }
    }

    /// The body encoding of this manifest's version (a version 1 manifest has no `dump` fields).
    pub fn encode_body(&self) -> Vec<u8> {
        if self.version != 1 {
            return encoding::encode(self);
        }
        encoding::encode(&SnapshotManifestV1 {
            version: 1,
            name: self.name.clone(),
            host: self.host.clone(),
            tags: self.tags.clone(),
            started: self.started,
            finished: self.finished,
            silo_version: self.silo_version.clone(),
            streams: self
                .streams
                .iter()
                .map(|s| StreamManifestV1 {
                    name: s.name.clone(),
                    command: s.command.clone(),
                    exit_status: s.exit_status,
                    size: s.size,
                    blake3: s.blake3,
                    chunks: s.chunks.clone(),
                })
                .collect(),
        })
    }
}

impl Sealed for SnapshotManifest {
    const KIND: ObjectKind = ObjectKind::Snapshot;
    const WHAT: &'static str = "snapshot manifest";
    const VERSION: u32 = MANIFEST_VERSION;
    const COMPRESSION: Option<i32> = Some(3);
    const MAX_BODY: usize = encoding::MAX_BODY;

    fn version(&self) -> u32 {
        self.version
    }

    fn seal(&self, keys: &Keys, repo: RepoId, id: ObjectId, nonce: [u8; 12]) -> Vec<u8> {
        let key = keys.object_key(Self::KIND, &id);
        crate::envelope::seal(&key, &Aad::new(repo, Self::KIND, id), &self.encode_body(), Self::COMPRESSION, nonce)
    }

    fn decode_body(body: &[u8]) -> Result<Self, FormatError> {
        let version = body.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let m = match version {
            Some(1) => {
                let v1: SnapshotManifestV1 = encoding::decode(Self::WHAT, body)?;
                SnapshotManifest {
                    version: 1,
                    name: v1.name,
                    host: v1.host,
                    tags: v1.tags,
                    started: v1.started,
                    finished: v1.finished,
                    silo_version: v1.silo_version,
                    streams: v1
                        .streams
                        .into_iter()
                        .map(|s| StreamManifest {
                            name: s.name,
                            command: s.command,
                            exit_status: s.exit_status,
                            size: s.size,
                            blake3: s.blake3,
                            chunks: s.chunks,
                            dump: None,
                        })
                        .collect(),
                }
            }
            Some(MANIFEST_VERSION) => encoding::decode(Self::WHAT, body)?,
            Some(found) => {
                return Err(FormatError::UnsupportedVersion { what: Self::WHAT, found, supported: MANIFEST_VERSION })
            }
            None => return Err(FormatError::Truncated { needed: 4, have: body.len() }),
        };
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), FormatError> {
        if self.streams.is_empty() {
            return Err(FormatError::malformed("snapshot manifest", "no streams"));
        }
        for s in &self.streams {
            let Some(d) = &s.dump else { continue };
            if d.format == 0 || d.format > dump_format::LAST {
                return Err(FormatError::malformed(
                    "snapshot manifest",
                    format!("stream {}: unknown dump format {}", s.name, d.format),
                ));
            }
        }
        Ok(())
    }
}
