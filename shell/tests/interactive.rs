//! kvmsh in a real terminal: tmux runs it in a pseudo-terminal, `send-keys` types, and
//! `capture-pane` reads the screen. Covers multi-line entry, completion of a model and a
//! field name, Ctrl-C during input, during a running statement and during an import (atomic:
//! nothing lands; batched: whole batches only), a live WATCH seeing
//! another process's commit until Ctrl-C, history recall,
//! `.mode json`, an error with its caret, and `.quit`.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types text literally (`;` escaped: tmux would read it as a command separator).
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "k", "-l", &text.replace(';', "\\;")]);
    }

    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "k", key]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-t", "k", "-p"])
    }

    /// Waits until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("timed out waiting for {text:?}; the screen shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", "k"])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn a_session_in_a_real_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        if std::env::var_os("KVM_SKIP_TMUX_TESTS").is_some() {
            return;
        }
        panic!("this test drives kvmsh through tmux: apt-get install tmux (or set KVM_SKIP_TMUX_TESTS=1)");
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("i.kvm");
    let history = dir.path().join("history");
    let t = Tmux { socket: format!("kvmsh-test-{}", std::process::id()) };
    let cmd = format!(
        "KVMSH_HISTORY={} NO_COLOR=1 {} {}",
        history.display(),
        env!("CARGO_BIN_EXE_kvmsh"),
        db.display()
    );
    t.run(&["new-session", "-d", "-s", "k", "-x", "120", "-y", "50", &cmd]);
    t.wait_for("kvm>");

    // A statement over two lines: the editor continues until the `;`.
    t.type_text("DEFINE MODEL users (id STRING PRIMARY KEY,");
    t.key("Enter");
    t.type_text("  name STRING);");
    t.key("Enter");
    t.wait_for("defined model users");

    // Tab completes a model name and a field name from the live catalog.
    t.type_text("INSERT INTO use");
    t.key("Tab");
    t.type_text(" { id: 'a', na");
    t.key("Tab");
    t.type_text(": 'Ann' };");
    t.key("Enter");
    let screen = t.wait_for("inserted 1 record");
    assert!(screen.contains("INSERT INTO users { id: 'a', name: 'Ann' };"), "{screen}");

    // An error shows its caret and the session goes on.
    t.type_text("SELECT * FORM users;");
    t.key("Enter");
    let screen = t.wait_for("did you mean `FROM`?");
    assert!(screen.contains("  |          ^^^^"), "{screen}");

    // Ctrl-C drops the input being typed.
    t.type_text("SELECT 'dropped'");
    t.key("C-c");
    t.type_text(".mode json");
    t.key("Enter");
    t.type_text("SELECT * FROM users;");
    t.key("Enter");
    let screen = t.wait_for("{\"rows\":[{\"id\":\"a\",\"name\":\"Ann\"}]}");
    assert!(!screen.contains("dropped\"}"), "{screen}");

    // Up recalls the last statement from history.
    t.key("Up");
    t.key("Enter");
    let start = Instant::now();
    while t.screen().matches("{\"rows\":[{\"id\":\"a\"").count() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "history recall did not run:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Ctrl-C while a statement runs interrupts it (the shell stays, nothing is written).
    let big = dir.path().join("big.ndjson");
    let rows: String =
        (0..100_000).map(|i| format!("{{\"id\":{i},\"n\":{},\"s\":\"x\"}}\n", i % 1000)).collect();
    std::fs::write(&big, rows).unwrap();
    t.type_text("DEFINE MODEL big (id INT PRIMARY KEY, n INT NOT NULL, s STRING, INDEX by_n (n));");
    t.key("Enter");
    t.type_text(&format!(".import {} INTO big", big.display()));
    t.key("Enter");
    t.wait_for("imported 100000 records into big");
    t.key("C-l");
    // About 5 s in a debug build: Ctrl-C lands while it runs.
    t.type_text("UPDATE big SET n = n + 1 WHERE s IS NOT NULL;");
    t.key("Enter");
    std::thread::sleep(Duration::from_millis(300));
    t.key("C-c");
    let screen = t.wait_for("interrupted; nothing was written");
    assert!(!screen.contains("updated"), "{screen}");
    t.type_text("SELECT COUNT(*) FROM big WHERE n = 1000;");
    t.key("Enter");
    t.wait_for("{\"rows\":[{\"count\":0}]}");

    // Ctrl-C during an import: an atomic one leaves nothing; another keeps whole batches.
    let more = dir.path().join("more.ndjson");
    let rows: String = (100_000..300_000)
        .map(|i| format!("{{\"id\":{i},\"n\":{},\"s\":\"x\"}}\n", i % 1000))
        .collect();
    std::fs::write(&more, rows).unwrap();
    for (atomic, outcome) in [
        (" --atomic", "interrupted: nothing was imported"),
        ("", "interrupted: whole batches only"),
    ] {
        t.key("C-l");
        t.type_text(&format!(".import {} INTO big{atomic}", more.display()));
        t.key("Enter");
        std::thread::sleep(Duration::from_millis(400));
        t.key("C-c");
        let screen = t.wait_for(outcome);
        assert!(screen.contains("the import of"), "{screen}");
    }
    t.key("C-l");
    t.type_text("SELECT COUNT(*) FROM big;");
    t.key("Enter");
    let screen = t.wait_for("{\"rows\":[{\"count\":");
    let n: u64 = screen
        .split("{\"rows\":[{\"count\":")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!((100_000..300_000).contains(&n) && n % 1000 == 0, "{screen}");

    // WATCH streams changes live — here a commit of another kvmsh process — until Ctrl-C.
    t.key("C-l");
    t.type_text(".mode line");
    t.key("Enter");
    t.type_text("WATCH big WHERE id = 7;");
    t.key("Enter");
    t.wait_for("ready");
    let other = Command::new(env!("CARGO_BIN_EXE_kvmsh"))
        .arg(&db)
        .args(["-c", "UPDATE big SET s = 'changed elsewhere' WHERE id = 7"])
        .output()
        .unwrap();
    assert!(other.status.success(), "{}", String::from_utf8_lossy(&other.stderr));
    let screen = t.wait_for("changed: s");
    assert!(screen.contains("update ") && screen.contains("changed elsewhere"), "{screen}");
    t.key("C-c");
    t.wait_for("watch stopped");
    t.type_text(".mode json");
    t.key("Enter");
    t.type_text("SELECT s FROM big WHERE id = 7;");
    t.key("Enter");
    t.wait_for("{\"rows\":[{\"s\":\"changed elsewhere\"}]}");

    t.type_text(".quit");
    t.key("Enter");
    let start = Instant::now();
    while t.alive() {
        assert!(start.elapsed() < Duration::from_secs(30), ".quit did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("SELECT * FROM users;"), "history was saved: {saved}");
}
