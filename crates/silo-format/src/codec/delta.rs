//! Codec `0x03`, delta (format-spec/delta.md): a chunk stored as the difference from another stored chunk,
//! its *base*. The payload is `base id (32) || depth (1) || one zstd frame` compressed with the base's
//! plaintext as a raw-content prefix (what `zstd --patch-from` does), so the frame holds little more than
//! what changed. The header sits inside the envelope's AES-GCM plaintext: the base a delta names is
//! authenticated with the chunk's own key and id (a moved or edited header fails authentication).
//!
//! Invariant upheld here: a delta is decodable only with the exact base plaintext (the caller checks the
//! base's id by re-hashing it like any chunk, and the result's id by re-hashing it again), and decoding never
//! produces more than the bound the caller gives (the chunk's `raw_len`).

use crate::{FormatError, ObjectId};

/// The codec id in the envelope's plaintext.
pub const DELTA_CODEC: u8 = 3;
/// The deepest chain the format allows: a delta of depth `d` has a base of depth `d - 1`, and depth 0 is a
/// whole chunk. Readers refuse anything deeper, so a restore reads at most this many bases per chunk.
pub const MAX_DEPTH: u8 = 32;
/// Bytes before the zstd frame: base id and depth.
pub const HEADER_LEN: usize = 33;

/// What a delta payload's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaHeader {
    pub base: ObjectId,
    /// 1 when the base is a whole chunk; one more than the base's depth otherwise.
    pub depth: u8,
}

/// zstd contexts used with a referenced prefix. zstd-safe ties a context's lifetime to a referenced prefix,
/// which rules out reusing one context per thread (creating one per chunk costs a fresh workspace each
/// time), so this wraps the few zstd calls it needs directly. Every call resets the context before and
/// after use, so no reference to a prefix outlives the call that made it.
mod raw {
    use zstd::zstd_safe::zstd_sys as sys;

    pub struct Compressor(*mut sys::ZSTD_CCtx);
    pub struct Decompressor(*mut sys::ZSTD_DCtx);

    fn check(code: usize) -> Result<usize, String> {
        // SAFETY: ZSTD_isError and ZSTD_getErrorName take any value and return a static C string.
        unsafe {
            if sys::ZSTD_isError(code) != 0 {
                let name = std::ffi::CStr::from_ptr(sys::ZSTD_getErrorName(code));
                return Err(name.to_string_lossy().into_owned());
            }
        }
        Ok(code)
    }

    impl Compressor {
        pub fn new() -> Option<Self> {
            // SAFETY: creating a context has no preconditions; null means out of memory.
            let p = unsafe { sys::ZSTD_createCCtx() };
            (!p.is_null()).then_some(Compressor(p))
        }

        /// One frame of `data` with `prefix` as raw-content dictionary, appended to `out`.
        pub fn compress(
            &mut self,
            out: &mut Vec<u8>,
            data: &[u8],
            prefix: &[u8],
            level: i32,
            window_log: u32,
        ) -> Result<(), String> {
            use sys::ZSTD_cParameter::*;
            let result = (|| {
                // SAFETY: self.0 is a live context owned by self; `prefix` and `data` outlive these calls, and
                // the context is reset below before they return, so it keeps no pointer into them.
                unsafe {
                    check(sys::ZSTD_CCtx_reset(self.0, sys::ZSTD_ResetDirective::ZSTD_reset_session_and_parameters))?;
                    check(sys::ZSTD_CCtx_setParameter(self.0, ZSTD_c_compressionLevel, level))?;
                    check(sys::ZSTD_CCtx_setParameter(self.0, ZSTD_c_windowLog, window_log as i32))?;
                    check(sys::ZSTD_CCtx_setParameter(self.0, ZSTD_c_contentSizeFlag, 1))?;
                    check(sys::ZSTD_CCtx_setParameter(self.0, ZSTD_c_checksumFlag, 0))?;
                    check(sys::ZSTD_CCtx_setParameter(self.0, ZSTD_c_dictIDFlag, 0))?;
                    check(sys::ZSTD_CCtx_refPrefix(self.0, prefix.as_ptr().cast(), prefix.len()))?;
                    let bound = sys::ZSTD_compressBound(data.len());
                    out.reserve(bound);
                    let free = out.spare_capacity_mut();
                    let n = check(sys::ZSTD_compress2(
                        self.0,
                        free.as_mut_ptr().cast(),
                        free.len(),
                        data.as_ptr().cast(),
                        data.len(),
                    ))?;
                    // SAFETY: zstd wrote n <= free.len() initialised bytes at the start of the spare capacity.
                    out.set_len(out.len() + n);
                }
                Ok(())
            })();
            // SAFETY: as above; drops any reference to `prefix`.
            unsafe { sys::ZSTD_CCtx_reset(self.0, sys::ZSTD_ResetDirective::ZSTD_reset_session_and_parameters) };
            result
        }
    }

    impl Drop for Compressor {
        fn drop(&mut self) {
            // SAFETY: self.0 came from ZSTD_createCCtx and is freed once.
            unsafe { sys::ZSTD_freeCCtx(self.0) };
        }
    }

    impl Decompressor {
        pub fn new() -> Option<Self> {
            // SAFETY: creating a context has no preconditions; null means out of memory.
            let p = unsafe { sys::ZSTD_createDCtx() };
            (!p.is_null()).then_some(Decompressor(p))
        }

        /// Decompresses one frame with `prefix` as raw-content dictionary into `out` (cleared first), writing
        /// at most `max` bytes and refusing windows over 2^`window_log_max`.
        pub fn decompress(
            &mut self,
            out: &mut Vec<u8>,
            frame: &[u8],
            prefix: &[u8],
            max: usize,
            window_log_max: u32,
        ) -> Result<(), String> {
            out.clear();
            out.reserve(max);
            let result = (|| {
                // SAFETY: as for compression: live context, buffers outliving the calls, reset afterwards.
                unsafe {
                    check(sys::ZSTD_DCtx_reset(self.0, sys::ZSTD_ResetDirective::ZSTD_reset_session_and_parameters))?;
                    check(sys::ZSTD_DCtx_setParameter(
                        self.0,
                        sys::ZSTD_dParameter::ZSTD_d_windowLogMax,
                        window_log_max as i32,
                    ))?;
                    check(sys::ZSTD_DCtx_refPrefix(self.0, prefix.as_ptr().cast(), prefix.len()))?;
                    let free = out.spare_capacity_mut();
                    let cap = free.len().min(max);
                    let n = check(sys::ZSTD_decompressDCtx(
                        self.0,
                        free.as_mut_ptr().cast(),
                        cap,
                        frame.as_ptr().cast(),
                        frame.len(),
                    ))?;
                    // SAFETY: zstd wrote n <= cap initialised bytes at the start of the spare capacity.
                    out.set_len(n);
                }
                Ok(())
            })();
            // SAFETY: as above; drops any reference to `prefix`.
            unsafe { sys::ZSTD_DCtx_reset(self.0, sys::ZSTD_ResetDirective::ZSTD_reset_session_and_parameters) };
            result
        }
    }

    impl Drop for Decompressor {
        fn drop(&mut self) {
            // SAFETY: self.0 came from ZSTD_createDCtx and is freed once.
            unsafe { sys::ZSTD_freeDCtx(self.0) };
        }
    }
}

thread_local! {
    static CCTX: std::cell::RefCell<Option<raw::Compressor>> = const { std::cell::RefCell::new(None) };
    static DCTX: std::cell::RefCell<Option<raw::Decompressor>> = const { std::cell::RefCell::new(None) };
}

/// The delta payload of `data` against `base` at zstd `level`: header then frame. `None` when zstd fails
/// (it does not for in-memory buffers; the caller then stores the chunk whole).
pub fn encode(data: &[u8], base: &[u8], header: DeltaHeader, level: i32) -> Option<Vec<u8>> {
    if header.depth == 0 || header.depth > MAX_DEPTH {
        return None;
    }
    // The window must reach back over the whole base from the end of the data.
    let reach = (base.len() + data.len()).max(1 << 10);
    let window_log = (usize::BITS - (reach - 1).leading_zeros()).clamp(10, 27);
    CCTX.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = raw::Compressor::new();
        }
        let mut out = Vec::with_capacity(HEADER_LEN + data.len() / 4);
        out.extend_from_slice(&header.base.0);
        out.push(header.depth);
        slot.as_mut()?.compress(&mut out, data, base, level, window_log).ok()?;
        Some(out)
    })
}

/// Reads a delta payload's header; the frame follows `HEADER_LEN` bytes in.
pub fn header(payload: &[u8]) -> Result<DeltaHeader, FormatError> {
    if payload.len() < HEADER_LEN {
        return Err(FormatError::Truncated { needed: HEADER_LEN, have: payload.len() });
    }
    let mut base = [0u8; 32];
    base.copy_from_slice(&payload[..32]);
    let depth = payload[32];
    if depth == 0 || depth > MAX_DEPTH {
        return Err(FormatError::malformed("delta", format!("depth {depth} outside 1..={MAX_DEPTH}")));
    }
    Ok(DeltaHeader { base: ObjectId(base), depth })
}

/// Decodes a delta payload against the plaintext of its base: exactly `len` bytes or an error.
pub fn decode(payload: &[u8], base: &[u8], len: usize) -> Result<Vec<u8>, FormatError> {
    header(payload)?;
    let frame = &payload[HEADER_LEN..];
    DCTX.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = raw::Decompressor::new();
        }
        let dctx = slot.as_mut().ok_or_else(|| FormatError::Decompress("no zstd context".into()))?;
        // One byte of room beyond `len` tells a longer frame from an exact one. The window is bounded as a
        // writer needs it at most (base + chunk), so a hostile frame cannot ask for more memory.
        let mut out = Vec::new();
        dctx.decompress(&mut out, frame, base, len + 1, 27).map_err(FormatError::Decompress)?;
        if out.len() != len {
            return Err(FormatError::malformed("delta", format!("{} bytes where {len} were recorded", out.len())));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                if i % 61 == 60 {
                    return b'\n';
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'a' + (x % 26) as u8
            })
            .collect()
    }

    #[test]
    fn a_small_change_costs_little_and_round_trips() {
        let base = text(7, 64 << 10);
        let mut data = base.clone();
        for at in [100, 20_000, 40_000, 65_000] {
            data[at] = b'#';
        }
        data.splice(30_000..30_000, b"inserted row\n".iter().copied());
        let h = DeltaHeader { base: ObjectId([9; 32]), depth: 1 };
        let payload = encode(&data, &base, h, 3).unwrap();
        assert!(payload.len() < 400, "{} bytes for five small edits", payload.len());
        assert_eq!(header(&payload).unwrap(), h);
        assert_eq!(decode(&payload, &base, data.len()).unwrap(), data);
        // The wrong base, a wrong length or a cut frame never yield the data.
        let other = text(8, 64 << 10);
        assert_ne!(decode(&payload, &other, data.len()).ok(), Some(data.clone()));
        assert!(decode(&payload, &base, data.len() - 1).is_err());
        assert!(decode(&payload, &base, data.len() + 1).is_err());
        assert!(decode(&payload[..payload.len() - 3], &base, data.len()).is_err());
        assert!(decode(&payload[..20], &base, data.len()).is_err());
    }

    #[test]
    fn depths_outside_the_bound_are_refused() {
        let base = text(1, 1000);
        assert!(encode(&base, &base, DeltaHeader { base: ObjectId::ZERO, depth: 0 }, 3).is_none());
        assert!(encode(&base, &base, DeltaHeader { base: ObjectId::ZERO, depth: MAX_DEPTH + 1 }, 3).is_none());
        let mut p = encode(&base, &base, DeltaHeader { base: ObjectId::ZERO, depth: MAX_DEPTH }, 3).unwrap();
        assert!(decode(&p, &base, base.len()).is_ok());
        p[32] = MAX_DEPTH + 1;
        assert!(decode(&p, &base, base.len()).is_err());
        p[32] = 0;
        assert!(header(&p).is_err());
    }

    #[test]
    fn an_empty_base_or_chunk_works() {
        let data = text(3, 5000);
        let p = encode(&data, &[], DeltaHeader { base: ObjectId::ZERO, depth: 1 }, 3).unwrap();
        assert_eq!(decode(&p, &[], data.len()).unwrap(), data);
        let p = encode(&[], &data, DeltaHeader { base: ObjectId::ZERO, depth: 1 }, 3).unwrap();
        assert_eq!(decode(&p, &data, 0).unwrap(), Vec::<u8>::new());
    }
}
