//! Real etcd servers for tests (feature `etcd`): a cluster of `etcd` processes on loopback
//! that a test starts, stops, kills and restarts itself. Not for applications.
//!
//! The servers run with `--max-txn-ops 10000` and `--max-request-bytes 8388608` (the limits
//! KVM's documentation recommends; the engine is told them through its URL), their data in
//! a temporary folder, and die with the test process.

/// The client crate and runtime the backend uses, for baselines measured through the same
/// client (`benches/etcd.rs`).
pub use {etcd_client, tokio};

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The transaction limits the test servers run with.
pub const MAX_TXN_OPS: usize = 10_000;
pub const MAX_REQUEST_BYTES: usize = 8 << 20;

/// One member of a test cluster.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A cluster of `etcd` processes on loopback.
pub struct EtcdCluster {
    members: Mutex<Vec<Member>>,
    initial_cluster: String,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A folder removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Why tests that need etcd cannot run here, or `None` when they can.
pub fn unavailable() -> Option<String> {
    match Command::new("etcd").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some(
            "the etcd binary is not installed (apt-get install etcd-server); \
             the tests on etcd are skipped"
                .into(),
        ),
    }
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster answers.
    pub fn start(n: usize) -> Result<EtcdCluster, String> {
        let base = std::env::temp_dir().join(format!(
            "kvm-etcd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {base:?}: {e}"))?;
        let mut members = Vec::new();
        for i in 0..n {
            members.push(Member {
                name: format!("m{i}"),
                client_port: free_port().map_err(|e| e.to_string())?,
                peer_port: free_port().map_err(|e| e.to_string())?,
                dir: base.join(format!("m{i}")),
                child: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let cluster = EtcdCluster {
            members: Mutex::new(members),
            initial_cluster,
            _dir: tempfile_dir::Dir(base),
        };
        for i in 0..n {
            cluster.start_member(i)?;
        }
        cluster.wait_ready(Duration::from_secs(30))?;
        Ok(cluster)
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts member `i` (again, after [`EtcdCluster::kill`]), with the data it had.
    pub fn start_member(&self, i: usize) -> Result<(), String> {
        let mut members = self.members();
        let m = &mut members[i];
        if m.child.is_some() {
            return Ok(());
        }
        let state = if m.dir.exists() { "existing" } else { "new" };
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", "kvm-test"])
            .args(["--max-txn-ops", &MAX_TXN_OPS.to_string()])
            .args(["--max-request-bytes", &MAX_REQUEST_BYTES.to_string()])
            .args(["--log-level", "error", "--logger", "zap"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_tied(cmd).map_err(|e| format!("cannot start etcd: {e}"))?;
        m.child = Some(child);
        Ok(())
    }

    /// Kills member `i` with SIGKILL (its data stays: [`EtcdCluster::start_member`]
    /// restarts it).
    pub fn kill(&self, i: usize) {
        let mut members = self.members();
        if let Some(mut c) = members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Which running member is the leader, if the cluster has one (asked of each member
    /// with `etcdctl endpoint status`).
    pub fn leader(&self) -> Option<usize> {
        let ports: Vec<(usize, u16)> = self
            .members()
            .iter()
            .enumerate()
            .filter(|(_, m)| m.child.is_some())
            .map(|(i, m)| (i, m.client_port))
            .collect();
        for (i, port) in ports {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &format!("http://127.0.0.1:{port}")])
                .args(["--command-timeout", "2s", "endpoint", "status", "-w", "json"])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let number = |field: &str| -> Option<u64> {
                let at = text.find(&format!("\"{field}\":"))? + field.len() + 3;
                let digits: String =
                    text[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
                digits.parse().ok()
            };
            if let (Some(me), Some(leader)) = (number("member_id"), number("leader")) {
                if me == leader {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The client URLs of all members, `host:port` joined by commas (for an `etcd://` URL).
    pub fn hosts(&self) -> String {
        self.members()
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// An `etcd://` URL for database `app` on this cluster, with the servers' limits.
    pub fn url(&self, app: &str) -> String {
        format!(
            "etcd://{}/{app}?max_txn_ops={MAX_TXN_OPS}&max_request_bytes={MAX_REQUEST_BYTES}",
            self.hosts()
        )
    }

    /// Waits until every running member answers on its client port and the cluster has a
    /// leader (`etcdctl endpoint health`).
    pub fn wait_ready(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let endpoints: Vec<String> = self
            .members()
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect();
        loop {
            let ok = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg("--endpoints")
                .arg(endpoints.join(","))
                .args(["--command-timeout", "2s", "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("etcd at {} did not become healthy", endpoints.join(",")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in self.members().iter_mut() {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A database name no other test of any process uses.
pub fn unique_app(stem: &str) -> String {
    format!("{stem}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The single-member cluster every test of this process shares, started on first use;
/// `Err` says why there is none (no etcd binary, or it would not start).
pub fn shared() -> Result<&'static EtcdCluster, String> {
    static SHARED: OnceLock<Result<EtcdCluster, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| match unavailable() {
            Some(why) => Err(why),
            None => EtcdCluster::start(1),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Spawns `cmd` so that it is killed when this process ends, however it ends: from a
/// thread that lives as long as the process (Linux sends a child's "parent death" signal
/// when the thread that spawned it exits).
fn spawn_tied(mut cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("etcd-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // (The channel lives in a static: this thread never ends.)
            })
            .expect("spawn the etcd spawner thread");
        Mutex::new(tx)
    });
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv().map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}
