//! The storage conformance suite, run against every backend by the same test code. A new
//! backend adds a factory function and one `conformance!` line here.

mod suite;

use kvm_storage::{Durability, LmdbEngine, LmdbOptions, MemoryEngine};
use suite::{Backend, Harness};

fn memory(h: &Harness) -> Backend {
    let engine = MemoryEngine::with_clock(h.clock()).with_feed_retention(h.retention);
    Backend { engine: Box::new(engine), _dir: None }
}

/// LMDB with the options the harness sets, then `adjust`'s.
fn lmdb_with(h: &Harness, adjust: impl FnOnce(LmdbOptions) -> LmdbOptions) -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = adjust(LmdbOptions {
        clock: h.clock(),
        feed_retention: h.retention,
        durability: Durability::Process,
        ..LmdbOptions::default()
    });
    let engine = LmdbEngine::open(dir.path().join("test.kvm"), opts).expect("open lmdb");
    Backend { engine: Box::new(engine), _dir: Some(dir) }
}

fn lmdb(h: &Harness) -> Backend {
    lmdb_with(h, |o| o)
}

/// LMDB starting from the smallest map, so that the suite also runs through map growth.
fn lmdb_tiny_map(h: &Harness) -> Backend {
    lmdb_with(h, |o| LmdbOptions { map_size: 64 * 1024, ..o })
}

/// LMDB writing dirty pages with `pwrite` instead of into the map (`write_map: false`).
fn lmdb_pwrite(h: &Harness) -> Backend {
    lmdb_with(h, |o| LmdbOptions { write_map: false, ..o })
}

conformance!(memory_backend, memory);
conformance!(lmdb_backend, lmdb);
conformance!(lmdb_tiny_map_backend, lmdb_tiny_map);
conformance!(lmdb_pwrite_backend, lmdb_pwrite);

/// etcd (feature `etcd`): a database of its own on the real single-member etcd this test
/// process starts (`etcd_testing::shared`). Without an etcd binary the tests say so on
/// stderr and pass.
#[cfg(feature = "etcd")]
fn etcd(h: &Harness) -> Backend {
    use kvm_storage::{etcd_testing, EtcdEngine, EtcdOptions};
    let cluster = match etcd_testing::shared() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED (etcd): {why}");
            return memory(h);
        }
    };
    let url = cluster.url(&etcd_testing::unique_app("conformance"));
    let opts = EtcdOptions {
        clock: h.clock(),
        feed_retention: h.retention,
        ..EtcdOptions::from_url(&url).expect("etcd url")
    };
    Backend { engine: Box::new(EtcdEngine::connect(opts).expect("connect to etcd")), _dir: None }
}

#[cfg(feature = "etcd")]
conformance!(etcd_backend, etcd);
