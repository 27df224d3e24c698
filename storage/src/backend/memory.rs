//! The in-memory backend (`:memory:`): a persistent ordered map whose O(1) clones make
//! snapshots free, and a commit is "apply to a copy, then swap it in".

use std::collections::{BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock};

use imbl::OrdMap;

use crate::apply::{apply_batch, sweepable, CommitTarget, DirectView};
use crate::clock::{self, Clock};
use crate::engine::{AtomicBatch, Direct, Engine, KeyRange, ScanIter, ScanOptions, Snapshot};
use crate::entry::{self, Entry};
use crate::error::{Error, Result};
use crate::feed::{self, Change, ChangeKind, ChangeSet};
use crate::versionstamp::Versionstamp;

type Map = OrdMap<Vec<u8>, Vec<u8>>;

#[derive(Default)]
struct State {
    data: Map,
    expiry: BTreeSet<(u64, Vec<u8>)>,
    feed: VecDeque<ChangeSet>,
    seq: u64,
    /// The oldest commit sequence the feed still covers.
    floor: u64,
}

/// A database that lives in memory and vanishes with the process.
pub struct MemoryEngine {
    state: RwLock<State>,
    /// Held by every write (commit, sweep, direct write) from its first read of the state
    /// to its swap: a direct write works on a copy without blocking snapshots, and nothing
    /// commits underneath it.
    writer: Mutex<()>,
    clock: Arc<dyn Clock>,
    retention: u64,
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::with_clock(clock::system())
    }

    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryEngine {
            state: RwLock::new(State { floor: 1, ..State::default() }),
            writer: Mutex::new(()),
            clock,
            retention: feed::DEFAULT_RETENTION,
        }
    }

    /// Keeps only the last `commits` change sets in the feed.
    pub fn with_feed_retention(mut self, commits: u64) -> Self {
        self.retention = commits.max(1);
        self
    }

    fn write_state(&self) -> Result<std::sync::RwLockWriteGuard<'_, State>> {
        self.state.write().map_err(|_| Error::Backend("memory engine lock poisoned".into()))
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.writer.lock().map_err(|_| Error::Backend("memory engine lock poisoned".into()))
    }

    fn read_state(&self) -> Result<std::sync::RwLockReadGuard<'_, State>> {
        self.state.read().map_err(|_| Error::Backend("memory engine lock poisoned".into()))
    }

    /// Makes `changes` the commit after the current one (which must have changed something
    /// to be recorded) and returns its versionstamp.
    fn finish(&self, st: &mut State, changes: Vec<Change>) -> Versionstamp {
        st.seq += 1;
        let vs = Versionstamp::from_seq(st.seq);
        if !changes.is_empty() {
            st.feed.push_back(ChangeSet { versionstamp: vs, changes });
        }
        let keep_from = (st.seq + 1).saturating_sub(self.retention).max(1);
        while st.feed.front().is_some_and(|c| c.versionstamp.seq() < keep_from) {
            st.feed.pop_front();
        }
        st.floor = st.floor.max(keep_from);
        vs
    }
}

struct Work {
    data: Map,
    expiry: Vec<(u64, Vec<u8>)>,
}

impl CommitTarget for Work {
    fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.data.get(key).cloned())
    }
    fn write(&mut self, key: &[u8], stored: Vec<u8>) -> Result<()> {
        self.data.insert(key.to_vec(), stored);
        Ok(())
    }
    fn remove(&mut self, key: &[u8]) -> Result<bool> {
        Ok(self.data.remove(key).is_some())
    }
    fn note_expiry(&mut self, at: u64, key: &[u8]) -> Result<()> {
        self.expiry.push((at, key.to_vec()));
        Ok(())
    }
    fn newer_in(
        &mut self,
        range: &KeyRange,
        after: Versionstamp,
        now: u64,
    ) -> Result<Option<Vec<u8>>> {
        let (lo, hi) = range.as_slices();
        let owned = |b: std::ops::Bound<&[u8]>| b.map(<[u8]>::to_vec);
        for (k, raw) in self.data.range((owned(lo), owned(hi))) {
            if crate::apply::is_newer(raw, after, now)? {
                return Ok(Some(k.clone()));
            }
        }
        Ok(None)
    }
}

impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        let st = self.read_state()?;
        Ok(Box::new(MemorySnapshot {
            data: st.data.clone(),
            vs: Versionstamp::from_seq(st.seq),
            now: self.clock.now_millis(),
            may_expire: !st.expiry.is_empty(),
        }))
    }

    fn commit(&self, batch: &AtomicBatch) -> Result<Versionstamp> {
        let _writer = self.writer()?;
        let mut st = self.write_state()?;
        let now = self.clock.now_millis();
        let vs = Versionstamp::from_seq(st.seq + 1);
        let mut work = Work { data: st.data.clone(), expiry: Vec::new() };
        let changes = apply_batch(&mut work, batch, vs, now)?;
        st.data = work.data;
        st.expiry.extend(work.expiry);
        Ok(self.finish(&mut st, changes))
    }

    fn write_direct(
        &self,
        _bytes: usize,
        write: &mut dyn FnMut(&dyn Direct) -> Result<()>,
    ) -> Result<Option<Versionstamp>> {
        let _writer = self.writer()?;
        let (data, seq) = {
            let st = self.read_state()?;
            (st.data.clone(), st.seq)
        };
        // A copy of the map (O(1)), swapped in when the write succeeds.
        let work = Work { data, expiry: Vec::new() };
        let view = DirectView::new(work, Versionstamp::from_seq(seq), self.clock.now_millis());
        write(&view)?;
        let (work, changes, _) = view.finish();
        let mut st = self.write_state()?;
        st.data = work.data;
        st.expiry.extend(work.expiry);
        Ok(Some(self.finish(&mut st, changes)))
    }

    fn changes_since(&self, after: Versionstamp, limit: usize) -> Result<Vec<ChangeSet>> {
        let st = self.read_state()?;
        if after.seq() + 1 < st.floor {
            return Err(feed::truncated(after, st.floor));
        }
        Ok(st.feed.iter().filter(|c| c.versionstamp > after).take(limit).cloned().collect())
    }

    fn sweep_expired(&self, limit: usize) -> Result<usize> {
        let _writer = self.writer()?;
        let mut st = self.write_state()?;
        let now = self.clock.now_millis();
        let due: Vec<(u64, Vec<u8>)> =
            st.expiry.iter().take_while(|(at, _)| *at <= now).take(limit).cloned().collect();
        if due.is_empty() {
            return Ok(0);
        }
        let mut work = Work { data: st.data.clone(), expiry: Vec::new() };
        let mut changes = Vec::new();
        for (at, key) in &due {
            st.expiry.remove(&(*at, key.clone()));
            if sweepable(&mut work, *at, key, now)? {
                work.data.remove(key.as_slice());
                changes.push(Change { key: key.clone(), kind: ChangeKind::Expire });
            }
        }
        st.data = work.data;
        let n = changes.len();
        if n > 0 {
            self.finish(&mut st, changes);
        }
        Ok(n)
    }

    fn backup(&self, path: &std::path::Path) -> Result<()> {
        crate::engine::backup_by_copy(self, path)
    }
}

struct MemorySnapshot {
    data: Map,
    vs: Versionstamp,
    now: u64,
    /// False when no value in this snapshot has an expiry: scans then skip the test.
    may_expire: bool,
}

impl Snapshot for MemorySnapshot {
    fn versionstamp(&self) -> Versionstamp {
        self.vs
    }

    fn now_millis(&self) -> u64 {
        self.now
    }

    fn get<'a>(&'a self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        match self.data.get(key) {
            None => Ok(None),
            Some(raw) => {
                let e = entry::decode(raw)?;
                Ok(e.is_live(self.now).then_some(e))
            }
        }
    }

    fn scan<'a>(&'a self, range: &KeyRange, opts: ScanOptions) -> Result<ScanIter<'a>> {
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = range.as_slices();
        let it = self.data.range::<_, [u8]>(bounds);
        let now = self.may_expire.then_some(self.now);
        let rows = move |(k, raw): (&'a Vec<u8>, &'a Vec<u8>)| match entry::decode(raw) {
            Ok(e) if now.is_none_or(|now| e.is_live(now)) => Some(Ok((k.as_slice(), e))),
            Ok(_) => None,
            Err(err) => Some(Err(err)),
        };
        let limit = opts.limit.unwrap_or(usize::MAX);
        if opts.reverse {
            Ok(Box::new(it.rev().filter_map(rows).take(limit)))
        } else {
            Ok(Box::new(it.filter_map(rows).take(limit)))
        }
    }
}
