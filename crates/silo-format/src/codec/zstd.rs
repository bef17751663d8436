//! zstd with one reused context per thread (creating one per chunk cost ~4% of a restore), and bounded
//! decompression.

use crate::FormatError;
use std::io::Read;

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub(crate) fn compress(payload: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        slot.as_mut()?.1.compress(payload).ok()
    })
}

/// One zstd frame that must decompress to exactly `len` bytes (a columns stream).
pub(crate) fn decompress_exact(data: &[u8], len: usize) -> Result<Vec<u8>, FormatError> {
    let out = decompress_bounded(data, len)?;
    if out.len() != len {
        return Err(FormatError::Decompress(format!("{} bytes where {len} were recorded", out.len())));
    }
    Ok(out)
}

pub(crate) fn decompress_bounded(data: &[u8], max_len: usize) -> Result<Vec<u8>, FormatError> {
    // Small bounds (every chunk): one-shot into a buffer of exactly the bound. Large bounds (manifests):
    // streaming, so a small body does not reserve the whole bound.
    if max_len <= 16 << 20 {
        return DECOMPRESSOR.with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| FormatError::Decompress(e.to_string()))?);
            }
            match slot.as_mut() {
                Some(d) => d.decompress(data, max_len).map_err(|e| FormatError::Decompress(e.to_string())),
                None => Err(FormatError::Decompress("no zstd context".into())),
            }
        });
    }
    let decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(|e| FormatError::Decompress(e.to_string()))?;
    let mut out = Vec::new();
    decoder.take(max_len as u64 + 1).read_to_end(&mut out).map_err(|e| FormatError::Decompress(e.to_string()))?;
    if out.len() > max_len {
        return Err(FormatError::Decompress(format!("payload exceeds {max_len} bytes")));
    }
    Ok(out)
}
