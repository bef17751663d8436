//! The memory argon2id works in (format-spec/keyfile.md: 64 MiB by default), provided here instead of by the
//! argon2 crate: an anonymous mapping, zero already (the crate's allocation zeroes 64 MiB on one core first),
//! populated when it is made on Linux (`MAP_POPULATE`: no page fault per page taken by the lanes as they fill
//! it). Dropping it unmaps it: the kernel zeroes the pages before anyone else gets them. Why, in numbers:
//! docs/benchmarks.md "Allocator and KDF memory".
//!
//! Invariant upheld: the derived key is the same as with the crate's own allocation (tests/vectors check
//! `derive_wrapping_key` against fixed outputs); only where the blocks live changes.

use argon2::Block;

/// Populate the mapping at once where the system can (Linux).
#[cfg(target_os = "linux")]
const POPULATE: libc::c_int = libc::MAP_POPULATE;
#[cfg(all(unix, not(target_os = "linux")))]
const POPULATE: libc::c_int = 0;

/// `len` zeroed argon2 blocks.
pub struct KdfMemory {
    #[cfg(unix)]
    map: Option<(*mut libc::c_void, usize)>,
    blocks: *mut Block,
    len: usize,
    /// Where the blocks live when no mapping could be made.
    _fallback: Vec<Block>,
}

impl KdfMemory {
    pub fn new(len: usize) -> Self {
        #[cfg(unix)]
        if let Some(m) = Self::mapped(len) {
            return m;
        }
        let mut fallback = vec![Block::default(); len];
        let blocks = fallback.as_mut_ptr();
        KdfMemory {
            #[cfg(unix)]
            map: None,
            blocks,
            len,
            _fallback: fallback,
        }
    }

    #[cfg(unix)]
    fn mapped(len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<Block>())?;
        let total = bytes;
        // SAFETY: a private anonymous mapping of `total` bytes; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(KdfMemory { map: Some((p, total)), blocks: p as *mut Block, len, _fallback: Vec::new() })
    }
}

impl AsMut<[Block]> for KdfMemory {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: `blocks` points to `len` blocks inside the mapping (page-aligned, zero-filled: an all-zero
        // `Block` is valid) or into `fallback`, owned by `self` and borrowed mutably with it.
        unsafe { std::slice::from_raw_parts_mut(self.blocks, self.len) }
    }
}

impl Drop for KdfMemory {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some((p, total)) = self.map.take() {
            // SAFETY: the mapping made in `mapped`, unmapped once; no slice of it outlives `self`.
            unsafe { libc::munmap(p, total) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_zeroed_aligned_and_writable() {
        let mut m = KdfMemory::new(4096);
        let blocks = m.as_mut();
        assert_eq!(blocks.len(), 4096);
        assert_eq!(blocks.as_ptr() as usize % 64, 0);
        assert!(blocks.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)));
        blocks[4095].as_mut()[127] = 7;
        assert_eq!(blocks[4095].as_ref()[127], 7);
    }

    #[test]
    fn derives_what_the_crates_own_memory_derives() {
        let params = argon2::Params::new(8192, 2, 4, Some(32)).expect("params");
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params.clone());
        let (mut ours, mut theirs) = ([0u8; 32], [0u8; 32]);
        let mut memory = KdfMemory::new(params.block_count());
        argon.hash_password_into_with_memory(b"pw", b"saltsaltsaltsalt", &mut ours, &mut memory).expect("kdf");
        argon.hash_password_into(b"pw", b"saltsaltsaltsalt", &mut theirs).expect("kdf");
        assert_eq!(ours, theirs);
    }
}
