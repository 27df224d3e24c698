//! The etcd backend (feature `etcd`): KVM's key space in a Raft cluster, for databases that
//! several machines share or that must survive the loss of one.
//!
//! **Layout.** A database is an application name; its keys live under `kvm/<app>/`:
//!
//! | key | holds |
//! |---|---|
//! | `kvm/<app>/d` + key | the entry (see [`crate::entry`]; its versionstamp is etcd's `mod_revision`) |
//! | `kvm/<app>/x` + expiry (8 bytes, big-endian) + key | the sweeper's expiry index |
//! | `kvm/<app>/f` | the change set of the latest commit; its history is the change feed |
//! | `kvm/<app>/c` | touched by a commit that changed nothing, so that it still gets a revision |
//!
//! **Reads.** A snapshot is an etcd revision: every read of it is a range request at that
//! revision, so it sees one committed state however long it is held (until etcd compacts
//! that revision away: the read then fails as a conflict, and the statement runs again).
//! Several keys or ranges are one request (a read-only etcd transaction), never one each.
//!
//! **Commits** run the shared commit logic (`apply.rs`) over the keys the batch reads,
//! fetched at one revision in one request, and send what it decided as one etcd
//! transaction guarded by `mod_revision` compares on every key read (0: absent) and on every
//! checked range (nothing in it modified since the read). When a compare fails, something
//! changed between the read and the write: the commit reads again and decides again
//! (a counter increment is applied to the newest value, never refused). A batch's own
//! checks failing at the read revision is [`Error::Conflict`], as on every backend.
//! The commit's versionstamp is the revision etcd gave it.
//!
//! **Expiry** is decided by the engine's clock, as on LMDB: an expired entry is invisible
//! from that millisecond on, whatever etcd holds; sweeping deletes it later.
//!
//! **The change feed** is the history of the `f` key: each commit that changed something
//! writes its change set there, in the same etcd transaction. Reading it is a watch from a
//! start revision, which etcd answers from its history with no gap. The feed keeps what
//! etcd's history keeps (compaction is the operator's), and no more than the configured
//! retention of commits (counted by the key's `version`), as on the other backends.
//!
//! **Limits.** etcd refuses transactions of more than `--max-txn-ops` operations (128 by
//! default) or `--max-request-bytes` bytes (1.5 MiB). A commit writes its mutations, an
//! expiry note per value with an expiry, and the feed entry, and compares every key it
//! read: [`EtcdEngine::commit_limits`] states the most a batch may hold so that this
//! always fits, and the engine refuses larger batches before committing
//! (`kvm.batch_too_large`) — never splits them, never writes part of one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, GetResponse, KvClient,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};

use crate::apply::{self, CommitTarget};
use crate::clock::{self, Clock};
use crate::engine::{
    AtomicBatch, CommitLimits, Engine, KeyRange, KvRef, Mutation, ScanIter, ScanOptions, Snapshot,
};
use crate::entry::{self, Entry};
use crate::error::{Error, Result};
use crate::feed::{self, Change, ChangeKind, ChangeSet};
use crate::versionstamp::Versionstamp;

/// How many rows one range request of a scan asks for.
const PAGE: usize = 512;
/// How often a commit reads and decides again when a compare failed (something changed
/// between its read and its write) before answering with a conflict.
const MAX_ROUNDS: usize = 64;
/// The value of a commit's marker key.
const COMMITTED: &[u8] = b"c";
/// How long commit markers are kept (the longest a lost answer can be recovered after).
const MARKER_LIFETIME_MS: u64 = 10 * 60 * 1000;
static MARKERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// What the largest reply may be (a page of large values).
const MAX_REPLY_BYTES: usize = 256 << 20;

/// Where and how to reach an etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// The client URLs of the cluster's members (`http://127.0.0.1:2379`, ...).
    pub endpoints: Vec<String>,
    /// The database's name in the cluster: its keys are under `kvm/<app>/`. Letters,
    /// digits, `_`, `-` and `.`.
    pub app: String,
    pub clock: Arc<dyn Clock>,
    /// How many commits the change feed keeps at most (it also keeps no more than etcd's
    /// history does).
    pub feed_retention: u64,
    /// The cluster's `--max-txn-ops` (etcd's default: 128).
    pub max_txn_ops: usize,
    /// The cluster's `--max-request-bytes` (etcd's default: 1.5 MiB).
    pub max_request_bytes: usize,
    /// How long one request may take before it fails with `storage.unavailable`.
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl EtcdOptions {
    /// Options for `app` on the cluster at `endpoints`, with etcd's default limits.
    pub fn new(endpoints: Vec<String>, app: impl Into<String>) -> Self {
        EtcdOptions {
            endpoints,
            app: app.into(),
            clock: clock::system(),
            feed_retention: feed::DEFAULT_RETENTION,
            max_txn_ops: 128,
            max_request_bytes: 1536 * 1024,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }

    /// Reads `etcd://HOST:PORT[,HOST:PORT...]/APP[?max_txn_ops=N&max_request_bytes=N&timeout_ms=N]`.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::Backend(format!(
                "{url} is not an etcd URL ({why}); expected \
                 etcd://HOST:PORT[,HOST:PORT...]/APP[?max_txn_ops=N&max_request_bytes=N&timeout_ms=N]"
            ))
        };
        let rest = url.strip_prefix("etcd://").ok_or_else(|| bad("it must start with etcd://"))?;
        let (hosts, rest) = rest.split_once('/').ok_or_else(|| bad("no /APP after the hosts"))?;
        let (app, query) = rest.split_once('?').unwrap_or((rest, ""));
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| if h.contains("://") { h.to_string() } else { format!("http://{h}") })
            .collect();
        if endpoints.is_empty() {
            return Err(bad("no host"));
        }
        let mut opts = EtcdOptions::new(endpoints, app);
        opts.app_ok().map_err(|e| bad(&e))?;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| bad("a parameter without ="))?;
            let n: u64 = v.parse().map_err(|_| bad(&format!("{k}={v} is not a number")))?;
            match k {
                "max_txn_ops" => opts.max_txn_ops = n as usize,
                "max_request_bytes" => opts.max_request_bytes = n as usize,
                "timeout_ms" => opts.timeout = Duration::from_millis(n),
                _ => return Err(bad(&format!("unknown parameter {k}"))),
            }
        }
        if opts.max_txn_ops < 8 || opts.max_request_bytes < 64 * 1024 {
            return Err(bad("max_txn_ops must be at least 8 and max_request_bytes at least 65536"));
        }
        Ok(opts)
    }

    fn app_ok(&self) -> std::result::Result<(), String> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if self.app.is_empty() || self.app.len() > 64 || !self.app.chars().all(ok) {
            return Err(format!(
                "the database name {:?} must be 1 to 64 letters, digits, _, - or .",
                self.app
            ));
        }
        Ok(())
    }
}

/// The key space of one database in the cluster.
#[derive(Debug, Clone)]
struct Keys {
    /// `kvm/<app>/`.
    base: Vec<u8>,
}

impl Keys {
    fn tagged(&self, tag: u8, rest: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.base.len() + 1 + rest.len());
        k.extend_from_slice(&self.base);
        k.push(tag);
        k.extend_from_slice(rest);
        k
    }
    fn data(&self, key: &[u8]) -> Vec<u8> {
        self.tagged(b'd', key)
    }
    /// The end (excluded) of the data keys.
    fn data_end(&self) -> Vec<u8> {
        self.tagged(b'd' + 1, b"")
    }
    fn user<'k>(&self, etcd_key: &'k [u8]) -> Result<&'k [u8]> {
        etcd_key.get(self.base.len() + 1..).ok_or_else(|| {
            Error::Corrupt(format!("etcd returned a key outside the database: {etcd_key:?}"))
        })
    }
    fn expiry(&self, at: u64, key: &[u8]) -> Vec<u8> {
        let mut rest = at.to_be_bytes().to_vec();
        rest.extend_from_slice(key);
        self.tagged(b'x', &rest)
    }
    fn feed(&self) -> Vec<u8> {
        self.tagged(b'f', b"")
    }
    fn clock(&self) -> Vec<u8> {
        self.tagged(b'c', b"")
    }
    /// `range` as etcd's `[key, range_end)`; `None` when it holds no key.
    fn range(&self, range: &KeyRange) -> Option<(Vec<u8>, Vec<u8>)> {
        use std::ops::Bound;
        let start = match &range.start {
            Bound::Included(s) => self.data(s),
            Bound::Excluded(s) => {
                let mut k = self.data(s);
                k.push(0);
                k
            }
            Bound::Unbounded => self.data(b""),
        };
        let end = match &range.end {
            Bound::Included(e) => {
                let mut k = self.data(e);
                k.push(0);
                k
            }
            Bound::Excluded(e) => self.data(e),
            Bound::Unbounded => self.data_end(),
        };
        (start < end).then_some((start, end))
    }
}

/// A database in an etcd cluster.
pub struct EtcdEngine {
    /// Runs the client's requests; every call of the engine waits for its own on a channel,
    /// so the engine may be called from any thread, inside another runtime too.
    runtime: Option<tokio::runtime::Runtime>,
    kv: KvClient,
    client: Client,
    keys: Keys,
    opts: EtcdOptions,
    /// Requests sent so far (each one network round trip).
    round_trips: std::sync::atomic::AtomicU64,
    /// What a watch stream on the feed key tells, once the feed has been read: so that
    /// polling the feed (WATCH's tailer, every few ms) asks the cluster nothing while no
    /// commit came.
    feed: Arc<FeedWatch>,
}

/// The newest feed revision a background etcd watch has seen, and whether that watch is
/// connected (while it is not, every feed read asks the cluster).
#[derive(Default)]
struct FeedWatch {
    started: std::sync::atomic::AtomicBool,
    live: std::sync::atomic::AtomicBool,
    newest: std::sync::atomic::AtomicI64,
    /// When the feed was last read from the cluster (ms since the process's first read):
    /// even while the stream says nothing came, the feed is read once a second, so a
    /// stream that stalled without breaking delays a WATCH by a second, never loses it.
    asked_at: std::sync::atomic::AtomicU64,
}

/// How often the feed is read from the cluster even while the watch stream is quiet.
const FEED_RECHECK_MS: u64 = 1_000;

fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
}

impl std::fmt::Debug for EtcdEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdEngine")
            .field("endpoints", &self.opts.endpoints)
            .field("app", &self.opts.app)
            .finish()
    }
}

impl Drop for EtcdEngine {
    fn drop(&mut self) {
        // (Dropping a runtime inside another one's context would panic.)
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// An etcd client error as a storage error: unreachable members, timeouts and a lost
/// leader are `storage.unavailable` (retry later); a compacted revision is a conflict (run
/// again from a fresh snapshot).
fn from_etcd(e: etcd_client::Error) -> Error {
    use tonic::Code;
    match &e {
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            Code::OutOfRange if s.message().contains("compacted") => {
                Error::Conflict { key: b"(etcd revision compacted)".to_vec() }
            }
            Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled => {
                Error::Unavailable(format!("etcd: {}", s.message()))
            }
            // (A connection that broke mid-request: tonic's status for it.)
            Code::Unknown if s.message().contains("transport error") => {
                Error::Unavailable(format!("etcd: {}", s.message()))
            }
            Code::InvalidArgument if s.message().contains("too many operations") => {
                Error::Backend(format!(
                    "etcd refused a transaction with too many operations ({}): start etcd with \
                     a larger --max-txn-ops and say it in the URL (max_txn_ops=N)",
                    s.message()
                ))
            }
            Code::InvalidArgument if s.message().contains("too large") => Error::Backend(format!(
                "etcd refused a request as too large ({}): start etcd with a larger \
                 --max-request-bytes and say it in the URL (max_request_bytes=N)",
                s.message()
            )),
            _ => Error::Backend(format!("etcd: {}", s.message())),
        },
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            Error::Unavailable(format!("etcd: {e}"))
        }
        _ => Error::Backend(format!("etcd: {e}")),
    }
}

/// A stored entry as read: the stored bytes with the versionstamp of the revision that
/// wrote them.
fn stored_entry(raw: &[u8], mod_revision: i64) -> Result<Vec<u8>> {
    entry::decode(raw)?;
    let mut out = raw.to_vec();
    out[1..11].copy_from_slice(&Versionstamp::from_seq(mod_revision as u64).0);
    Ok(out)
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Result<i64> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| Error::Backend("etcd answered without a response header".into()))
}

impl EtcdEngine {
    /// Connects to the cluster (one round trip, to fail early when it is unreachable).
    pub fn connect(opts: EtcdOptions) -> Result<Self> {
        opts.app_ok().map_err(Error::Backend)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kvm-etcd")
            .enable_all()
            .build()
            .map_err(|e| Error::Backend(format!("cannot start the etcd client's runtime: {e}")))?;
        let endpoints = opts.endpoints.clone();
        let connect = ConnectOptions::new()
            .with_connect_timeout(opts.connect_timeout)
            .with_timeout(opts.timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            // A member cut off from the leader refuses instead of answering stale or hanging.
            .with_require_leader(true);
        let deadline = opts.connect_timeout + opts.timeout;
        let client = block(&runtime, deadline, async move {
            let mut client = Client::connect(endpoints, Some(connect)).await?;
            // Connecting is lazy: ask something to know the cluster answers.
            client.get("kvm/", Some(GetOptions::new().with_count_only())).await?;
            Ok(client)
        })
        .map_err(|e| match e {
            Error::Unavailable(msg) => Error::Unavailable(format!(
                "cannot reach etcd at {}: {msg}",
                opts.endpoints.join(",")
            )),
            e => e,
        })?;
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_REPLY_BYTES)
            .max_encoding_message_size(opts.max_request_bytes + (1 << 20));
        let keys = Keys { base: format!("kvm/{}/", opts.app).into_bytes() };
        Ok(EtcdEngine {
            runtime: Some(runtime),
            kv,
            client,
            keys,
            opts,
            round_trips: 0.into(),
            feed: Arc::default(),
        })
    }

    /// Opens `etcd://HOST:PORT[,...]/APP[?...]` (see [`EtcdOptions::from_url`]).
    pub fn open_url(url: &str, clock: Arc<dyn Clock>) -> Result<Self> {
        let opts = EtcdOptions { clock, ..EtcdOptions::from_url(url)? };
        Self::connect(opts)
    }

    /// How many requests (network round trips) the engine has sent since it connected.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The options the engine was opened with.
    pub fn options(&self) -> &EtcdOptions {
        &self.opts
    }

    /// Runs one request (or a few, as one future) on the client's runtime and waits for it.
    fn call<T: Send + 'static>(
        &self,
        f: impl Future<Output = std::result::Result<T, etcd_client::Error>> + Send + 'static,
    ) -> Result<T> {
        let rt = self.runtime.as_ref().ok_or_else(|| Error::Backend("engine closed".into()))?;
        self.round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        block(rt, self.opts.timeout, f)
    }

    /// A range request (retried while the cluster is unavailable: reading twice is
    /// harmless).
    fn get_at(&self, key: Vec<u8>, opts: GetOptions) -> Result<GetResponse> {
        self.retrying(|| {
            let (mut kv, key, opts) = (self.kv.clone(), key.clone(), opts.clone());
            self.call(async move { kv.get(key, Some(opts)).await })
        })
    }

    /// A transaction that only reads (retried like [`EtcdEngine::get_at`]).
    fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.retrying(|| self.write_txn(txn.clone()))
    }

    /// A transaction that writes: sent once (whether it was applied when the answer is
    /// lost is the caller's question: see [`EtcdEngine::recover`]).
    fn write_txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        let mut kv = self.kv.clone();
        self.call(async move { kv.txn(txn).await })
    }

    /// How long an operation keeps trying while the cluster is unavailable (a leader
    /// election takes a few seconds).
    fn recovery_window(&self) -> Duration {
        self.opts.timeout * 3
    }

    /// Runs `f` again, with growing pauses, while it fails with `storage.unavailable`, for
    /// at most [`EtcdEngine::recovery_window`].
    fn retrying<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        let deadline = std::time::Instant::now() + self.recovery_window();
        let mut pause = Duration::from_millis(20);
        loop {
            match f() {
                Err(Error::Unavailable(_)) if std::time::Instant::now() + pause < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                r => return r,
            }
        }
    }

    /// A key no other commit of any machine uses: `t` + the time (so old ones can be
    /// cleared by range) + 16 random bytes.
    fn new_marker(&self) -> Vec<u8> {
        use std::hash::{BuildHasher, Hasher};
        let mut rest = self.opts.clock.now_millis().to_be_bytes().to_vec();
        for i in 0..2u64 {
            // (A `RandomState` is seeded from the OS's randomness once per process, then
            // from a counter; the hash of a fresh counter value is unpredictable.)
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(MARKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) ^ i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            rest.extend_from_slice(&h.finish().to_be_bytes());
        }
        self.keys.tagged(b't', &rest)
    }

    /// Whether the commit that wrote (or would have written) `marker` was applied, when
    /// its answer was lost: `Some(versionstamp)` if it was; `None` if it was not and never
    /// will be — the marker is written first ("fenced"), and the commit's compare
    /// requires it absent. `Err(storage.unavailable)` when the cluster does not answer
    /// within the recovery window: the outcome is unknown.
    fn recover(&self, marker: &[u8]) -> Result<Option<Versionstamp>> {
        let fence = Txn::new()
            .when(vec![Compare::create_revision(marker.to_vec(), CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(marker.to_vec(), b"fenced".to_vec(), None)])
            .or_else(vec![TxnOp::get(marker.to_vec(), None)]);
        let resp = self.retrying(|| self.write_txn(fence.clone())).map_err(|e| match e {
            Error::Unavailable(msg) => Error::Unavailable(format!(
                "{msg}; a commit was sent and its outcome is unknown (it may have been applied)"
            )),
            e => e,
        })?;
        if resp.succeeded() {
            return Ok(None);
        }
        for r in resp.op_responses() {
            if let TxnOpResponse::Get(g) = r {
                if let Some(kv) = g.kvs().first() {
                    if kv.value() == COMMITTED {
                        return Ok(Some(Versionstamp::from_seq(kv.mod_revision() as u64)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The current revision (one round trip).
    fn current_revision(&self) -> Result<i64> {
        let resp = self.get_at(self.keys.clock(), GetOptions::new().with_count_only())?;
        revision_of(resp.header())
    }

    /// The current revision and this database's latest commit (the newer of its feed and
    /// clock keys: every commit writes one of them), in one round trip.
    fn head(&self, first_reads: &[&[u8]]) -> Result<Head> {
        let opts = || Some(GetOptions::new().with_keys_only());
        let mut ops =
            vec![TxnOp::get(self.keys.clock(), opts()), TxnOp::get(self.keys.feed(), opts())];
        let first_reads: Vec<&[u8]> = first_reads
            .iter()
            .copied()
            .filter(|k| k.len() <= crate::MAX_KEY_LEN)
            .take(self.opts.max_txn_ops.saturating_sub(2))
            .collect();
        ops.extend(first_reads.iter().map(|k| TxnOp::get(self.keys.data(k), None)));
        let resp = self.txn(Txn::new().and_then(ops))?;
        let mut last = 0;
        let mut read = HashMap::new();
        for (i, r) in resp.op_responses().into_iter().enumerate() {
            let TxnOpResponse::Get(g) = r else { continue };
            if i < 2 {
                last = g.kvs().iter().map(|kv| kv.mod_revision()).fold(last, i64::max);
            } else {
                let stored = match g.kvs().first() {
                    Some(kv) => Some(stored_entry(kv.value(), kv.mod_revision())?),
                    None => None,
                };
                read.insert(first_reads[i - 2].to_vec(), stored);
            }
        }
        Ok(Head { rev: revision_of(resp.header())?, last, read })
    }

    /// The stored entries (versionstamps filled in) at `keys`, read at one revision
    /// (`rev`, or the latest when 0) in as few requests as the transaction limit allows;
    /// with each key's `mod_revision` (0: absent) and the revision read.
    fn fetch(&self, keys: &[&[u8]], rev: i64) -> Result<(i64, Vec<Found>)> {
        let mut out = Vec::with_capacity(keys.len());
        let mut rev = rev;
        for chunk in keys.chunks(self.opts.max_txn_ops.max(1)) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| {
                    let o = GetOptions::new();
                    TxnOp::get(
                        self.keys.data(k),
                        Some(if rev > 0 { o.with_revision(rev) } else { o }),
                    )
                })
                .collect();
            let resp = self.txn(Txn::new().and_then(ops))?;
            if rev == 0 {
                rev = revision_of(resp.header())?;
            }
            for g in range_replies(&resp)? {
                out.push(match g.kvs().first() {
                    Some(kv) => {
                        (Some(stored_entry(kv.value(), kv.mod_revision())?), kv.mod_revision())
                    }
                    None => (None, 0),
                });
            }
        }
        if rev == 0 {
            rev = self.current_revision()?;
        }
        Ok((rev, out))
    }

    /// One commit attempt: reads what `batch` needs at one revision, decides, and sends
    /// the transaction, marked with `marker` (written by it, required absent by it).
    fn try_commit(&self, batch: &AtomicBatch, marker: &[u8]) -> Result<Attempt> {
        let now = self.opts.clock.now_millis();
        // The keys whose current state the batch depends on.
        let mut wanted: Vec<&[u8]> = Vec::new();
        for c in &batch.checks {
            if c.key.len() <= crate::MAX_KEY_LEN {
                wanted.push(&c.key);
            }
        }
        for m in &batch.mutations {
            if !matches!(m, Mutation::Set { .. }) && m.key().len() <= crate::MAX_KEY_LEN {
                wanted.push(m.key());
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let (rev, found) = if wanted.is_empty() && batch.range_checks.is_empty() {
            (0, Vec::new())
        } else {
            self.fetch(&wanted, 0)?
        };
        let mut read = ReadSet::new();
        for (k, f) in wanted.iter().zip(found) {
            read.insert(k.to_vec(), f);
        }
        // Range checks: what each range holds that was written after its snapshot.
        let mut newer = Vec::new();
        for rc in &batch.range_checks {
            let range = rc.range.clamped(crate::MAX_KEY_LEN);
            let Some((start, end)) = self.keys.range(&range) else { continue };
            let min = rc.after.seq() as i64 + 1;
            let resp = self.get_at(
                start.clone(),
                GetOptions::new()
                    .with_range(end.clone())
                    .with_revision(rev)
                    .with_min_mod_revision(min),
            )?;
            let mut rows = Vec::new();
            for kv in resp.kvs() {
                rows.push((
                    self.keys.user(kv.key())?.to_vec(),
                    stored_entry(kv.value(), kv.mod_revision())?,
                ));
            }
            newer.push(Newer { range, start, end, rows });
        }
        let mut target = Staged {
            engine: self,
            rev,
            read,
            newer: &newer,
            writes: HashMap::new(),
            ops: Vec::new(),
        };
        // Versionstamps in the stored bytes are placeholders: a read fills in the revision.
        let writes = apply::prepare(&mut target, batch, Versionstamp::ZERO, now)?;
        let changes = apply::write(&mut target, writes)?;
        let (read, ops, target_bytes) = target.into_ops();
        let mut compares: Vec<Compare> = read
            .iter()
            .map(|(k, (_, modrev))| {
                Compare::mod_revision(self.keys.data(k), CompareOp::Equal, *modrev)
            })
            .collect();
        for n in &newer {
            compares.push(
                Compare::mod_revision(n.start.clone(), CompareOp::Less, rev + 1)
                    .with_range(n.end.clone()),
            );
        }
        let mut ops = ops;
        compares.push(Compare::create_revision(marker.to_vec(), CompareOp::Equal, 0));
        ops.push(TxnOp::put(marker.to_vec(), COMMITTED.to_vec(), None));
        if changes.is_empty() {
            ops.push(TxnOp::put(self.keys.clock(), Vec::new(), None));
        } else {
            ops.push(TxnOp::put(self.keys.feed(), feed::encode(&changes), None));
        }
        let key_len = self.keys.base.len() + 1;
        let bytes: usize = target_bytes
            + compares.len() * (key_len + 24)
            + newer.iter().map(|n| n.start.len() + n.end.len()).sum::<usize>()
            + changes.iter().map(|c| c.key.len() + 4).sum::<usize>()
            + key_len * 3
            + 128;
        if ops.len() > self.opts.max_txn_ops
            || compares.len() > self.opts.max_txn_ops
            || bytes > self.opts.max_request_bytes
        {
            return Err(Error::Backend(format!(
                "the commit needs {} operations, {} compares and about {bytes} bytes, more than \
                 this etcd cluster takes in one transaction ({} operations, {} bytes): it was \
                 not written",
                ops.len(),
                compares.len(),
                self.opts.max_txn_ops,
                self.opts.max_request_bytes
            )));
        }
        let resp = match self.write_txn(Txn::new().when(compares).and_then(ops)) {
            Ok(r) => r,
            Err(Error::Unavailable(_)) => return Ok(Attempt::Unknown),
            Err(e) => return Err(e),
        };
        if !resp.succeeded() {
            return Ok(Attempt::Changed);
        }
        Ok(Attempt::Done(Versionstamp::from_seq(revision_of(resp.header())? as u64)))
    }

    /// Starts the background watch of the feed key that [`FeedWatch`] reports: from the
    /// revision at which the feed's head was read, so no commit falls between; after a
    /// broken stream it is not `live` until it has read the head again and watches from
    /// there.
    fn watch_feed(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let Some(rt) = self.runtime.as_ref() else { return };
        let (mut kv, mut watch) = (self.kv.clone(), self.client.watch_client());
        let (key, feed) = (self.keys.feed(), self.feed.clone());
        rt.spawn(async move {
            loop {
                feed.live.store(false, SeqCst);
                let head = kv.get(key.clone(), Some(GetOptions::new().with_keys_only())).await;
                let Ok(head) = head else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let at = head.header().map_or(0, |h| h.revision());
                let newest = head.kvs().first().map_or(0, |kv| kv.mod_revision());
                feed.newest.fetch_max(newest, SeqCst);
                let opts = WatchOptions::new().with_start_revision(at + 1);
                let Ok(mut stream) = watch.watch(key.clone(), Some(opts)).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                while let Ok(Some(resp)) = stream.message().await {
                    if resp.canceled() {
                        break;
                    }
                    for ev in resp.events() {
                        if let Some(kv) = ev.kv() {
                            feed.newest.fetch_max(kv.mod_revision(), SeqCst);
                        }
                    }
                    if resp.created() {
                        feed.live.store(true, SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// The feed's newest entry: its revision and its `version` (the count of commits that
    /// changed something); `None` before the first.
    fn feed_head(&self) -> Result<Option<(i64, i64)>> {
        let resp = self.get_at(self.keys.feed(), GetOptions::new().with_keys_only())?;
        Ok(resp.kvs().first().map(|kv| (kv.mod_revision(), kv.version())))
    }
}

/// Runs `f` on `rt` and waits for it, at most `timeout`.
fn block<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    timeout: Duration,
    f: impl Future<Output = std::result::Result<T, etcd_client::Error>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let out = tokio::time::timeout(timeout, f).await;
        let _ = tx.send(out);
    });
    match rx.recv() {
        Ok(Ok(r)) => r.map_err(from_etcd),
        Ok(Err(_)) => Err(Error::Unavailable(format!(
            "etcd did not answer within {} ms (is a majority of the cluster up?)",
            timeout.as_millis()
        ))),
        Err(_) => Err(Error::Backend("the etcd client's runtime stopped".into())),
    }
}

/// What opening a snapshot read: its revision, the database's latest commit, and the
/// entries of the keys asked for first.
struct Head {
    rev: i64,
    last: i64,
    read: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

/// How one commit attempt ended.
enum Attempt {
    Done(Versionstamp),
    /// A compare failed: something changed between the read and the write.
    Changed,
    /// The transaction was sent and no answer came: it may or may not have been applied.
    Unknown,
}

/// A stored entry read (versionstamp filled in; `None`: absent) and its `mod_revision`
/// (0 when absent): what a commit compares.
type Found = (Option<Vec<u8>>, i64);

/// The replies of a read-only transaction, each a range reply.
fn range_replies(resp: &etcd_client::TxnResponse) -> Result<Vec<GetResponse>> {
    resp.op_responses()
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(g) => Ok(g),
            _ => Err(Error::Backend("etcd answered a read with a write".into())),
        })
        .collect()
}

/// What a commit read: key → (stored entry, `mod_revision`, 0 when absent).
type ReadSet = HashMap<Vec<u8>, (Option<Vec<u8>>, i64)>;

/// A range check's range, its etcd bounds, and what it holds that was written after the
/// check's snapshot (key, stored entry).
struct Newer {
    range: KeyRange,
    start: Vec<u8>,
    end: Vec<u8>,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A commit's view of the store: the keys read at one revision, and the writes decided
/// so far (one per etcd key: etcd refuses a transaction that names a key twice).
struct Staged<'e, 'n> {
    engine: &'e EtcdEngine,
    rev: i64,
    /// Key → (stored entry, mod_revision); every key here is compared at commit.
    read: ReadSet,
    newer: &'n [Newer],
    /// etcd key → what the commit leaves there (`None`: deleted), in first-write order.
    writes: HashMap<Vec<u8>, usize>,
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Staged<'_, '_> {
    fn stage(&mut self, etcd_key: Vec<u8>, value: Option<Vec<u8>>) {
        match self.writes.get(&etcd_key) {
            Some(&i) => self.ops[i].1 = value,
            None => {
                self.writes.insert(etcd_key.clone(), self.ops.len());
                self.ops.push((etcd_key, value));
            }
        }
    }

    /// The etcd operations and about how many bytes they take.
    fn into_ops(self) -> (ReadSet, Vec<TxnOp>, usize) {
        let mut bytes = 0;
        let ops = self
            .ops
            .into_iter()
            .map(|(k, v)| {
                bytes += k.len() + v.as_ref().map_or(0, Vec::len) + 12;
                match v {
                    Some(v) => TxnOp::put(k, v, None),
                    None => TxnOp::delete(k, None),
                }
            })
            .collect();
        (self.read, ops, bytes)
    }
}

impl CommitTarget for Staged<'_, '_> {
    fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let etcd_key = self.engine.keys.data(key);
        if let Some(&i) = self.writes.get(&etcd_key) {
            return Ok(self.ops[i].1.clone());
        }
        if let Some((stored, _)) = self.read.get(key) {
            return Ok(stored.clone());
        }
        // Not read ahead (the shared logic asked for more than expected): read it now, at
        // the same revision, and compare it at commit like the others.
        let (_, mut found) = self.engine.fetch(&[key], self.rev)?;
        let (stored, modrev) = found.pop().unwrap_or((None, 0));
        self.read.insert(key.to_vec(), (stored.clone(), modrev));
        Ok(stored)
    }
    fn write(&mut self, key: &[u8], stored: Vec<u8>) -> Result<()> {
        self.stage(self.engine.keys.data(key), Some(stored));
        Ok(())
    }
    fn remove(&mut self, key: &[u8]) -> Result<bool> {
        let existed = self.read(key)?.is_some();
        if existed {
            self.stage(self.engine.keys.data(key), None);
        }
        Ok(existed)
    }
    fn note_expiry(&mut self, at: u64, key: &[u8]) -> Result<()> {
        self.stage(self.engine.keys.expiry(at, key), Some(Vec::new()));
        Ok(())
    }
    fn newer_in(
        &mut self,
        range: &KeyRange,
        after: Versionstamp,
        now: u64,
    ) -> Result<Option<Vec<u8>>> {
        for n in self.newer {
            if &n.range == range {
                for (k, raw) in &n.rows {
                    if apply::is_newer(raw, after, now)? {
                        return Ok(Some(k.clone()));
                    }
                }
                return Ok(None);
            }
        }
        Err(Error::Backend("a range check was not read ahead".into()))
    }
}

impl Engine for EtcdEngine {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        self.snapshot_with(&[])
    }

    fn snapshot_with(&self, first_reads: &[&[u8]]) -> Result<Box<dyn Snapshot + '_>> {
        let head = self.head(first_reads)?;
        Ok(Box::new(EtcdSnapshot {
            engine: self,
            rev: head.rev,
            last: head.last,
            read_ahead: std::cell::RefCell::new(head.read),
            now: self.opts.clock.now_millis(),
            arena: bumpalo::Bump::new(),
        }))
    }

    fn commit(&self, batch: &AtomicBatch) -> Result<Versionstamp> {
        for m in &batch.mutations {
            crate::engine::check_key(m.key())?;
        }
        for round in 0..MAX_ROUNDS {
            let marker = self.new_marker();
            match self.try_commit(batch, &marker)? {
                Attempt::Done(vs) => {
                    // (This process's watches read the feed at once, not when the watch
                    // stream's event comes.)
                    let rev = vs.seq() as i64;
                    self.feed.newest.fetch_max(rev, std::sync::atomic::Ordering::SeqCst);
                    return Ok(vs);
                }
                Attempt::Changed => {}
                Attempt::Unknown => match self.recover(&marker)? {
                    Some(vs) => return Ok(vs),
                    // Not applied, and fenced off for good: decide again from fresh reads.
                    None => continue,
                },
            }
            if round > 2 {
                std::thread::sleep(Duration::from_micros(50 << round.min(8)));
            }
        }
        let key = batch
            .checks
            .first()
            .map(|c| c.key.clone())
            .or_else(|| batch.mutations.first().map(|m| m.key().to_vec()))
            .unwrap_or_default();
        Err(Error::Conflict { key })
    }

    fn commit_limits(&self) -> Option<CommitLimits> {
        // Per batch operation, the transaction may hold a put or delete and an expiry note
        // (writes), and a compare (reads); plus the feed entry. The feed entry repeats the
        // keys, and compares repeat the keys read.
        Some(CommitLimits {
            max_ops: (self.opts.max_txn_ops.saturating_sub(1)) / 2,
            max_bytes: self.opts.max_request_bytes.saturating_sub(64 * 1024) / 3,
        })
    }

    fn changes_since(&self, after: Versionstamp, limit: usize) -> Result<Vec<ChangeSet>> {
        use std::sync::atomic::Ordering::{Relaxed, SeqCst};
        let now = monotonic_ms();
        if self.feed.live.load(SeqCst)
            && self.feed.newest.load(SeqCst) <= after.seq() as i64
            && now.saturating_sub(self.feed.asked_at.load(Relaxed)) < FEED_RECHECK_MS
        {
            // The watch stream is connected and has seen no commit after `after`.
            return Ok(Vec::new());
        }
        self.feed.asked_at.store(now, Relaxed);
        if !self.feed.started.swap(true, Relaxed) {
            self.watch_feed();
        }
        let Some((head_rev, head_version)) = self.feed_head()? else { return Ok(Vec::new()) };
        if head_rev as u64 <= after.seq() || limit == 0 {
            return Ok(Vec::new());
        }
        let key = self.keys.feed();
        let start = after.seq() as i64 + 1;
        let retention = self.opts.feed_retention as i64;
        let watch = self.client.watch_client().max_decoding_message_size(MAX_REPLY_BYTES);
        let events = self.retrying(|| {
            let (mut watch, key) = (watch.clone(), key.clone());
            self.call(async move {
                let mut stream =
                    watch.watch(key, Some(WatchOptions::new().with_start_revision(start))).await?;
                let mut out: Vec<(i64, i64, Vec<u8>)> = Vec::new();
                let mut compacted = 0;
                'read: while let Some(resp) = stream.message().await? {
                    if resp.compact_revision() > 0 {
                        compacted = resp.compact_revision();
                        break;
                    }
                    if resp.canceled() {
                        break;
                    }
                    for ev in resp.events() {
                        if ev.event_type() != EventType::Put {
                            continue;
                        }
                        let Some(kv) = ev.kv() else { continue };
                        out.push((kv.mod_revision(), kv.version(), kv.value().to_vec()));
                        if out.len() >= limit || kv.mod_revision() >= head_rev {
                            break 'read;
                        }
                    }
                }
                Ok((out, compacted))
            })
        })?;
        let (events, compacted) = events;
        if compacted > 0 {
            return Err(feed::truncated(after, compacted as u64));
        }
        if let Some((_, first_version, _)) = events.first() {
            if head_version - first_version + 1 > retention {
                // (The oldest kept is the commit `retention` before the newest.)
                return Err(Error::FeedTruncated {
                    requested: after.to_string(),
                    oldest: format!("the last {retention} commits"),
                });
            }
        }
        events
            .into_iter()
            .map(|(rev, _, value)| feed::decode(Versionstamp::from_seq(rev as u64), &value))
            .collect()
    }

    fn sweep_expired(&self, limit: usize) -> Result<usize> {
        let now = self.opts.clock.now_millis();
        // Commit markers older than any answer that could still be recovered.
        let old = now.saturating_sub(MARKER_LIFETIME_MS);
        let (from, to) = (self.keys.tagged(b't', b""), self.keys.tagged(b't', &old.to_be_bytes()));
        let mut kv = self.kv.clone();
        self.call(async move {
            kv.delete(from, Some(etcd_client::DeleteOptions::new().with_range(to))).await
        })?;
        let start = self.keys.tagged(b'x', b"");
        let end = self.keys.tagged(b'x', &now.saturating_add(1).to_be_bytes());
        let limit = limit.min(self.opts.max_txn_ops.saturating_sub(1) / 3).max(1);
        let resp = self.get_at(
            start,
            GetOptions::new().with_range(end).with_keys_only().with_limit(limit as i64),
        )?;
        let rev = revision_of(resp.header())?;
        let notes: Vec<(Vec<u8>, u64, Vec<u8>)> = resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let rest = kv.key().get(self.keys.base.len() + 1..)?;
                let at = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
                Some((kv.key().to_vec(), at, rest[8..].to_vec()))
            })
            .collect();
        if notes.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&[u8]> = notes.iter().map(|(_, _, k)| k.as_slice()).collect();
        let (_, found) = self.fetch(&keys, rev)?;
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        let mut changes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for ((note, at, key), f) in notes.iter().zip(found) {
            ops.push(TxnOp::delete(note.clone(), None));
            let (Some(stored), modrev) = f else { continue };
            let e = entry::decode(&stored)?;
            if e.expire_at() == Some(*at) && !e.is_live(now) && seen.insert(key.clone()) {
                compares.push(Compare::mod_revision(self.keys.data(key), CompareOp::Equal, modrev));
                ops.push(TxnOp::delete(self.keys.data(key), None));
                changes.push(Change { key: key.clone(), kind: ChangeKind::Expire });
            }
        }
        let n = changes.len();
        if n > 0 {
            ops.push(TxnOp::put(self.keys.feed(), feed::encode(&changes), None));
        }
        let resp = self.write_txn(Txn::new().when(compares).and_then(ops))?;
        // A key rewritten meanwhile is left to the next sweep.
        Ok(if resp.succeeded() { n } else { 0 })
    }

    fn backup(&self, path: &std::path::Path) -> Result<()> {
        crate::engine::backup_by_copy(self, path)
    }
}

/// A read view at one etcd revision. What it reads is kept until it is dropped (reads
/// hand out entries borrowed from it).
struct EtcdSnapshot<'e> {
    engine: &'e EtcdEngine,
    /// The revision every read is made at.
    rev: i64,
    /// The revision of this database's latest commit at `rev` (other databases of the
    /// cluster move the revision too).
    last: i64,
    /// The entries of single keys read so far (with the request that opened the snapshot,
    /// or since): a snapshot never changes, so a key read twice is asked for once.
    read_ahead: std::cell::RefCell<HashMap<Vec<u8>, Option<Vec<u8>>>>,
    now: u64,
    arena: bumpalo::Bump,
}

impl<'e> EtcdSnapshot<'e> {
    /// One row of a range reply, kept in the arena; `None` when it has expired.
    fn keep<'a>(&'a self, kv: &etcd_client::KeyValue) -> Result<Option<KvRef<'a>>> {
        let key = self.engine.keys.user(kv.key())?;
        let raw = stored_entry(kv.value(), kv.mod_revision())?;
        if !entry::decode(&raw)?.is_live(self.now) {
            return Ok(None);
        }
        let key: &'a [u8] = self.arena.alloc_slice_copy(key);
        let raw: &'a [u8] = self.arena.alloc_slice_copy(&raw);
        Ok(Some((key, entry::decode(raw)?)))
    }

    fn range_opts(&self, end: Vec<u8>, reverse: bool, limit: usize) -> GetOptions {
        let o = GetOptions::new().with_range(end).with_revision(self.rev).with_limit(limit as i64);
        if reverse {
            o.with_sort(SortTarget::Key, SortOrder::Descend)
        } else {
            o
        }
    }
}

impl Snapshot for EtcdSnapshot<'_> {
    fn batch_reads(&self) -> bool {
        true
    }

    fn versionstamp(&self) -> Versionstamp {
        Versionstamp::from_seq(self.last as u64)
    }

    fn now_millis(&self) -> u64 {
        self.now
    }

    fn get<'a>(&'a self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        if key.len() > crate::MAX_KEY_LEN {
            return Ok(None);
        }
        let known = self.read_ahead.borrow().get(key).cloned();
        let stored = match known {
            Some(stored) => stored,
            None => {
                let resp = self.engine.get_at(
                    self.engine.keys.data(key),
                    GetOptions::new().with_revision(self.rev),
                )?;
                let stored = match resp.kvs().first() {
                    Some(kv) => Some(stored_entry(kv.value(), kv.mod_revision())?),
                    None => None,
                };
                self.read_ahead.borrow_mut().insert(key.to_vec(), stored.clone());
                stored
            }
        };
        let Some(raw) = stored else { return Ok(None) };
        let raw: &'a [u8] = self.arena.alloc_slice_copy(&raw);
        let e = entry::decode(raw)?;
        Ok(e.is_live(self.now).then_some(e))
    }

    fn get_many<'a>(&'a self, keys: &[&[u8]]) -> Result<Vec<Option<Entry<'a>>>> {
        let short: Vec<&[u8]> =
            keys.iter().copied().filter(|k| k.len() <= crate::MAX_KEY_LEN).collect();
        let (_, found) = self.engine.fetch(&short, self.rev)?;
        let mut found = found.into_iter();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if k.len() > crate::MAX_KEY_LEN {
                out.push(None);
                continue;
            }
            out.push(match found.next().and_then(|(raw, _)| raw) {
                Some(raw) => {
                    let raw: &'a [u8] = self.arena.alloc_slice_copy(&raw);
                    let e = entry::decode(raw)?;
                    e.is_live(self.now).then_some(e)
                }
                None => None,
            });
        }
        Ok(out)
    }

    fn scan<'a>(&'a self, range: &KeyRange, opts: ScanOptions) -> Result<ScanIter<'a>> {
        let Some((start, end)) = self.engine.keys.range(range) else {
            return Ok(Box::new(std::iter::empty()));
        };
        Ok(Box::new(Pager {
            snap: self,
            start,
            end,
            reverse: opts.reverse,
            remaining: opts.limit.unwrap_or(usize::MAX),
            buf: std::collections::VecDeque::new(),
            done: false,
        }))
    }

    fn scan_many<'a>(
        &'a self,
        ranges: &[KeyRange],
        opts: ScanOptions,
    ) -> Result<Vec<Vec<KvRef<'a>>>> {
        let limit = opts.limit.unwrap_or(usize::MAX);
        let page = limit.min(PAGE);
        let bounds: Vec<Option<(Vec<u8>, Vec<u8>)>> =
            ranges.iter().map(|r| self.engine.keys.range(r)).collect();
        let asked: Vec<&(Vec<u8>, Vec<u8>)> = bounds.iter().flatten().collect();
        let mut replies = Vec::with_capacity(asked.len());
        for chunk in asked.chunks(self.engine.opts.max_txn_ops.max(1)) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|(s, e)| {
                    TxnOp::get(s.clone(), Some(self.range_opts(e.clone(), opts.reverse, page)))
                })
                .collect();
            let resp = self.engine.txn(Txn::new().and_then(ops))?;
            replies.extend(range_replies(&resp)?);
        }
        let mut replies = replies.into_iter();
        let mut out = Vec::with_capacity(ranges.len());
        for b in &bounds {
            let Some((start, end)) = b else {
                out.push(Vec::new());
                continue;
            };
            let g =
                replies.next().ok_or_else(|| Error::Backend("etcd lost a range reply".into()))?;
            let mut rows = Vec::new();
            let mut last: Option<Vec<u8>> = None;
            for kv in g.kvs() {
                last = Some(kv.key().to_vec());
                if rows.len() < limit {
                    if let Some(row) = self.keep(kv)? {
                        rows.push(row);
                    }
                }
            }
            if g.more() && rows.len() < limit {
                // Expired rows (or a long range): read on from where the reply stopped.
                let (mut start, mut end) = (start.clone(), end.clone());
                if let Some(last) = last {
                    if opts.reverse {
                        end = last;
                    } else {
                        start = last;
                        start.push(0);
                    }
                }
                let pager = Pager {
                    snap: self,
                    start,
                    end,
                    reverse: opts.reverse,
                    remaining: limit - rows.len(),
                    buf: std::collections::VecDeque::new(),
                    done: false,
                };
                for row in pager {
                    rows.push(row?);
                }
            }
            out.push(rows);
        }
        Ok(out)
    }
}

/// A scan, read a page at a time.
struct Pager<'a> {
    snap: &'a EtcdSnapshot<'a>,
    /// What is left to read: `[start, end)` in etcd keys.
    start: Vec<u8>,
    end: Vec<u8>,
    reverse: bool,
    remaining: usize,
    buf: std::collections::VecDeque<KvRef<'a>>,
    done: bool,
}

impl<'a> Pager<'a> {
    fn fill(&mut self) -> Result<()> {
        while self.buf.is_empty() && !self.done {
            let page = self.remaining.min(PAGE);
            let opts = self.snap.range_opts(self.end.clone(), self.reverse, page);
            let resp = self.snap.engine.get_at(self.start.clone(), opts)?;
            let kvs = resp.kvs();
            for kv in kvs {
                if let Some(row) = self.snap.keep(kv)? {
                    self.buf.push_back(row);
                }
            }
            match kvs.last() {
                Some(last) if resp.more() => {
                    if self.reverse {
                        self.end = last.key().to_vec();
                    } else {
                        self.start = last.key().to_vec();
                        self.start.push(0);
                    }
                }
                _ => self.done = true,
            }
        }
        Ok(())
    }
}

impl<'a> Iterator for Pager<'a> {
    type Item = Result<KvRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        if let Err(e) = self.fill() {
            self.done = true;
            self.remaining = 0;
            return Some(Err(e));
        }
        let row = self.buf.pop_front()?;
        self.remaining -= 1;
        Some(Ok(row))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn engine() -> Option<EtcdEngine> {
        match crate::etcd_testing::shared() {
            Ok(c) => {
                let url = c.url(&crate::etcd_testing::unique_app("unit"));
                Some(EtcdEngine::open_url(&url, clock::system()).unwrap())
            }
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    fn counter(e: &EtcdEngine) -> Option<u64> {
        let snap = e.snapshot().unwrap();
        let entry = snap.get(b"n").unwrap()?;
        crate::Value::decode_counter(entry.value())
    }

    /// A commit whose answer was lost is found applied by its marker, once; one that never
    /// arrived is fenced off, so that if it arrives later it cannot apply.
    #[test]
    fn a_lost_answer_is_recovered_and_a_late_commit_is_fenced_off() {
        let Some(e) = engine() else { return };
        let batch = AtomicBatch::new().sum(b"n", 1);
        let sent = e.new_marker();
        let Attempt::Done(vs) = e.try_commit(&batch, &sent).unwrap() else {
            panic!("the first commit must go through")
        };
        // As if its answer had been lost: recovery finds it applied, at its versionstamp.
        assert_eq!(e.recover(&sent).unwrap(), Some(vs));
        assert_eq!(e.recover(&sent).unwrap(), Some(vs), "asking again gives the same answer");
        // A commit whose request has not arrived yet: recovery fences it off ...
        let late = e.new_marker();
        assert_eq!(e.recover(&late).unwrap(), None);
        assert_eq!(e.recover(&late).unwrap(), None);
        // ... and when it arrives it is refused, so the retry is the only increment.
        assert!(matches!(e.try_commit(&batch, &late).unwrap(), Attempt::Changed));
        assert_eq!(counter(&e), Some(1));
        e.commit(&batch).unwrap();
        assert_eq!(counter(&e), Some(2));
        assert_ne!(e.new_marker(), e.new_marker(), "markers are unique");
    }

    #[test]
    fn urls_are_read_or_refused_with_the_expected_form() {
        let o =
            EtcdOptions::from_url("etcd://a:1,b:2/shop?max_txn_ops=500&timeout_ms=250").unwrap();
        assert_eq!(o.endpoints, vec!["http://a:1".to_string(), "http://b:2".to_string()]);
        assert_eq!((o.app.as_str(), o.max_txn_ops), ("shop", 500));
        assert_eq!(o.timeout, Duration::from_millis(250));
        assert_eq!(o.max_request_bytes, 1536 * 1024, "etcd's default");
        for bad in [
            "http://a:1/shop",
            "etcd://a:1",
            "etcd:///shop",
            "etcd://a:1/sh/op",
            "etcd://a:1/",
            "etcd://a:1/shop?max_txn_ops=x",
            "etcd://a:1/shop?colour=red",
            "etcd://a:1/shop?max_txn_ops=2",
        ] {
            let err = EtcdOptions::from_url(bad).unwrap_err();
            assert!(err.to_string().contains("expected etcd://HOST:PORT"), "{bad}: {err}");
        }
    }
}
