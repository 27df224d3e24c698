//! KQL front end: text in, a typed AST or a precise diagnostic out. Pure: no I/O, no catalog.
