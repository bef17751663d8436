//! What silo knows about the dumps it stores (pure): one table out of a plain SQL dump (table.rs).

pub mod table;
