//! The seed lottery (issue 33): how a dump is cut depends on the repository's secret chunker seed. For each
//! file given, cuts it with 20 seeds by rule 1 (FastCDC 2020 exactly: format 1 repositories) and rule 2 (no
//! chunk ends inside a run of one byte: repositories made since config body version 2), and prints the
//! fewest, median and most chunks and the mean chunk size. `benches/seed_lottery.sh` runs it on pgbench
//! and sysbench dumps.
//!
//!     cargo bench --bench seed_lottery -- FILE...
use silo_format::chunker::{ChunkerParams, RULE_FASTCDC, RULE_SKIP_RUNS};

fn main() {
    let files: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if files.is_empty() {
        eprintln!("usage: cargo bench --bench seed_lottery -- FILE...");
        std::process::exit(2);
    }
    let p = ChunkerParams::DEFAULT;
    for file in files {
        let data = match std::fs::read(&file) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{file}: {e}");
                std::process::exit(1);
            }
        };
        for (rule, name) in [(RULE_FASTCDC, "rule 1 (FastCDC)"), (RULE_SKIP_RUNS, "rule 2 (runs skipped)")] {
            let mut counts: Vec<usize> = (0..20u64)
                .map(|i| p.cut_points_by(&data, 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i + 1), rule).len())
                .collect();
            counts.sort_unstable();
            let mean = |n: usize| data.len() / n.max(1) / 1024;
            println!(
                "{file}: {name}: chunks over 20 seeds min {} median {} max {} (mean size {}..{} KiB), max/min {:.2}",
                counts[0],
                counts[10],
                counts[19],
                mean(counts[19]),
                mean(counts[0]),
                counts[19] as f64 / counts[0].max(1) as f64
            );
        }
    }
}
