//! The columns codec (envelope codec 0x02): arbitrary payloads must decode to an error or to at most the
//! bound, never panic; and any input the encoder accepts must decode back to itself. Random bytes seldom
//! look like tab-separated rows, so the input is also reshaped into rows (mostly of one field count, with
//! stray tabs and newlines kept) to drive the encoder; when the first byte's high bit is set, field bytes
//! become digits and minus signs, so integer columns (version 2, stored as differences) are exercised, with
//! non-canonical fields (leading zeros, `-0`, values past 64 bits) among them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::columns;

fn round_trip(data: &[u8]) {
    if let Some(payload) = columns::encode(data, 1) {
        assert_eq!(columns::decode(&payload, data.len()).ok().as_deref(), Some(data));
    }
    if let Some(payload) = columns::encode_v1(data, 1) {
        assert_eq!(payload[0], columns::COLUMNS_VERSION_1);
        assert_eq!(columns::decode(&payload, data.len()).ok().as_deref(), Some(data));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = columns::decode(data, 1 << 20) {
        assert!(out.len() <= 1 << 20);
    }
    round_trip(data);
    let Some((&first, rest)) = data.split_first() else { return };
    let fields = 2 + usize::from(first % 6);
    let mut rows = Vec::with_capacity(rest.len() * 2);
    let mut field = 0;
    for &b in rest {
        if b >= 0xf0 {
            field += 1;
            rows.push(if field % fields == 0 { b'\n' } else { b'\t' });
        } else if first & 0x80 != 0 {
            rows.push(if b % 23 == 0 { b'-' } else { b'0' + b % 10 });
        } else {
            rows.push(b);
        }
    }
    round_trip(&rows);
});
