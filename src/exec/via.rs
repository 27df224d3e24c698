//! Semi-join reads (`Access::Via`): the inner plan finds related records a batch at a time;
//! each batch becomes one read of the records they relate to — one request for the
//! foreign-key index ranges of the whole batch then one multi-get (`BELONGS TO`), or one
//! multi-get of the keys the batch holds (`HAS …`). Each record is yielded once.

use std::collections::HashSet;

use kvm_planner::{Model, Node, Rel, RelPath};
use kvm_storage::tuple::KeyPart;

use super::attach::{enc, key_of, parent_keys, related_pks, ATTACH_BATCH};
use super::Cx;
use crate::error::{Error, Result};
use crate::eval::Row;
use crate::model_txn::RowIter;

/// The stored records of `model` that `rel` relates to the rows of `inner` (not yet
/// materialized: the scan leaf does that).
pub fn rows<'a>(
    cx: &'a Cx<'a>,
    model: &'a Model,
    rel: &'a Rel,
    index: Option<&'a str>,
    inner: &'a Node,
) -> Result<RowIter<'a>> {
    let target = cx.model(&rel.target)?;
    let input = super::read::rows(cx, inner)?;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    Ok(super::read::batched(input, ATTACH_BATCH, move |chunk| {
        batch(cx, model, target, rel, index, &chunk, &mut seen)
    }))
}

/// The records of `model` related to one batch of `target` rows, minus those already seen.
fn batch(
    cx: &Cx,
    model: &Model,
    target: &Model,
    rel: &Rel,
    index: Option<&str>,
    chunk: &[Row],
    seen: &mut HashSet<Vec<u8>>,
) -> Result<Vec<Row>> {
    let pks: Vec<KeyPart> = match (&rel.path, index) {
        (RelPath::Fk { .. }, Some(index)) => {
            let (keys, _) = parent_keys(target, chunk);
            related_pks(cx, model, index, &keys, false, None)?.into_iter().flatten().collect()
        }
        (RelPath::Reverse { fk, .. }, _) => {
            chunk.iter().filter_map(|r| r.get(fk).and_then(|v| key_of(model, v))).collect()
        }
        _ => return Err(Error::Internal(format!("no semi-join through relation {}", rel.name))),
    };
    let pks: Vec<KeyPart> = pks.into_iter().filter(|p| seen.insert(enc(p))).collect();
    Ok(cx.mtx.get_many(model, &pks)?.into_iter().flatten().collect())
}
