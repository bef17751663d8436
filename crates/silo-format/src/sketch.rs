//! Content sketches for resemblance detection: which stored chunk a new chunk is most like, so it can be
//! stored as a delta of it (delta.md; silo's repo/resemble.rs chooses). Not part of any stored byte: it lives
//! here, like the chunker, because it runs over every byte of every new chunk and is pure, so it is built
//! optimised even in the development profile.
//!
//! A sketch is the set of samples of a 64-byte rolling (gear) hash taken at content-defined positions (where
//! its top bits are zero, about one per 512 bytes): a chunk with a few changed rows keeps nearly all of its
//! samples, a different chunk shares almost none. (Content sketches for delta compression are the idea of
//! Finesse, FAST'19, and Odess, 2021; comparing sampled hashes exactly instead of building super-features
//! suits the handful of candidates silo compares each chunk with.)

/// A sample is taken where the rolling hash's top `SAMPLE_BITS` bits are zero: one per 2^9 = 512 bytes.
const SAMPLE_BITS: u32 = 9;
/// The gear table of the rolling hash: 256 fixed pseudo-random words (splitmix64 from 0).
const GEAR: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut x: u64 = 0;
    let mut i = 0;
    while i < 256 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
};

/// A chunk's content sketch: its sampled hashes, sorted and without repeats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sketch(Vec<u64>);

impl Sketch {
    pub fn of(data: &[u8]) -> Sketch {
        let mut h = 0u64;
        let mut out = Vec::with_capacity(data.len() >> (SAMPLE_BITS - 1));
        for &b in data {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
            if h >> (64 - SAMPLE_BITS) == 0 {
                out.push(h);
            }
        }
        out.sort_unstable();
        out.dedup();
        Sketch(out)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Samples both sketches hold.
    pub fn common(&self, other: &Sketch) -> usize {
        let (mut i, mut j, mut n) = (0, 0, 0);
        while i < self.0.len() && j < other.0.len() {
            match self.0[i].cmp(&other.0[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    n += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        n
    }
}
