//! Architecture rules checked on the source (issue 16): key bytes are built and decoded only
//! in `src/keyspace.rs` — no other engine module calls the tuple codec — and the public API
//! does not re-export the planner or the engine's internals.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn only_the_keyspace_module_builds_or_decodes_keys() {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 20, "found the engine's sources");
    let codec = ["tuple::encode", "tuple::decode", "encode_part", "decode_part", "prefix_end"];
    let mut found = Vec::new();
    for (path, text) in &files {
        if path.ends_with("src/keyspace.rs") {
            assert!(codec.iter().any(|c| text.contains(c)), "the keyspace uses the codec");
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            if let Some(c) = codec.iter().find(|c| line.contains(*c)) {
                found.push(format!("{path}:{}: {c}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "key bytes handled outside src/keyspace.rs:\n{}", found.join("\n"));
}

#[test]
fn only_the_model_transaction_and_the_key_owning_stores_write_keys() {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let owners = ["src/model_txn.rs", "src/txn.rs", "src/catalog_store.rs", "/src/queue/"];
    let writes = ["txn.set(", "txn.delete(", "txn().set(", "txn().delete("];
    let mut found = Vec::new();
    for (path, text) in &files {
        if owners.iter().any(|o| path.ends_with(o) || path.contains(o)) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if let Some(w) = writes.iter().find(|w| line.contains(*w)) {
                found.push(format!("{path}:{}: {w}", n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "keys written around ModelTxn (records and index entries belong to it):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_public_api_does_not_export_the_implementation() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    for private in ["pub mod keyspace", "pub mod model_txn", "pub use kvm_planner as"] {
        assert!(!lib.contains(private), "src/lib.rs: `{private}`");
    }
}

/// The executor evaluates the bound plan IR only: it does not look at the AST's expression
/// kinds (outside the statements that are not planned, whose operands it lowers first), and
/// no normalization travels as a magic function name.
#[test]
fn the_executor_evaluates_the_plan_ir_not_the_ast() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("planner/src"), &mut files);
    let mut found = Vec::new();
    for (path, text) in &files {
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let magic = ["\"__stored\"", "\"__sat_add\"", "__stored(", "__sat_add("];
            let ast_eval =
                path.contains("/src/") && !path.contains("planner/") && code.contains("ExprKind::");
            // Building a statement's AST is not evaluating it: the query builder, the
            // statements `Database` writes for its helpers, and the queries a watch runs.
            let allowed = ["src/builder.rs", "src/database.rs", "src/watch/mod.rs"]
                .iter()
                .any(|f| path.ends_with(f));
            if magic.iter().any(|m| code.contains(m)) || (ast_eval && !allowed) {
                found.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "evaluation outside the plan IR:\n{}", found.join("\n"));
}
