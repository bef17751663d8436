//! What silo knows about the dumps it stores (pure): what a stream is and whether it is whole (inspect/),
//! whether its tables shrank against the previous snapshot (sanity.rs), and one table out of a plain SQL dump
//! (table.rs).

pub mod inspect;
pub mod sanity;
pub mod swap;
pub mod table;
