//! A full disk and a read-only file system, on a real small tmpfs (mounted by the test: it
//! needs root, as every machine of this project and CI runs; without root it fails saying
//! so, it never skips). With LMDB writing into its map a full disk used to end the process
//! with SIGBUS; now disk space is reserved before a commit touches it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kvm_storage::{AtomicBatch, Durability, Engine, LmdbEngine, LmdbOptions};

/// A tmpfs of `mib` MiB mounted for the life of the value.
struct Tmpfs {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Tmpfs {
    fn mount(mib: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&mnt)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { _dir: dir, mnt }
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.mnt)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount read-only");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn opts(write_map: bool) -> LmdbOptions {
    LmdbOptions {
        durability: Durability::Process,
        map_size: 1 << 20,
        write_map,
        ..Default::default()
    }
}

/// Fills the file system until a commit fails; returns how many commits were acknowledged
/// and the error.
fn fill(e: &LmdbEngine) -> (u32, kvm_storage::Error) {
    let value = vec![5u8; 256 << 10];
    for i in 0..10_000u32 {
        if let Err(err) = e.commit(&AtomicBatch::new().set(&i.to_be_bytes(), &value)) {
            return (i, err);
        }
    }
    panic!("a 24 MiB file system took 2.5 GB");
}

fn disk_full_is_an_error(write_map: bool) {
    let fs = Tmpfs::mount(24);
    // Space to give back once the disk is full.
    let ballast = fs.mnt.join("ballast");
    std::fs::write(&ballast, vec![1u8; 4 << 20]).unwrap();
    let path = fs.mnt.join("db.kvm");
    let e = LmdbEngine::open(&path, opts(write_map)).unwrap();
    let (acked, err) = fill(&e);
    assert_eq!(err.code(), "storage.disk_full", "write_map {write_map}: {err}");
    assert!(acked > 20, "write_map {write_map}: only {acked} commits before the disk filled");
    // Still alive, and every acknowledged commit reads back.
    let snap = e.snapshot().unwrap();
    for i in 0..acked {
        assert_eq!(snap.get(&i.to_be_bytes()).unwrap().unwrap().value().len(), 256 << 10);
    }
    assert!(snap.get(&acked.to_be_bytes()).unwrap().is_none(), "the failed commit wrote nothing");
    drop(snap);
    // A big delete on the full disk: an error or a success, never a crash.
    let mut delete = AtomicBatch::new();
    for i in 0..acked / 2 {
        delete = delete.delete(&i.to_be_bytes());
    }
    let deleted = e.commit(&delete);
    assert!(
        deleted.as_ref().is_ok_or_else_code("storage.disk_full"),
        "write_map {write_map}: {deleted:?}"
    );
    // Space given back: writes work again.
    std::fs::remove_file(&ballast).unwrap();
    e.commit(&AtomicBatch::new().set(b"after", b"space came back")).unwrap();
    assert!(e.snapshot().unwrap().get(b"after").unwrap().is_some());
}

trait OkOrCode {
    fn is_ok_or_else_code(&self, code: &str) -> bool;
}

impl<T> OkOrCode for Result<&T, &kvm_storage::Error> {
    fn is_ok_or_else_code(&self, code: &str) -> bool {
        match self {
            Ok(_) => true,
            Err(e) => e.code() == code,
        }
    }
}

#[test]
fn a_full_disk_is_storage_disk_full_with_the_write_map() {
    disk_full_is_an_error(true);
}

#[test]
fn a_full_disk_is_storage_disk_full_without_the_write_map() {
    disk_full_is_an_error(false);
}

/// A database on a read-only file system opens read-only (LMDB runs without its lock file
/// there) and reads; a read-write open is a clear error.
#[test]
fn a_database_on_a_read_only_file_system_can_be_read() {
    let fs = Tmpfs::mount(8);
    let path: &Path = &fs.mnt.join("db.kvm");
    {
        let e = LmdbEngine::open(path, opts(true)).unwrap();
        e.commit(&AtomicBatch::new().set(b"k", b"v")).unwrap();
    }
    fs.remount_read_only();
    let ro = LmdbEngine::open(path, LmdbOptions { read_only: true, ..opts(true) }).unwrap();
    assert_eq!(ro.snapshot().unwrap().get(b"k").unwrap().unwrap().value(), b"v");
    assert_eq!(
        ro.commit(&AtomicBatch::new().set(b"k", b"w")).unwrap_err().code(),
        "storage.read_only"
    );
    drop(ro);
    let err = LmdbEngine::open(path, opts(true)).err().expect("read-write open on a read-only fs");
    eprintln!("read-write open on a read-only file system: {err}");
}
