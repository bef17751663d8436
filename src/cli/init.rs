//! `silo init`: creates a repository.

use super::context::Invocation;
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;
use silo::format::chunker::ChunkerParams;
use silo::format::keyfile::KdfParams;
use silo::repo::{InitOptions, Repository};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// argon2id memory in KiB.
    #[arg(long, default_value_t = KdfParams::DEFAULT.memory_kib)]
    kdf_memory: u32,
    /// argon2id passes.
    #[arg(long, default_value_t = KdfParams::DEFAULT.iterations)]
    kdf_iterations: u32,
    /// argon2id lanes (computed in parallel on the machine's cores).
    #[arg(long, default_value_t = KdfParams::DEFAULT.parallelism)]
    kdf_parallelism: u32,
    /// Minimum chunk size in bytes.
    #[arg(long, default_value_t = ChunkerParams::DEFAULT.min_size)]
    chunk_min: u32,
    /// Average chunk size in bytes.
    #[arg(long, default_value_t = ChunkerParams::DEFAULT.avg_size)]
    chunk_avg: u32,
    /// Maximum chunk size in bytes.
    #[arg(long, default_value_t = ChunkerParams::DEFAULT.max_size)]
    chunk_max: u32,
    /// Pack size a writer aims for, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pack_size: u32,
    /// zstd level for chunks (1-22). 3 halves a pgbench dump's first snapshot against 1 (below borg's) and
    /// costs 3-5% on other dumps (docs/benchmarks.md); delta chunks use at least 5.
    #[arg(long, default_value_t = 3)]
    compression: i32,
    /// gc never touches a pack younger than this many seconds.
    #[arg(long, default_value_t = 86_400)]
    gc_safety_age: u64,
    /// Seconds between gc marking a pack deleted and deleting it.
    #[arg(long, default_value_t = 86_400)]
    gc_grace_period: u64,
    /// Let the directory's group read the repository (files 0640, directories 0750; recorded as the mode of
    /// `config`). Without it every file silo creates is 0600 and every directory 0700. Local directories only.
    #[arg(long)]
    group_readable: bool,
}

#[derive(Serialize)]
struct Created {
    location: String,
    repository_id: String,
}

impl Report for Created {
    fn human(&self) -> Result<()> {
        say!("created repository {} at {}", self.repository_id, self.location);
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let backend = silo::backend::open_for_init(ctx.location()?, a.group_readable)?;
    let password = ctx.password(true)?;
    if password.is_empty() {
        anyhow::bail!("refusing an empty password");
    }
    let options = InitOptions {
        kdf: KdfParams { memory_kib: a.kdf_memory, iterations: a.kdf_iterations, parallelism: a.kdf_parallelism },
        chunker: ChunkerParams { min_size: a.chunk_min, avg_size: a.chunk_avg, max_size: a.chunk_max },
        pack_target_size: a.pack_size,
        compression_level: a.compression,
        gc_safety_age: a.gc_safety_age,
        gc_grace_period: a.gc_grace_period,
    };
    let id = ctx.rt.block_on(Repository::init(backend.clone(), &password, &options))?;
    emit(&Created { location: backend.location(), repository_id: id.to_hex() }, ctx.json())
}
