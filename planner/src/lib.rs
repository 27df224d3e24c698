//! KQL planner: binds an AST against the catalog, type-checks it and chooses access paths
//! (primary-key get, index range, prefix scan, full scan). Pure: no I/O.
//!
//! Empty until the engine core lands; the crate exists so the layering is fixed from day one.
