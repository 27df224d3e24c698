//! Routing a watch by the records it can hold: for a query over one model whose `WHERE`
//! only compares that model's stored fields with constants (no relation, function, virtual
//! field, `OFFSET` or cursor), a commit that changes a record of the model wakes the watch
//! only when the record — as it is now — passes the filter, or is in the result the watch
//! last delivered. A write to a record that neither matches nor was delivered cannot change
//! the result: with no `OFFSET`, a record outside the filter is outside any `ORDER BY … LIMIT`
//! window too, and the rows that were delivered stay where they were.
//!
//! Deciding on the record's *latest* state (read after the commit was read from the feed)
//! keeps this correct under coalescing: a later commit is dispatched too. A watch that is
//! evaluating (its delivered set is about to change) is always woken.

use std::collections::HashSet;
use std::sync::Arc;

use kvm_planner::{Access, Catalog, Model, Node, Scalar, ScalarKind};

use crate::eval::{Env, Ids};
use crate::model_txn::decode_record;
use crate::Params;

/// What a record of the watched model must be to matter to a watch.
pub struct RecordFilter {
    /// The model watched.
    model: String,
    /// The plan's `WHERE` clause (parameters take their stored form); `None`: every record.
    predicate: Option<Scalar>,
    params: Params,
    catalog: Arc<Catalog>,
}

/// The delivered result of a watch routed by a [`RecordFilter`].
#[derive(Default)]
pub struct Delivered {
    /// The record keys of the rows last delivered.
    pub keys: HashSet<Vec<u8>>,
    /// The watch is evaluating: the keys are about to change.
    pub evaluating: bool,
}

/// A filter never calls for ids or the time (functions keep a watch on model routing).
struct NoIds;

impl Ids for NoIds {
    fn now_micros(&self) -> i64 {
        0
    }
    fn ulid(&self) -> String {
        String::new()
    }
    fn uuid(&self) -> String {
        String::new()
    }
}

impl RecordFilter {
    /// The filter for the plan of a watched query, when the plan's shape allows routing by
    /// record (see the module docs); `None` keeps routing by model.
    pub fn for_plan(catalog: &Arc<Catalog>, root: &Node, params: &Params) -> Option<RecordFilter> {
        let mut predicate = None;
        let model = shape(root, &mut predicate)?;
        let model = catalog.models.get(model)?;
        if predicate.is_some_and(|p| !simple(p, model)) {
            return None;
        }
        Some(RecordFilter {
            model: model.name.clone(),
            predicate: predicate.cloned(),
            params: params.clone(),
            catalog: catalog.clone(),
        })
    }

    /// Whether a record (its stored bytes as of now; `None`: absent) may be in the result.
    /// Anything that cannot be decided says yes: evaluating again is always correct.
    pub fn admits(&self, record: Option<&[u8]>) -> bool {
        let Some(bytes) = record else { return false };
        let Some(predicate) = &self.predicate else { return true };
        let Some(model) = self.catalog.models.get(&self.model) else { return true };
        let Ok(row) = decode_record(model, bytes) else { return true };
        let env = Env { params: &self.params, ids: &NoIds, row: Some(&row) };
        env.test(predicate).unwrap_or(true)
    }
}

/// The model a plan reads, and its filter, when the plan is a filter over one model under
/// projections, sorts and limits without an offset or cursor.
fn shape<'p>(node: &'p Node, predicate: &mut Option<&'p Scalar>) -> Option<&'p str> {
    match node {
        Node::Project { source, .. } | Node::Sort { source, .. } => shape(source, predicate),
        Node::Limit { source, offset: None, .. } => shape(source, predicate),
        Node::Page { source, after: None, .. } => shape(source, predicate),
        Node::Filter { source, predicate: p, .. } if predicate.is_none() => {
            *predicate = Some(p);
            shape(source, predicate)
        }
        Node::Scan { model, access } if !matches!(access, Access::Via { .. }) => Some(model),
        _ => None,
    }
}

/// Whether `e` depends only on the record's stored fields, literals and parameters.
fn simple(e: &Scalar, model: &Model) -> bool {
    let mut simple = true;
    e.walk(&mut |x| match &x.kind {
        ScalarKind::Field { slot, .. } => {
            simple &= model.fields.get(*slot).is_some_and(|f| f.virtual_expr.is_none())
        }
        ScalarKind::Call { .. } | ScalarKind::Related { .. } | ScalarKind::Computed { .. } => {
            simple = false
        }
        _ => {}
    });
    simple
}
