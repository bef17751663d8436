//! An SQLite database file (`sqlite3 db ".backup /dev/stdout"`, or the file itself): complete when the
//! header's page size times its page count is the stream's length. The page count in the header is trusted
//! only when its "version-valid-for" number matches the change counter, as SQLite itself does; otherwise the
//! length must be a whole number of pages.

use super::{record, Scanner, Verdict};
use silo_format::manifest::dump_format;

const HEADER: usize = 100;

#[derive(Default)]
pub(super) struct SqliteFile {
    header: Vec<u8>,
    size: u64,
}

impl Scanner for SqliteFile {
    fn feed(&mut self, data: &[u8]) {
        let take = (HEADER - self.header.len()).min(data.len());
        self.header.extend_from_slice(&data[..take]);
        self.size += data.len() as u64;
    }

    fn finish(self: Box<Self>) -> Verdict {
        let mut r = record(dump_format::SQLITE_FILE, String::new());
        let h = &self.header;
        if h.len() < HEADER {
            let problem = format!("the file is {} bytes, shorter than SQLite's 100-byte header", self.size);
            return Verdict { record: r, problem: Some(problem) };
        }
        let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let page_size = match u16::from_be_bytes([h[16], h[17]]) {
            1 => 65_536u64,
            n if n >= 512 && n.is_power_of_two() => n as u64,
            n => {
                let problem = format!("the header's page size {n} is not one SQLite writes");
                return Verdict { record: r, problem: Some(problem) };
            }
        };
        let pages = be32(28) as u64;
        let header_valid = pages > 0 && be32(24) == be32(92);
        r.entries = if header_valid { pages } else { self.size / page_size };
        let data = pages * page_size;
        let problem = if header_valid && data < self.size && chunk_padded(data, self.size, page_size) {
            // `.filectrl chunk_size N` (SQLITE_FCNTL_CHUNK_SIZE) grows the file in chunks: the pages past the
            // header's count are padding.
            None
        } else if header_valid && pages * page_size != self.size {
            Some(format!(
                "the header says {pages} pages of {page_size} bytes ({} bytes) but the file is {} bytes: it was cut \
                 short or copied while being written",
                pages * page_size,
                self.size
            ))
        } else if !header_valid && !self.size.is_multiple_of(page_size) {
            Some(format!("the file is {} bytes, not a whole number of {page_size}-byte pages", self.size))
        } else {
            None
        };
        Verdict { record: r, problem }
    }
}

/// Whether `size` is `data` rounded up to a power-of-two chunk of at least two pages, as SQLite's chunk size
/// leaves a file.
fn chunk_padded(data: u64, size: u64, page_size: u64) -> bool {
    let mut chunk = 2 * page_size;
    while chunk <= size {
        if data.div_ceil(chunk) * chunk == size {
            return true;
        }
        chunk *= 2;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::inspect_all;

    fn file(pages: u32, page_size: u16) -> Vec<u8> {
        let mut f = vec![0u8; pages as usize * if page_size == 1 { 65_536 } else { page_size as usize }];
        f[..16].copy_from_slice(b"SQLite format 3\0");
        f[16..18].copy_from_slice(&page_size.to_be_bytes());
        f[24..28].copy_from_slice(&7u32.to_be_bytes());
        f[28..32].copy_from_slice(&pages.to_be_bytes());
        f[92..96].copy_from_slice(&7u32.to_be_bytes());
        f
    }

    #[test]
    fn size_must_match_the_header() {
        let f = file(3, 4096);
        let v = inspect_all(&f, 1000).unwrap();
        assert_eq!((v.problem, v.record.entries), (None, 3));
        for cut in [13, 50, 100, 4096, 4097, f.len() - 1] {
            assert!(inspect_all(&f[..cut], 333).unwrap().problem.is_some(), "cut at {cut}");
        }
        let mut grown = f.clone();
        grown.extend_from_slice(&[0; 2 * 4096]);
        assert!(inspect_all(&grown, 4096).unwrap().problem.is_some());
        // Padded to a 64 KiB chunk (`.filectrl chunk_size 65536`): whole.
        let mut padded = f.clone();
        padded.resize(65_536, 0);
        assert_eq!(inspect_all(&padded, 4096).unwrap().problem, None);
        let mut two_chunks = file(17, 4096);
        two_chunks.resize(2 * 65_536, 0);
        assert_eq!(inspect_all(&two_chunks, 4096).unwrap().problem, None);
        assert_eq!(inspect_all(&file(1, 1), 70_000).unwrap().problem, None);
    }
}
