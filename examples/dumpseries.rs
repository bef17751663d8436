//! A deterministic series of daily SQL dumps without a database, for the end-to-end comparison
//! (benches/compare.sh): `dumpseries SIZE DAY [churn|append]` writes day DAY of a table that dumps to about
//! SIZE bytes on day 0 (e.g. 536M: the 562 MB of issue 7's measurements).
//!
//! - churn: every day 0.01% of all rows are updated (scattered corrections), the newest 2% of the rows are
//!   updated (recent orders being processed), the oldest 0.2% deleted (purged) and 0.5% appended;
//! - append: every day 2% new rows are appended and nothing else changes (logs, orders, events).
//!
//! Scattered updates of a fixed fraction of all rows would change every chunk of any size at 1% (a
//! 256 KiB chunk holds ~2000 rows), which is not how databases churn and would measure nothing.
//!
//! Row content is a pure function of (row id, number of updates so far), so any day can be generated alone.

#[path = "../tests/util/dumpgen.rs"]
#[allow(dead_code)]
mod dumpgen;

use std::io::Write;

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: a good hash of one 64-bit word.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether event `kind` happens to `row` on `day`, with probability `per_10k` / 10000.
fn happens(row: u64, day: u64, kind: u64, per_10k: u64) -> bool {
    mix(row ^ day.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ kind.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)) % 10_000 < per_10k
}

/// Per 10000 rows (of day 0) a day.
struct Rates {
    /// Scattered updates.
    update: u64,
    /// The newest rows updated each day.
    hot: u64,
    /// The oldest rows deleted each day.
    purge: u64,
    append: u64,
}

fn row(out: &mut Vec<u8>, id: u64, version: u64) {
    let a = mix(id.wrapping_mul(31).wrapping_add(version));
    let b = mix(a);
    let c = mix(b);
    let _ = writeln!(
        out,
        "{id}\tcustomer-{:08x}\t{}.{:02}\t2026-{:02}-{:02} {:02}:{:02}:{:02}\t{{\"sku\": \"{:016x}\", \"qty\": {}, \"v\": {version}}}\t{}",
        (id * 2_654_435_761) >> 8 & 0xffff_ffff,
        b % 100_000,
        b % 100,
        1 + c % 12,
        1 + c % 28,
        c % 24,
        a % 60,
        b % 60,
        c,
        a % 17,
        if a.is_multiple_of(5) { "shipped" } else { "open" }
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(size), Some(day)) =
        (args.first().and_then(|s| dumpgen::parse_size(s)), args.get(1).and_then(|d| d.parse::<u64>().ok()))
    else {
        eprintln!("usage: dumpseries SIZE[K|M|G] DAY [churn|append]");
        std::process::exit(2);
    };
    let rates = match args.get(2).map(String::as_str).unwrap_or("churn") {
        "churn" => Rates { update: 1, hot: 200, purge: 20, append: 50 },
        "append" => Rates { update: 0, hot: 0, purge: 0, append: 200 },
        other => {
            eprintln!("dumpseries: unknown variant {other:?} (churn or append)");
            std::process::exit(2);
        }
    };
    let base_rows = (size / 107).max(1); // a row dumps to ~107 bytes
    let appended_per_day = base_rows * rates.append / 10_000;
    let purged_per_day = base_rows * rates.purge / 10_000;
    let hot_rows = base_rows * rates.hot / 10_000;
    let rows = base_rows + day * appended_per_day;
    // Rows alive at the end of day d: (purged(d), total(d)]; the hot ones are the newest `hot_rows` of them.
    let total = |d: u64| base_rows + d * appended_per_day;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::with_capacity(1 << 20);
    let _ = writeln!(
        buf,
        "--\n-- PostgreSQL database dump (generated: silo dumpseries, day {day})\n--\n\n\
         CREATE TABLE public.orders (id bigint PRIMARY KEY, customer text, amount numeric, placed_at timestamp,\n    \
         item jsonb, state text);\n\nCOPY public.orders (id, customer, amount, placed_at, item, state) FROM stdin;"
    );
    for id in day * purged_per_day + 1..=rows {
        // The day the row was born (day 0 for the original rows), then its history up to `day`.
        let born = if id <= base_rows { 0 } else { (id - base_rows - 1) / appended_per_day.max(1) + 1 };
        let mut version = 0;
        for d in born + 1..=day {
            let hot = id + hot_rows > total(d);
            if hot || (rates.update > 0 && happens(id, d, 1, rates.update)) {
                version += 1;
            }
        }
        row(&mut buf, id, version);
        if buf.len() >= 1 << 20 {
            if out.write_all(&buf).is_err() {
                std::process::exit(1);
            }
            buf.clear();
        }
    }
    buf.extend_from_slice(b"\\.\n\n--\n-- PostgreSQL database dump complete\n--\n");
    if out.write_all(&buf).is_err() {
        std::process::exit(1);
    }
}
