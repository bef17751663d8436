//! Writes SIZE bytes of deterministic SQL-dump-like text to stdout, for benchmarks:
//! `cargo run --release --example gendump -- 10G [SEED]`. Nothing is stored in git.

#[path = "../tests/util/dumpgen.rs"]
#[allow(dead_code)]
mod dumpgen;

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(size) = args.first().and_then(|s| dumpgen::parse_size(s)) else {
        eprintln!("usage: gendump SIZE[K|M|G] [SEED]");
        std::process::exit(2);
    };
    let seed = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut gen = dumpgen::DumpGen::new(seed);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut left = size;
    while left > 0 {
        buf.clear();
        while buf.len() < 1 << 20 {
            gen.line(&mut buf);
        }
        buf.truncate(left.min(buf.len() as u64) as usize);
        if out.write_all(&buf).is_err() {
            std::process::exit(1);
        }
        left -= buf.len() as u64;
    }
}
