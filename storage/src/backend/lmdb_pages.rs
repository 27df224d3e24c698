//! A validating walk over an LMDB file's pages, in Rust, with every offset bounds-checked.
//!
//! LMDB trusts its file: a damaged page can send a reader into memory it has no right to
//! (the adversarial run crashed kvmsh inside `mdb_xcursor_init1` on 13 of 60 damaged
//! copies of a valid file). LMDB has no page checksums in the version heed builds, so the
//! engine walks the pages itself before trusting them — when a small file is opened, and
//! on every `CHECK DATABASE` — and reports damage as `storage.corrupt` naming the page.
//!
//! What it checks, from a snapshot's meta page down: each page names itself, has one
//! known kind (branch, leaf, overflow), its bounds and node offsets lie inside the page,
//! its keys are in order, branch children and overflow runs point inside the file, leaves
//! sit at the tree's depth, no page is reached twice, and the named databases and the free
//! list are sound the same way. What it cannot see: a damaged byte inside a value or key
//! that keeps every structure valid (values are then caught by the value codec, which is
//! total, when read), and damage to pages no snapshot reaches (free pages).
//!
//! Page layout (LMDB 0.9 / mdb.master, 64-bit): header `pgno u64 | pad u16 | flags u16 |
//! lower u16 | upper u16` (overflow pages: `pages u32` in place of lower/upper), then
//! `lower − 16` bytes of u16 node offsets; a node is `lo u16 | hi u16 | flags u16 | ksize
//! u16 | key | data`, where a branch's child is `lo | hi << 16 | flags << 32` and a leaf's
//! data size `lo | hi << 16`.

use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};

const HEADER: usize = 16;
const NODE: usize = 8;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;
const F_DUPDATA: u16 = 0x04;
/// The size of an `MDB_db` record (a named database in the main tree).
const DB_RECORD: usize = 48;
const INVALID: u64 = u64::MAX;

/// A tree's root and depth, from a meta page or a named-database record.
#[derive(Debug, Clone, Copy)]
struct Tree {
    root: u64,
    depth: u16,
}

impl Tree {
    fn parse(b: &[u8]) -> Option<Tree> {
        Some(Tree { depth: u16_at(b, 6)?, root: u64_at(b, 40)? })
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|x| u16::from_ne_bytes([x[0], x[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).and_then(|x| x.try_into().ok()).map(u64::from_ne_bytes)
}

/// What a walk saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageReport {
    /// Pages read and found sound.
    pub pages: u64,
}

/// How often [`walk`] tries to pin the snapshot it read before giving up (each try is a
/// read of two pages; only writers committing faster than that make it retry).
const PIN_TRIES: usize = 1000;

/// Walks the trees of the newest snapshot. `pin` begins a read transaction and returns it
/// with its transaction id: the meta pages are read first, then the snapshot is pinned,
/// and the walk goes on only when the pinned snapshot is the one those meta pages describe
/// (no commit came between: then none of its pages can have been reused, and none will be
/// while the pin is held). `Ok(None)` when writers kept committing in between every time.
pub fn walk<P>(
    file: &std::fs::File,
    mut pin: impl FnMut() -> Result<(P, u64)>,
) -> Result<Option<PageReport>> {
    let mut head = vec![0u8; 2 * 65536];
    for _ in 0..PIN_TRIES {
        let n = read_at_most(file, &mut head, 0)?;
        let (report, pinned) = {
            let head = &head[..n];
            let psize = u32_at(head, 40).unwrap_or(0) as usize;
            if !(psize.is_power_of_two() && (512..=65536).contains(&psize)) {
                return Err(corrupt(0, format!("impossible page size {psize}")));
            }
            let newest = [0usize, 1]
                .into_iter()
                .filter_map(|i| head.get(i * psize..(i + 1) * psize))
                .filter(|m| u32_at(m, 16) == Some(0xBEEF_C0DE))
                .max_by_key(|m| u64_at(m, 144).unwrap_or(0))
                .ok_or_else(|| corrupt(0, "no valid meta page".into()))?;
            let (guard, txnid) = pin()?;
            if u64_at(newest, 144) != Some(txnid) {
                continue; // a commit came in between: read the meta pages again
            }
            (walk_meta(file, psize, newest)?, guard)
        };
        drop(pinned);
        return Ok(Some(report));
    }
    Ok(None)
}

fn walk_meta(file: &std::fs::File, psize: usize, meta: &[u8]) -> Result<PageReport> {
    let last = u64_at(meta, 136).unwrap_or(0);
    let free = Tree::parse(&meta[40..]).ok_or_else(|| corrupt(0, "short meta page".into()))?;
    let main =
        Tree::parse(&meta[40 + DB_RECORD..]).ok_or_else(|| corrupt(0, "short meta page".into()))?;
    let mut w = Walker {
        file,
        psize,
        last,
        seen: vec![0u64; (last as usize / 64) + 1],
        page: vec![0u8; psize],
        report: PageReport::default(),
    };
    w.tree(free, "the free list", false, true)?;
    for sub in w.tree(main, "the main tree", true, false)? {
        w.tree(sub, "a named database", false, false)?;
    }
    Ok(w.report)
}

fn read_at_most(file: &std::fs::File, buf: &mut [u8], at: u64) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn corrupt(pgno: u64, why: String) -> Error {
    Error::Corrupt(format!("LMDB page {pgno}: {why}"))
}

struct Walker<'f> {
    file: &'f std::fs::File,
    psize: usize,
    last: u64,
    /// Pages reached so far (a damaged pointer must not make the walk loop).
    seen: Vec<u64>,
    page: Vec<u8>,
    report: PageReport,
}

impl Walker<'_> {
    /// Reads page `pgno` into `self.page`, checking that it is inside the file, reached
    /// once, and names itself.
    fn load(&mut self, pgno: u64, pages: u64) -> Result<()> {
        if pgno < 2 || pgno.saturating_add(pages) > self.last.saturating_add(1) {
            return Err(corrupt(pgno, format!("outside the file (last page {})", self.last)));
        }
        for p in pgno..pgno + pages {
            let (word, bit) = ((p / 64) as usize, p % 64);
            let slot = self.seen.get_mut(word).ok_or_else(|| corrupt(p, "out of range".into()))?;
            if *slot & (1 << bit) != 0 {
                return Err(corrupt(p, "reached twice (a damaged pointer)".into()));
            }
            *slot |= 1 << bit;
        }
        let at = pgno * self.psize as u64;
        if read_at_most(self.file, &mut self.page, at)? < self.psize {
            return Err(corrupt(pgno, "the file ends inside it".into()));
        }
        if u64_at(&self.page, 0) != Some(pgno) {
            return Err(corrupt(pgno, "its header names another page".into()));
        }
        self.report.pages += pages;
        Ok(())
    }

    /// Walks one tree; returns the named databases found in its leaves when `named`.
    fn tree(
        &mut self,
        tree: Tree,
        what: &str,
        named: bool,
        integer_keys: bool,
    ) -> Result<Vec<Tree>> {
        let mut subs = Vec::new();
        if tree.root == INVALID {
            return Ok(subs);
        }
        if tree.depth == 0 || tree.depth > 32 {
            return Err(corrupt(tree.root, format!("{what} claims depth {}", tree.depth)));
        }
        let mut stack = vec![(tree.root, 1u16)];
        while let Some((pgno, level)) = stack.pop() {
            self.load(pgno, 1)?;
            let flags = u16_at(&self.page, 10).unwrap_or(0);
            let leaf = match flags & (P_BRANCH | P_LEAF | P_OVERFLOW) {
                P_BRANCH => false,
                P_LEAF => true,
                _ => return Err(corrupt(pgno, format!("unknown page kind {flags:#x} in {what}"))),
            };
            if leaf != (level == tree.depth) {
                return Err(corrupt(
                    pgno,
                    format!("at level {level} of {what} of depth {}", tree.depth),
                ));
            }
            let (lower, upper) = (
                u16_at(&self.page, 12).unwrap_or(0) as usize,
                u16_at(&self.page, 14).unwrap_or(0) as usize,
            );
            if lower < HEADER || lower > upper || upper > self.psize || (lower - HEADER) % 2 != 0 {
                return Err(corrupt(pgno, format!("bounds {lower}..{upper} are impossible")));
            }
            let keys = (lower - HEADER) / 2;
            if keys == 0 {
                return Err(corrupt(pgno, "an empty page in a tree".into()));
            }
            let mut previous: Option<(usize, usize)> = None;
            let mut next = Vec::new();
            let mut overflow = Vec::new();
            for i in 0..keys {
                let at = u16_at(&self.page, HEADER + 2 * i).unwrap_or(0) as usize;
                if at < upper || at + NODE > self.psize {
                    return Err(corrupt(
                        pgno,
                        format!("node {i} at offset {at} is outside its page"),
                    ));
                }
                let lo = u16_at(&self.page, at).unwrap_or(0) as u64;
                let hi = u16_at(&self.page, at + 2).unwrap_or(0) as u64;
                let nflags = u16_at(&self.page, at + 4).unwrap_or(0);
                let ksize = u16_at(&self.page, at + 6).unwrap_or(0) as usize;
                let key = (at + NODE, at + NODE + ksize);
                if key.1 > self.psize {
                    return Err(corrupt(pgno, format!("key {i} runs past its page")));
                }
                // Keys in order (a branch's first key is empty by design; the free list's
                // keys are native-endian integers).
                if let Some(p) = previous {
                    let (a, b) = (&self.page[p.0..p.1], &self.page[key.0..key.1]);
                    let ordered = match (integer_keys, u64_at(a, 0), u64_at(b, 0)) {
                        (true, Some(x), Some(y)) if a.len() == 8 && b.len() == 8 => x < y,
                        (true, _, _) => a.is_empty(),
                        (false, _, _) => a < b,
                    };
                    if !ordered {
                        return Err(corrupt(pgno, format!("key {i} is out of order")));
                    }
                }
                previous = Some(key);
                if !leaf {
                    let child = lo | hi << 16 | (nflags as u64) << 32;
                    if child > self.last {
                        return Err(corrupt(pgno, format!("child {child} is outside the file")));
                    }
                    next.push((child, level + 1));
                    continue;
                }
                let size = (lo | hi << 16) as usize;
                if nflags & F_DUPDATA != 0 {
                    return Err(corrupt(pgno, "a duplicate-data node (KVM writes none)".into()));
                }
                if nflags & F_BIGDATA != 0 {
                    let first = u64_at(&self.page, key.1).ok_or_else(|| {
                        corrupt(pgno, format!("node {i}'s overflow pointer runs past its page"))
                    })?;
                    overflow.push((first, size));
                    continue;
                }
                if key.1 + size > self.psize {
                    return Err(corrupt(
                        pgno,
                        format!("node {i}'s {size} data bytes run past its page"),
                    ));
                }
                if integer_keys {
                    // A free-list entry: a count, then that many page numbers in the file.
                    let ids = &self.page[key.1..key.1 + size];
                    let n = u64_at(ids, 0).unwrap_or(u64::MAX);
                    let fits = n.checked_add(1).and_then(|k| k.checked_mul(8)) == Some(size as u64);
                    let inside = ids
                        .chunks_exact(8)
                        .skip(1)
                        .all(|c| u64_at(c, 0).is_some_and(|p| p >= 2 && p <= self.last));
                    if !fits || !inside {
                        return Err(corrupt(pgno, format!("free-list entry {i} is damaged")));
                    }
                }
                if nflags & F_SUBDATA != 0 {
                    if !named || size != DB_RECORD {
                        return Err(corrupt(pgno, "a misplaced named-database record".into()));
                    }
                    let record = &self.page[key.1..key.1 + DB_RECORD];
                    subs.push(
                        Tree::parse(record).ok_or_else(|| corrupt(pgno, "short record".into()))?,
                    );
                }
            }
            for (first, size) in overflow {
                self.overflow(first, size)?;
            }
            stack.extend(next);
        }
        Ok(subs)
    }

    /// An overflow run: its first page says how many pages it spans, enough for `size`.
    fn overflow(&mut self, first: u64, size: usize) -> Result<()> {
        self.load(first, 1)?;
        let flags = u16_at(&self.page, 10).unwrap_or(0);
        let pages = u32_at(&self.page, 12).unwrap_or(0) as u64;
        if flags & P_OVERFLOW == 0 {
            return Err(corrupt(first, "an overflow pointer to a page of another kind".into()));
        }
        if pages == 0 || (pages as usize).saturating_mul(self.psize) < size + HEADER {
            return Err(corrupt(first, format!("{pages} overflow pages cannot hold {size} bytes")));
        }
        // The rest of the run: in the file and reached once (their contents are the value).
        if pages > 1 {
            let rest = first + 1;
            if rest.saturating_add(pages - 1) > self.last.saturating_add(1) {
                return Err(corrupt(first, "an overflow run past the end of the file".into()));
            }
            for p in rest..rest + pages - 1 {
                let (word, bit) = ((p / 64) as usize, p % 64);
                let slot =
                    self.seen.get_mut(word).ok_or_else(|| corrupt(p, "out of range".into()))?;
                if *slot & (1 << bit) != 0 {
                    return Err(corrupt(p, "reached twice (a damaged pointer)".into()));
                }
                *slot |= 1 << bit;
            }
            self.report.pages += pages - 1;
        }
        Ok(())
    }
}
