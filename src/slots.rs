//! A record as the executor holds it: a vector of values in its model's slot order
//! ([`kvm_planner::Slots`]: field `i` is slot `i`), decoded from the stored record straight
//! into the slots — no map, no field names allocated per row — plus the values a plan
//! attaches under a name of their own (a relation's records, `EXISTS …`, `COUNT(…)`).
//! A null slot is an absent field: records store no nulls — except in a field with a fill
//! ([`Slots::fill`]: added by `ALTER` without rewriting the records), where a missing field
//! reads as the fill and a null is stored as one. An attached null is kept (an `INCLUDE`
//! with no related record shows `null`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kvm_planner::Slots;
use kvm_storage::Value;

use crate::error::{Error, Result};

/// One record (or a record with attached values) flowing through a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    slots: Arc<Slots>,
    vals: Vec<Value>,
    extra: Vec<(String, Value)>,
}

impl Row {
    /// A row of the model whose slots these are, every field absent.
    pub fn new(slots: &Arc<Slots>) -> Row {
        Row { slots: slots.clone(), vals: vec![Value::Null; slots.len()], extra: Vec::new() }
    }

    /// A row of `slots` holding `vals` (a row a plan step computes, such as a group).
    pub fn from_values(slots: &Arc<Slots>, mut vals: Vec<Value>) -> Row {
        vals.resize(slots.len(), Value::Null);
        Row { slots: slots.clone(), vals, extra: Vec::new() }
    }

    /// A stored record decoded into the slots (a field the model no longer has is kept by
    /// name, as a dropped field's value is until it is rewritten).
    pub fn decode(slots: &Arc<Slots>, bytes: &[u8]) -> Result<Row> {
        let mut row = Row::new(slots);
        row.merge(bytes, None)?;
        Ok(row)
    }

    /// [`Row::decode`] of the fields `wanted` (by slot) only, into this row: the others
    /// stay absent and are stepped over without being built. The row is reused (a scan that
    /// tests each record and keeps few allocates one row, not one per record): the fields of
    /// the previous record are decoded over (their string buffers reused), then each wanted
    /// field this record lacks is cleared. `by_id` is [`Slots::wanted_by_id`] of `wanted`.
    pub fn decode_wanted(&mut self, bytes: &[u8], by_id: &[u32], wanted: &[bool]) -> Result<()> {
        self.extra.clear();
        if Value::is_record(bytes) && self.vals.len() <= 128 {
            let mut seen = 0u128;
            let until = by_id.len().saturating_sub(1) as u32;
            Value::decode_record_into(
                bytes,
                |id| {
                    let i = *by_id.get(id as usize)? as usize;
                    // (`NO_SLOT` is past every row: not a slot.)
                    if i < 128 {
                        seen |= 1 << i;
                    }
                    Some(i)
                },
                until,
                &mut self.vals,
            )
            .map_err(|e| Error::Corrupt(format!("a record does not decode: {e}")))?;
            let slots = &self.slots;
            for (i, (v, w)) in self.vals.iter_mut().zip(wanted).enumerate() {
                if *w && seen & (1 << i) == 0 {
                    *v = slots.fill_of(i).cloned().unwrap_or(Value::Null);
                }
            }
            return Ok(());
        }
        for (v, w) in self.vals.iter_mut().zip(wanted) {
            if *w {
                *v = Value::Null;
            }
        }
        self.merge(bytes, Some(wanted))
    }

    /// Decodes `bytes` into the slots `wanted` (every field when `None`). A record
    /// ([`Value::encode_record`]) names its fields by id: each id is looked up in a table.
    /// A field the model no longer has (a dropped field's leftover) is stepped over.
    fn merge(&mut self, bytes: &[u8], wanted: Option<&[bool]>) -> Result<()> {
        if !Value::is_record(bytes) {
            return self.merge_object(bytes, wanted);
        }
        self.preset_fills(wanted);
        let slots = &self.slots;
        Value::decode_record_into(
            bytes,
            |id| slots.slot_of_id(id).filter(|i| wanted.is_none_or(|w| w.get(*i) == Some(&true))),
            u32::MAX,
            &mut self.vals,
        )
        .map_err(|e| Error::Corrupt(format!("a record does not decode: {e}")))
    }

    /// Puts each wanted slot's fill in place before a decode: a record that holds the field
    /// decodes over it, and one that lacks it (written before the field existed) keeps it.
    fn preset_fills(&mut self, wanted: Option<&[bool]>) {
        if !self.slots.has_fills() {
            return;
        }
        for (i, fill) in self.slots.fill.iter().enumerate() {
            if let Some(fill) = fill {
                if wanted.is_none_or(|w| w.get(i) == Some(&true)) {
                    self.vals[i] = fill.clone();
                }
            }
        }
    }

    /// [`Row::merge`] of a record written before records named their fields by id: an
    /// object, fields by name (a field the model lacks is kept by name when every field is
    /// wanted). Stored fields come in name order, as `by_name` lists the slots: a merge (one
    /// comparison per slot passed), not a search per field.
    fn merge_object(&mut self, bytes: &[u8], wanted: Option<&[bool]>) -> Result<()> {
        self.preset_fills(wanted);
        let slots = &self.slots;
        let (vals, extra) = (&mut self.vals, &mut self.extra);
        let next = std::cell::Cell::new(0);
        // The slot of the field just asked about; `Some(None)`: a field to keep by name.
        let at = std::cell::Cell::new(None);
        Value::decode_some_fields(
            bytes,
            |name| {
                let mut n = next.get();
                let slot = slots.merge(&mut n, name);
                next.set(n);
                let take = match wanted {
                    None => Some(slot),
                    Some(w) => slot.filter(|i| w.get(*i) == Some(&true)).map(Some),
                };
                at.set(take);
                take.is_some()
            },
            |name, v| match at.get() {
                Some(Some(i)) => vals[i] = v,
                Some(None) => extra.push((name.to_string(), v)),
                None => {}
            },
        )
        .map_err(|e| Error::Corrupt(format!("a record does not decode: {e}")))
    }

    /// The stored form: a record of its non-null fields by id
    /// ([`Value::encode_record`]), and of its null fields that have a fill (a missing one
    /// would read as the fill). Attached values, and fields kept by name that the model no
    /// longer has, are never stored.
    pub fn encode(&self) -> Vec<u8> {
        Value::encode_record(
            self.slots
                .by_id_order
                .iter()
                .filter(|i| !self.vals[**i].is_null() || self.slots.fill[**i].is_some())
                .map(|i| (self.slots.ids[*i], &self.vals[*i])),
        )
    }

    /// This row in the slots of another version of its model (after `ALTER MODEL`): fields
    /// move by name; a field the new version lacks is kept by name, as `decode` keeps it.
    pub fn reslot(self, slots: &Arc<Slots>) -> Row {
        if Arc::ptr_eq(&self.slots, slots) {
            return self;
        }
        let mut row = Row::new(slots);
        for (i, v) in self.vals.into_iter().enumerate() {
            if !v.is_null() {
                row.insert(self.slots.names[i].clone(), v);
            }
        }
        for (name, v) in self.extra {
            row.insert(name, v);
        }
        row
    }

    /// The value in slot `i` (null when absent, or when `i` is not a slot of this row: a
    /// plan only asks for slots of the model it was bound to).
    pub fn slot(&self, i: usize) -> &Value {
        self.vals.get(i).unwrap_or(&Value::Null)
    }

    /// The value of field or attached name `name`; `None` when absent (or null).
    pub fn get(&self, name: &str) -> Option<&Value> {
        let v = match self.slots.slot(name) {
            Some(i) => &self.vals[i],
            None => &self.extra.iter().find(|(k, _)| k == name)?.1,
        };
        (!v.is_null()).then_some(v)
    }

    /// Whether `name` holds a non-null value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` (a field's slot, or an attached name); returns the value it replaced.
    pub fn insert(&mut self, name: String, v: Value) -> Option<Value> {
        let old = match self.slots.slot(&name) {
            Some(i) => std::mem::replace(&mut self.vals[i], v),
            None => match self.extra.iter_mut().find(|(k, _)| *k == name) {
                Some((_, slot)) => std::mem::replace(slot, v),
                None => {
                    self.extra.push((name, v));
                    Value::Null
                }
            },
        };
        (!old.is_null()).then_some(old)
    }

    /// Clears `name`; returns the value it held.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let old = match self.slots.slot(name) {
            Some(i) => std::mem::replace(&mut self.vals[i], Value::Null),
            None => {
                let at = self.extra.iter().position(|(k, _)| k == name)?;
                self.extra.remove(at).1
            }
        };
        (!old.is_null()).then_some(old)
    }

    /// Keeps the values for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        for (i, v) in self.vals.iter_mut().enumerate() {
            if !v.is_null() && !keep(&self.slots.names[i], v) {
                *v = Value::Null;
            }
        }
        self.extra.retain(|(k, v)| keep(k, v));
    }

    /// The non-null fields with their names in slot order, then the attached values (a
    /// null attached value — no related record — is kept: it is shown).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let fields = self
            .slots
            .names
            .iter()
            .zip(&self.vals)
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.as_str(), v));
        fields.chain(self.extra.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// The row as an object, moved.
    pub fn into_object(self) -> BTreeMap<String, Value> {
        let Row { slots, vals, extra } = self;
        let mut out: BTreeMap<String, Value> = slots
            .names
            .iter()
            .zip(vals)
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v))
            .collect();
        out.extend(extra);
        out
    }

    /// The slots of the model's fields, moved out (attached values dropped): `SELECT *`'s
    /// output row, without a copy.
    pub fn into_fields(self) -> Vec<Value> {
        self.vals
    }

    /// Sets slot `i` (nothing when the row has no such slot).
    pub fn set_slot(&mut self, i: usize, v: Value) {
        if let Some(slot) = self.vals.get_mut(i) {
            *slot = v;
        }
    }

    /// Takes the value of slot `i` out of the row (null when absent).
    pub fn take_slot(&mut self, i: usize) -> Value {
        self.vals.get_mut(i).map(|v| std::mem::replace(v, Value::Null)).unwrap_or(Value::Null)
    }

    /// Whether the row's fields are the slots of `slots` (the model it was read for).
    pub fn has_slots(&self, slots: &Arc<Slots>) -> bool {
        Arc::ptr_eq(&self.slots, slots)
    }
}
