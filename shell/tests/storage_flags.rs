//! kvmsh's storage flags (issue 15): `--readonly` and `--map-size`, `--no-write-map`.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::text;

fn kvmsh(args: &[&str]) -> Output {
    common::kvmsh(args, None)
}

#[test]
fn readonly_reads_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.kvm");
    let db = db.to_str().unwrap();
    let out = kvmsh(&[db, "-c", "DEFINE MODEL t (id INT PRIMARY KEY); INSERT INTO t {id: 1};"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kvmsh(&["--readonly", db, "-c", "SELECT COUNT(*) FROM t;"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains('1'), "{}", text(&out.stdout));
    let out = kvmsh(&["--readonly", db, "-c", "INSERT INTO t {id: 2};"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("storage.read_only"), "{}", text(&out.stderr));
    let missing = dir.path().join("missing.kvm");
    let out = kvmsh(&["--readonly", missing.to_str().unwrap(), "-c", "SHOW MODELS;"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!missing.exists(), "a read-only open creates nothing");
}

#[test]
fn map_size_takes_units_and_the_map_grows_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.kvm");
    let db = db.to_str().unwrap();
    // A 64 KiB start and a 3 MB statement: the map grows by itself.
    let script = dir.path().join("big.kql");
    let big = "x".repeat(3_000_000);
    std::fs::write(
        &script,
        format!(
            "DEFINE MODEL t (id INT PRIMARY KEY, s STRING);\nINSERT INTO t {{id: 1, s: '{big}'}};\n\
             SELECT len(s) AS n FROM t;\n"
        ),
    )
    .unwrap();
    for flags in [&["--map-size", "64KiB"][..], &["--map-size", "1MB", "--no-write-map"][..]] {
        let _ = std::fs::remove_file(db);
        let _ = std::fs::remove_file(format!("{db}-lock"));
        let mut args = flags.to_vec();
        args.extend([db, "-f", script.to_str().unwrap()]);
        let out = kvmsh(&args);
        assert!(out.status.success(), "{flags:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("3000000"), "{}", text(&out.stdout));
    }
    let out = kvmsh(&["--map-size", "lots", db, "-c", "SHOW MODELS;"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--map-size"), "{}", text(&out.stderr));
}
