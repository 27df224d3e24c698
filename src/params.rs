//! Statement parameters: `$1`, `$2`, … bound by position and `$name` by name, built from
//! tuples, vectors or the [`params!`](crate::params!) macro. Values are bound, never spliced
//! into text.

use std::collections::BTreeMap;

use kvm_lang::ast::Param;
use kvm_storage::Value;

use crate::error::{Error, Result};

/// Bound parameter values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub positional: Vec<Value>,
    pub named: BTreeMap<String, Value>,
}

impl Params {
    /// No parameters.
    pub fn none() -> Params {
        Params::default()
    }

    /// Adds a named parameter (`$name`).
    pub fn with(mut self, name: &str, value: impl IntoValue) -> Params {
        self.named.insert(name.trim_start_matches('$').to_string(), value.into_value());
        self
    }

    /// The value bound to `p`.
    pub fn get(&self, p: &Param) -> Result<&Value> {
        match p {
            Param::Positional(n) => (*n as usize)
                .checked_sub(1)
                .and_then(|i| self.positional.get(i))
                .ok_or_else(|| Error::Param(format!("no value bound to ${n}"))),
            Param::Named(n) => {
                self.named.get(n).ok_or_else(|| Error::Param(format!("no value bound to ${n}")))
            }
        }
    }
}

/// The parameters a statement refers to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Used {
    /// The highest `$n` (0: none).
    positional: u32,
    named: Vec<String>,
}

impl Used {
    /// The parameters `stmt` refers to, read off its KQL text (every statement prints as
    /// the KQL it parses from, so no statement kind is missed).
    pub(crate) fn of(stmt: &kvm_lang::Statement) -> Used {
        let text = stmt.to_string();
        let mut used = Used::default();
        for t in kvm_lang::tokenize(&text) {
            if t.kind != kvm_lang::TokenKind::Param {
                continue;
            }
            let name = text.get(t.span.start as usize + 1..t.span.end as usize).unwrap_or("");
            match name.parse::<u32>() {
                Ok(n) => used.positional = used.positional.max(n),
                Err(_) => {
                    if !used.named.iter().any(|x| x == name) {
                        used.named.push(name.to_string());
                    }
                }
            }
        }
        used
    }
}

impl Params {
    /// Refuses parameters the statement does not use (a value bound to nothing is a
    /// mistake: a missing `$3`, a misspelt `$name`), and parameters it uses that are not
    /// bound — before anything runs.
    pub(crate) fn check(&self, used: &Used) -> Result<()> {
        let given = self.positional.len();
        let wanted = used.positional as usize;
        if given > wanted {
            return Err(Error::Param(match wanted {
                0 => format!(
                    "{given} positional parameter{} given, but the statement uses none",
                    if given == 1 { "" } else { "s" }
                ),
                _ => format!(
                    "{given} positional parameters given, but the statement uses only ${wanted}"
                ),
            }));
        }
        if given < wanted {
            return Err(Error::Param(format!(
                "the statement uses ${wanted}, but {given} positional parameter{} given",
                if given == 1 { " was" } else { "s were" }
            )));
        }
        if let Some(n) = self.named.keys().find(|n| !used.named.contains(n)) {
            return Err(Error::Param(format!("${n} is bound, but the statement does not use it")));
        }
        if let Some(n) = used.named.iter().find(|n| !self.named.contains_key(*n)) {
            return Err(Error::Param(format!("no value bound to ${n}")));
        }
        Ok(())
    }
}

/// Rust values that become KQL values.
pub trait IntoValue {
    fn into_value(self) -> Value;
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}
impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::String(self.to_string())
    }
}
impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::String(self)
    }
}
impl IntoValue for &String {
    fn into_value(self) -> Value {
        Value::String(self.clone())
    }
}
impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}
impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::Float(self)
    }
}
impl IntoValue for u64 {
    fn into_value(self) -> Value {
        Value::Counter(self)
    }
}
impl IntoValue for Vec<u8> {
    fn into_value(self) -> Value {
        Value::Bytes(self)
    }
}
macro_rules! ints {
    ($($t:ty),*) => {$(
        impl IntoValue for $t {
            fn into_value(self) -> Value {
                Value::Int(i64::from(self))
            }
        }
    )*};
}
ints!(i8, i16, i32, i64, u8, u16, u32);
impl IntoValue for serde_json::Value {
    fn into_value(self) -> Value {
        crate::json::from_json(&self)
    }
}
impl IntoValue for &serde_json::Value {
    fn into_value(self) -> Value {
        crate::json::from_json(self)
    }
}
impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        self.map_or(Value::Null, IntoValue::into_value)
    }
}

/// Anything that binds parameters: `()`, tuples of values, `Vec<Value>`, [`Params`].
pub trait IntoParams {
    fn into_params(self) -> Params;
}

impl IntoParams for Params {
    fn into_params(self) -> Params {
        self
    }
}
impl IntoParams for () {
    fn into_params(self) -> Params {
        Params::default()
    }
}
impl IntoParams for Vec<Value> {
    fn into_params(self) -> Params {
        Params { positional: self, named: BTreeMap::new() }
    }
}
macro_rules! tuples {
    ($(($($n:ident),+)),*) => {$(
        impl<$($n: IntoValue),+> IntoParams for ($($n,)+) {
            #[allow(non_snake_case)]
            fn into_params(self) -> Params {
                let ($($n,)+) = self;
                Params { positional: vec![$($n.into_value()),+], named: BTreeMap::new() }
            }
        }
    )*};
}
tuples!((A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E), (A, B, C, D, E, F));

/// Builds [`Params`]: `params![1, "a"]` binds `$1`, `$2`; `params!{"name" => v, …}` binds
/// `$name`s.
#[macro_export]
macro_rules! params {
    () => { $crate::Params::default() };
    ($($name:literal => $value:expr),+ $(,)?) => {{
        let mut p = $crate::Params::default();
        $( p = p.with($name, $value); )+
        p
    }};
    ($($value:expr),+ $(,)?) => {{
        let mut p = $crate::Params::default();
        $( p.positional.push($crate::IntoValue::into_value($value)); )+
        p
    }};
}
