//! silo: a content-addressed, deduplicating, encrypted backup repository for streams (database dumps first).
//! Layers, top to bottom: `cli` → `repo` → `cache` / `backend` → `silo_format` (pure codecs and crypto).

pub mod backend;
pub mod cache;
pub mod clock;
pub mod dumps;
pub mod entropy;
pub mod error;
pub mod inputs;
pub mod interrupt;
pub mod jobs;
pub mod notify;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod serve;
pub mod text;
pub mod time;

pub use error::{Error, Result};
pub use silo_format as format;
