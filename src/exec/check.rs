//! `CHECK DATABASE` / `CHECK MODEL m`: every record has exactly its index entries, every
//! index entry points at a record that has it, and every foreign key of a record points at
//! a record (no dangling reference, no orphan join record).

use std::collections::BTreeSet;

use kvm_planner::Model;
use kvm_storage::{format::format_key, KeyRange};

use super::Cx;
use crate::error::Result;
use crate::keyspace::{Key, KeyPrefix};
use crate::model_txn::{entry_key, pk_part};

/// The problems found in one model (empty when it is consistent).
pub fn check_model(cx: &Cx, model: &Model) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for ix in model.indexes.iter().filter(|i| !i.ready) {
        problems.push(format!(
            "index `{}.{}` is still building (not used by queries): its backfill was \
             interrupted, or is running in another process; opening the database or the next \
             ALTER MODEL {} restarts it",
            model.name, ix.name, model.name
        ));
    }
    let mut expected: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut records = 0u64;
    for r in cx.mtx.scan_all(model, false)? {
        cx.stop.check()?;
        let row = r?;
        records += 1;
        let pk =
            match pk_part(model, row.get(&model.pk().name).unwrap_or(&kvm_storage::Value::Null)) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("{}: record with a bad primary key: {e}", model.name));
                    continue;
                }
            };
        for ix in model.indexes.iter().filter(|i| i.ready) {
            if let Some(k) = entry_key(model, ix, &row, &pk) {
                expected.insert(k);
            }
        }
        for link in cx.catalog.links_from(&model.name) {
            let parent = cx.model(&link.parent)?;
            if let Err(e) = super::refs::check_parent(cx, parent, model, link, &row) {
                problems.push(e.to_string());
            }
        }
        let _ = Key::Record { model: &model.name, pk };
    }
    let _ = records;
    for ix in model.indexes.iter().filter(|i| i.ready) {
        let range = KeyRange::prefix(
            &KeyPrefix::Index { model: &model.name, index: &ix.name, values: vec![] }.encode(),
        );
        for r in cx.mtx.txn.scan(&range, false)? {
            cx.stop.check()?;
            let (k, _) = r?;
            if !expected.remove(&k) {
                problems.push(format!(
                    "{}.{}: entry {} matches no record",
                    model.name,
                    ix.name,
                    format_key(&k)
                ));
            }
        }
    }
    for k in expected {
        problems.push(format!("{}: missing index entry {}", model.name, format_key(&k)));
    }
    Ok(problems)
}
