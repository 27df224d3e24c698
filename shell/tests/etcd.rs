//! Two kvmsh processes on one database in an etcd cluster (feature `etcd`): one sees the
//! other's writes, and a WATCH in one streams the other's commit. Without an etcd binary
//! the test prints why and does nothing else.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kvm::storage::etcd_testing;

fn kvmsh(url: &str, kql: &str) -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_kvmsh")).arg(url).args(["-c", kql]).output().unwrap();
    assert!(out.status.success(), "{kql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_kvmsh_processes_see_each_others_writes_and_watch_events() {
    let cluster = match etcd_testing::shared() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let url = cluster.url(&etcd_testing::unique_app("kvmsh"));
    kvmsh(&url, "DEFINE MODEL notes (id INT PRIMARY KEY, body STRING); INSERT INTO notes {id: 1, body: 'first'}");
    // Another process reads what the first wrote.
    let out = kvmsh(&url, "SELECT body FROM notes WHERE id = 1");
    assert!(out.contains("first"), "{out}");

    // A WATCH in one process, a commit in another.
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_kvmsh"))
        .arg(&url)
        .args(["--mode", "ndjson", "-c", "WATCH notes WHERE id = 1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => panic!("the watching kvmsh printed no line with {what:?}"),
            }
        }
    };
    wait_for("ready");
    kvmsh(&url, "UPDATE notes SET body = 'from the other process' WHERE id = 1");
    let event = wait_for("from the other process");
    assert!(event.contains("update"), "{event}");
    watcher.kill().unwrap();
    watcher.wait().unwrap();
}
