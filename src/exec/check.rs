//! `CHECK DATABASE` / `CHECK MODEL m`: every record has exactly its index entries, every
//! index entry points at a record that has it (a unique entry at that very record), and
//! every foreign key of a record points at a record (no dangling reference, no orphan join
//! record). What it finds is a typed [`CheckReport`]; any problem makes the statement fail
//! with [`Error::Check`] (`kvm.check_failed`).

use std::collections::BTreeMap;

use kvm_planner::Model;
use kvm_storage::format::format_key;
use kvm_storage::tuple::KeyPart;
use kvm_storage::Value;

use super::Cx;
use crate::error::{CheckProblem, CheckProblemKind, CheckReport, Error, Result};
use crate::keyspace::{key_part, Key};
use crate::model_txn::{entry_key, pk_part};

/// Checks `models`: the `ok: …` message when all is consistent, else [`Error::Check`].
pub fn check(cx: &Cx, models: &[&Model]) -> Result<String> {
    let mut report = CheckReport { models: models.len(), ..CheckReport::default() };
    for m in models {
        check_model(cx, m, &mut report)?;
    }
    if report.problems.is_empty() {
        Ok(report.summary(!cx.catalog.links.is_empty()))
    } else {
        Err(Error::Check(report))
    }
}

fn problem(
    kind: CheckProblemKind,
    model: &Model,
    index: Option<&str>,
    key: Option<String>,
    message: String,
) -> CheckProblem {
    CheckProblem { kind, model: model.name.clone(), index: index.map(str::to_string), key, message }
}

/// Adds what is wrong in `model` to `report`.
fn check_model(cx: &Cx, model: &Model, report: &mut CheckReport) -> Result<()> {
    for ix in model.indexes.iter().filter(|i| !i.ready) {
        report.building.push((model.name.clone(), ix.name.clone()));
    }
    // Every entry the records call for: its key, and for a unique index the pk it holds.
    let mut expected: BTreeMap<Vec<u8>, (&str, Option<KeyPart>)> = BTreeMap::new();
    for r in cx.mtx.scan_all(model, false)? {
        cx.stop.check()?;
        let row = r?;
        report.records += 1;
        let pk = match pk_part(model, row.get(&model.pk().name).unwrap_or(&Value::Null)) {
            Ok(p) => p,
            Err(e) => {
                report.problems.push(problem(
                    CheckProblemKind::BadPrimaryKey,
                    model,
                    None,
                    None,
                    format!("{}: record with a bad primary key: {e}", model.name),
                ));
                continue;
            }
        };
        for ix in model.indexes.iter().filter(|i| i.ready) {
            if let Some(k) = entry_key(model, ix, &row, &pk) {
                expected.insert(k, (ix.name.as_str(), ix.unique.then(|| pk.clone())));
            }
        }
        for link in cx.catalog.links_from(&model.name) {
            let parent = cx.model(&link.parent)?;
            if let Err(e) = super::refs::check_parent(cx, parent, model, link, &row) {
                let key = Key::Record { model: &model.name, pk: pk.clone() }.encode();
                report.problems.push(problem(
                    CheckProblemKind::DanglingReference,
                    model,
                    Some(&link.via),
                    Some(format_key(&key)),
                    e.to_string(),
                ));
            }
        }
    }
    for ix in model.indexes.iter().filter(|i| i.ready) {
        for r in cx.mtx.index_entries(&model.name, &ix.name)? {
            cx.stop.check()?;
            let (k, v) = r?;
            let why = match expected.remove(k.as_ref()) {
                None => "matches no record".to_string(),
                Some((_, Some(pk))) => {
                    let held = Value::decode(&v).ok().and_then(|v| key_part(&v)).map(|(p, _)| p);
                    if held.as_ref() == Some(&pk) {
                        continue;
                    }
                    let shown = |p: Option<&KeyPart>| {
                        p.map_or("no key".to_string(), |p| {
                            crate::display_value(&crate::keyspace::part_value(p))
                        })
                    };
                    format!(
                        "holds key {}, but the record with these values is {}",
                        shown(held.as_ref()),
                        shown(Some(&pk))
                    )
                }
                Some(_) => continue,
            };
            report.problems.push(problem(
                CheckProblemKind::DanglingEntry,
                model,
                Some(&ix.name),
                Some(format_key(&k)),
                format!("{}.{}: entry {} {why}", model.name, ix.name, format_key(&k)),
            ));
        }
    }
    for (k, (index, _)) in expected {
        report.problems.push(problem(
            CheckProblemKind::MissingEntry,
            model,
            Some(index),
            Some(format_key(&k)),
            format!("{}.{index}: missing index entry {}", model.name, format_key(&k)),
        ));
    }
    Ok(())
}
