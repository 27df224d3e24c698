//! The catalog in the database: each model's canonical `DEFINE MODEL` text (plus the names
//! of indexes still being backfilled) under `['__sys', 'catalog', 'model', name]`, and a
//! version counter under `['__sys', 'catalog', 'version']` that every DDL statement bumps.
//! Every statement checks the version key at commit, so a statement planned against a
//! schema another process has since changed conflicts and retries against the new one.

use std::collections::BTreeMap;

use kvm_lang::Statement;
use kvm_planner::{Catalog, Model};
use kvm_storage::{KeyRange, Value};

use crate::error::{Error, Result};
use crate::keyspace::{Key, KeyPrefix};
use crate::txn::Txn;

/// Reads every model definition.
pub fn load(txn: &Txn) -> Result<Catalog> {
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
    match kvm_lang::parse_statement(kql) {
        Ok(Statement::DefineModel(def)) => {
            Model::from_def(&def, &building).map_err(|e| corrupt(e.message))
        }
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
    txn.set(Key::ModelDef { name: &model.name }.encode(), Value::Object(obj).encode(), None);
    bump(txn)
}

/// Removes a model's definition and bumps the catalog version.
pub fn remove(txn: &Txn, name: &str) -> Result<()> {
    txn.delete(Key::ModelDef { name }.encode());
    bump(txn)
}

fn bump(txn: &Txn) -> Result<()> {
    let key = Key::CatalogVersion.encode();
    let n = txn.get(&key)?.and_then(|b| Value::decode_counter(&b)).unwrap_or(0);
    txn.set(key, Value::encode_counter(n + 1), None);
    Ok(())
}
