//! The tests' fault-injecting proxy (tests/util/faultproxy.rs) as a program, for benches/latency.sh:
//! `latency_proxy UPSTREAM_PORT DELAY_MS` listens on a free loopback port, prints it, and forwards every
//! request to 127.0.0.1:UPSTREAM_PORT after DELAY_MS — the same added latency for every tool measured.

#[path = "../tests/util/faultproxy.rs"]
#[allow(dead_code)]
mod faultproxy;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(upstream), Some(delay)) =
        (args.get(1).and_then(|a| a.parse().ok()), args.get(2).and_then(|a| a.parse::<u64>().ok()))
    else {
        eprintln!("usage: latency_proxy UPSTREAM_PORT DELAY_MS");
        std::process::exit(2);
    };
    let proxy = faultproxy::FaultProxy::start(upstream);
    if delay > 0 {
        let forever = Duration::from_secs(365 * 86_400);
        proxy.add(faultproxy::Rule::for_time(faultproxy::Fault::Delay(Duration::from_millis(delay)), forever));
    }
    println!("{}", proxy.port);
    loop {
        std::thread::park();
    }
}
