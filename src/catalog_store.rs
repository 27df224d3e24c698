//! The catalog in the database: each model's canonical `DEFINE MODEL` text (plus the names
//! of indexes still being backfilled, and its fields' ids) under `['__sys', 'catalog', 'model', name]`, and a
//! version counter under `['__sys', 'catalog', 'version']` that every DDL statement bumps.
//! Every statement checks the version key at commit, so a statement planned against a
//! schema another process has since changed conflicts and retries against the new one.
//!
//! The catalog is stored as KQL text, so a change of the grammar (or of the `{kql,
//! building}` entry) would silently be a change of the on-disk format. The format is
//! therefore stored too, under `['__sys', 'catalog', 'format']` ([`FORMAT`]): a catalog in
//! a newer format is refused on open and on every reload (`kvm.catalog_version`), never
//! misread. A catalog written before the key existed reads as format 1 and gets the key
//! when the database is opened for writing, or at its next catalog write. A change that a
//! format-1 reader would misread must bump [`FORMAT`] (and read the older formats, or
//! upgrade them here on open).

use std::collections::BTreeMap;

use kvm_lang::Statement;
use kvm_planner::{Catalog, Model};
use kvm_storage::{Engine, KeyRange, Value};

use crate::error::{Error, Result};
use crate::keyspace::{Key, KeyPrefix};
use crate::txn::Txn;

/// The catalog format this version writes and the newest it reads:
/// - 1: model definitions as `{kql, building}` objects holding canonical `DEFINE MODEL`
///   text; records are objects, fields by name.
/// - 2: the entry also holds each field's id (`{…, fields: {name: id}, next_field}`), and
///   records may name their fields by id (`Value::encode_record`), which a format-1 reader
///   cannot read. Format-1 entries read as format 2 with ids in slot order (their records
///   are objects, read by name, so any ids do), and are rewritten with ids at their next
///   catalog write.
/// - 3: the entry may hold `fills` (`{name: value}`): the value a record lacking the field
///   holds (a field added with a constant DEFAULT to a model with records, which were not
///   rewritten). A format-2 reader would read those records' field as null. `DROP FIELD`
///   leaves the dropped values in the records (never read: their ids are not the model's),
///   except in models whose records may be objects (`objects: true`, set for every entry
///   read from format 1). Format-2 entries have no fills and read as they are.
pub const FORMAT: u64 = 3;

/// The format of the stored catalog: 1 when the key is absent (a catalog written before it
/// existed, or no catalog yet).
fn stored_format(txn: &Txn) -> Result<u64> {
    match txn.get(&Key::CatalogFormat.encode())? {
        None => Ok(1),
        Some(b) => Value::decode_counter(&b)
            .ok_or_else(|| Error::Corrupt("the catalog format key does not hold a counter".into())),
    }
}

/// Refuses a catalog in a format newer than [`FORMAT`].
fn check_format(txn: &Txn) -> Result<()> {
    match stored_format(txn)? {
        found if found > FORMAT => Err(Error::CatalogFormat { found, supported: FORMAT }),
        _ => Ok(()),
    }
}

/// On open: refuses a catalog in a newer format, and — when `writable` — records this
/// version's format over an older one (one small commit, once): from then on records may
/// be written in a form only this format reads, so an older version must refuse the file.
pub fn open(engine: &dyn Engine, writable: bool) -> Result<()> {
    let txn = Txn::new(engine)?;
    check_format(&txn)?;
    let format_key = Key::CatalogFormat.encode();
    let older = stored_format(&txn)? < FORMAT;
    let has_catalog = txn.get(&Key::CatalogVersion.encode())?.is_some();
    if !(writable && older && has_catalog) {
        return Ok(());
    }
    txn.check_unchanged(&format_key)?;
    txn.set(format_key, Value::encode_counter(FORMAT), None);
    let batch = txn.into_batch();
    match engine.commit(&batch) {
        Ok(_) => Ok(()),
        // Another process recorded it first (or changed it: the next load checks again).
        Err(e) if e.is_retryable() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads every model definition (refusing a catalog in a newer format).
pub fn load(txn: &Txn) -> Result<Catalog> {
    check_format(txn)?;
    let mut models = Vec::new();
    let range = KeyRange::prefix(&KeyPrefix::ModelDefs.encode());
    for r in txn.scan(&range, false)? {
        let (_, bytes) = r?;
        models.push(decode_model(&bytes)?);
    }
    Ok(Catalog::new(models))
}

fn decode_model(bytes: &[u8]) -> Result<Model> {
    let corrupt = |m: String| Error::Corrupt(format!("catalog entry: {m}"));
    let Ok(Value::Object(obj)) = Value::decode(bytes) else {
        return Err(corrupt("not an object".into()));
    };
    let Some(Value::String(kql)) = obj.get("kql") else {
        return Err(corrupt("no kql".into()));
    };
    let building: Vec<String> = match obj.get("building") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| if let Value::String(s) = v { Some(s.clone()) } else { None })
            .collect(),
        _ => Vec::new(),
    };
    // Field ids (format 2); an entry without them (format 1) keeps fresh ids.
    let mut ids = BTreeMap::new();
    if let Some(Value::Object(fields)) = obj.get("fields") {
        for (name, id) in fields {
            let id = id.as_u64().and_then(|i| u32::try_from(i).ok());
            let id = id.ok_or_else(|| corrupt(format!("field `{name}` has no usable id")))?;
            ids.insert(name.clone(), id);
        }
    }
    let next = match obj.get("next_field") {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| corrupt("next_field is not a field id".into()))?,
    };
    let fills = match obj.get("fills") {
        None => BTreeMap::new(),
        Some(Value::Object(fills)) => fills.clone(),
        Some(_) => return Err(corrupt("fills is not an object".into())),
    };
    // An entry without ids (format 1) is of a model whose records are objects; one written
    // since says so itself.
    let objects = !obj.contains_key("fields") || obj.get("objects") == Some(&Value::Bool(true));
    match kvm_lang::parse_statement(kql) {
        Ok(Statement::DefineModel(def)) => Model::from_def(&def, &building)
            .and_then(|m| m.with_field_ids(&ids, next))
            .map(|m| m.with_fills(&fills).with_objects(objects))
            .map_err(|e| corrupt(e.message)),
        // Say why: a definition stored by an older version may break a newer limit (such
        // as `MAX_EXPR_DEPTH`), and the text itself may be long.
        Err(d) => Err(corrupt(format!("the stored DEFINE MODEL does not parse: {d}"))),
        Ok(_) => Err(corrupt(format!("not a DEFINE MODEL: {kql}"))),
    }
}

/// Writes (or replaces) a model's definition and bumps the catalog version.
pub fn save(txn: &Txn, model: &Model) -> Result<()> {
    let building: Vec<Value> =
        model.indexes.iter().filter(|i| !i.ready).map(|i| Value::String(i.name.clone())).collect();
    let mut obj = BTreeMap::new();
    obj.insert("kql".to_string(), Value::String(model.to_kql()));
    obj.insert("building".to_string(), Value::Array(building));
    let slots = &model.slots;
    let ids = slots.names.iter().zip(&slots.ids);
    let ids = ids.map(|(n, id)| (n.clone(), Value::Int(i64::from(*id)))).collect();
    obj.insert("fields".to_string(), Value::Object(ids));
    obj.insert("next_field".to_string(), Value::Int(i64::from(slots.next_id)));
    let fills: BTreeMap<String, Value> = slots
        .names
        .iter()
        .zip(&slots.fill)
        .filter_map(|(n, f)| f.as_ref().map(|v| (n.clone(), v.clone())))
        .collect();
    if !fills.is_empty() {
        obj.insert("fills".to_string(), Value::Object(fills));
    }
    if slots.objects {
        obj.insert("objects".to_string(), Value::Bool(true));
    }
    txn.set(Key::ModelDef { name: &model.name }.encode(), Value::Object(obj).encode(), None);
    bump(txn)
}

/// Removes a model's definition and bumps the catalog version.
pub fn remove(txn: &Txn, name: &str) -> Result<()> {
    txn.delete(Key::ModelDef { name }.encode());
    bump(txn)
}

/// Bumps the catalog version, and records this version's format when the stored one is
/// older or not recorded yet (a new database's first DDL, or a catalog of an older format
/// opened read-only). A newer format never gets here: [`load`] refused it before any
/// statement was planned.
fn bump(txn: &Txn) -> Result<()> {
    let key = Key::CatalogVersion.encode();
    let n = txn.get(&key)?.and_then(|b| Value::decode_counter(&b)).unwrap_or(0);
    txn.set(key, Value::encode_counter(n + 1), None);
    let format = Key::CatalogFormat.encode();
    if txn.get(&format)?.and_then(|b| Value::decode_counter(&b)) != Some(FORMAT) {
        txn.set(format, Value::encode_counter(FORMAT), None);
    }
    Ok(())
}
