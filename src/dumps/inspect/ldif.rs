//! LDIF (`slapcat`): entries of `attribute: value` lines, each entry ended by an empty line. Complete when the
//! stream ends with that empty line and every line is an attribute line, a continuation (leading space) or a
//! comment. LDIF has no trailer, so a cut that falls exactly between two entries cannot be told from a
//! smaller directory; every other cut is caught.

use super::lines::Lines;
use super::{record, shown, Scanner, Tail, Verdict};
use silo_format::manifest::dump_format;

pub(super) fn is_ldif(head: &[u8]) -> bool {
    let first_line = &head[..head.iter().position(|&b| b == b'\n').unwrap_or(head.len())];
    // slapcat writes LF line ends; a CRLF file is someone else's LDIF (stored unjudged with a note).
    (head.starts_with(b"dn: ") || head.starts_with(b"dn:: ") || head.starts_with(b"version: 1\n"))
        && !first_line.ends_with(b"\r")
}

/// Operational attributes slapcat writes into every entry: an LDIF with none of them is not known to be
/// slapcat's, so an ending without its empty line is no proof of a cut.
const SLAPCAT_ATTRIBUTES: &[&[u8]] = &[b"structuralObjectClass:", b"entryUUID:", b"entryCSN:", b"createTimestamp:"];

#[derive(Default)]
pub(super) struct Ldif {
    lines: Lines,
    entries: u64,
    bad: Option<String>,
    line_no: u64,
    tail: Option<Tail>,
    slapcat: bool,
}

impl Ldif {
    fn line(&mut self, head: &[u8]) {
        self.line_no += 1;
        if head.starts_with(b"dn:") {
            self.entries += 1;
        }
        if !self.slapcat && SLAPCAT_ATTRIBUTES.iter().any(|a| head.starts_with(a)) {
            self.slapcat = true;
        }
        let fine = head.is_empty()
            || head.starts_with(b" ")
            || head.starts_with(b"#")
            || head.starts_with(b"-")
            || head.iter().take(1024).any(|&b| b == b':');
        if !fine && self.bad.is_none() {
            self.bad = Some(format!("line {} is not an LDIF line: {:.60}", self.line_no, shown(head)));
        }
    }
}

impl Scanner for Ldif {
    fn feed(&mut self, data: &[u8]) {
        self.tail.get_or_insert_with(|| Tail::new(2)).feed(data);
        let mut lines = std::mem::take(&mut self.lines);
        lines.feed(data, |head, _| self.line(head));
        self.lines = lines;
    }

    fn unjudged(&self) -> Option<String> {
        let ends_cleanly = self.tail.as_ref().is_some_and(|t| t.get() == b"\n\n");
        (!self.slapcat && (self.bad.is_some() || !ends_cleanly))
            .then(|| "an LDIF without slapcat's operational attributes, not ended by an empty line".to_string())
    }

    fn finish(self: Box<Self>) -> Verdict {
        let mut r = record(dump_format::LDIF, String::new());
        r.entries = self.entries;
        let ends_cleanly = self.tail.as_ref().is_some_and(|t| t.get() == b"\n\n");
        let problem = if let Some(bad) = self.bad {
            Some(bad)
        } else if !ends_cleanly {
            Some("the LDIF does not end with a complete entry and its empty line: it was cut short".into())
        } else {
            None
        };
        Verdict { record: r, problem }
    }
}

#[cfg(test)]
mod tests {
    use super::super::inspect_all;

    const LDIF: &str = "dn: dc=example,dc=org\nobjectClass: dcObject\ndc: example\n\
description:: w6k=\nentryUUID: 1\n\ndn: cn=a,dc=example,dc=org\ncn: a\n long continued\n\n";

    #[test]
    fn cuts_inside_entries_are_refused() {
        let v = inspect_all(LDIF.as_bytes(), 5).unwrap();
        assert_eq!((v.problem, v.record.entries), (None, 2));
        let boundary = LDIF.find("\n\ndn: cn=a").unwrap() + 2;
        // Before its first operational attribute a cut LDIF is not known to be slapcat's: stored unjudged.
        let known = LDIF.find("entryUUID: 1\n").unwrap() + 13;
        for cut in 2..LDIF.len() {
            let v = inspect_all(&LDIF.as_bytes()[..cut], 3);
            if cut < known {
                assert_eq!(v, None, "cut at {cut}");
                continue;
            }
            let p = v.unwrap().problem;
            assert_eq!(p.is_none(), cut == boundary, "cut at {cut}");
        }
    }
}
