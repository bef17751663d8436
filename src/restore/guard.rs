//! Refuses, while the stream is written into the loader, SQL that would leave the scratch database: `\connect`
//! (pg_dump --create, pg_dumpall), `CREATE DATABASE`, `USE` (mysqldump --databases) — as statements and client
//! commands only (dumps::inspect::SwitchWatch follows the dialect's quoting), never data such as a COPY row that
//! begins `CREATE DATABASE `. The piece that completes one is not passed on (I15: the load stays in the scratch).

use crate::dumps::inspect::{Dialect, SwitchWatch};
use crate::dumps::swap::Loader;
use std::io::Write;

pub(super) struct Guard<W: Write> {
    pub(super) inner: W,
    watch: Option<SwitchWatch>,
    pub(super) refused: Option<String>,
}

impl<W: Write> Guard<W> {
    pub(super) fn new(inner: W, loader: Loader) -> Self {
        let watch = match loader {
            Loader::Psql => Some(SwitchWatch::new(Dialect::Postgres)),
            Loader::Mysql => Some(SwitchWatch::new(Dialect::Mysql)),
            _ => None,
        };
        Guard { inner, watch, refused: None }
    }
}

impl<W: Write> Write for Guard<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(found) = self.watch.as_mut().and_then(|w| w.feed(buf)) {
            let why = format!(
                "the dump switches to another database ({found}: pg_dump --create, pg_dumpall or mysqldump \
                 --databases); restore-database loads one database's dump into its scratch database and was \
                 stopped. Dump the one database without those options"
            );
            self.refused = Some(why.clone());
            return Err(std::io::Error::other(why));
        }
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
