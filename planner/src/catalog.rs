//! The catalog as the planner sees it: models with their fields, primary key and indexes,
//! built from (and printed back as) canonical `DEFINE MODEL` statements.
//!
//! A model's definition is kept as its `DEFINE MODEL` AST; everything else here is derived
//! from it, so `DESCRIBE` is the printer's output and storing a model is storing that text.

use std::collections::BTreeMap;

use kvm_lang::ast::{
    DefineModel, FieldDef, FieldType, IndexDef, ModelElement, ModifierKind, RelationDef, TypeName,
};
use kvm_lang::{Expr, Span};

use crate::error::PlanError;

/// The fields `WITH TIMESTAMPS` adds.
pub const CREATED_AT: &str = "created_at";
/// The fields `WITH TIMESTAMPS` adds.
pub const UPDATED_AT: &str = "updated_at";

/// Every model the database knows, by name, and the foreign keys among them (derived by
/// [`Catalog::new`]).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub models: BTreeMap<String, Model>,
    pub links: Vec<crate::relation::Link>,
}

impl Catalog {
    /// The model called `name`, or a diagnostic with a "did you mean" at `span`.
    pub fn model(&self, name: &str, span: Span) -> Result<&Model, PlanError> {
        self.models.get(name).ok_or_else(|| {
            let mut e =
                PlanError::new("kvm.unknown_model", format!("unknown model `{name}`")).at(span);
            if let Some(s) = crate::suggest::did_you_mean(name, self.models.keys()) {
                e = e.help(format!("did you mean `{s}`?"));
            }
            e
        })
    }
}

/// One field of a model, with its modifiers unpacked.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub primary_key: bool,
    pub not_null: bool,
    pub default: Option<Expr>,
    pub check: Option<Expr>,
    pub lowercase: bool,
    pub uppercase: bool,
    pub trim: bool,
    pub immutable: bool,
    pub on_update: Option<Expr>,
    /// `AS (expr) VIRTUAL`: computed on read, never stored.
    pub virtual_expr: Option<Expr>,
    /// `AS (expr) STORED`: computed on write.
    pub stored_expr: Option<Expr>,
    /// Added by `WITH TIMESTAMPS` (not written in the definition).
    pub implicit: bool,
}

impl Field {
    /// Whether the field may hold null (`T?`, or no `NOT NULL` and no primary key).
    pub fn nullable(&self) -> bool {
        !(self.not_null || self.primary_key)
    }

    /// A string as this field stores it: TRIM, then LOWERCASE, then UPPERCASE applied. The
    /// one place these modifiers are defined, for writes and for literals compared with the
    /// field alike.
    pub fn normalize(&self, mut s: String) -> String {
        if self.trim {
            s = s.trim().to_string();
        }
        if self.lowercase {
            s = s.to_lowercase();
        }
        if self.uppercase {
            s = s.to_uppercase();
        }
        s
    }
}

/// An index over one or more fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    pub fields: Vec<String>,
    /// False while a backfill is running: writes maintain it, queries do not use it.
    pub ready: bool,
}

/// A model: its definition and what the engine derives from it.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub fields: Vec<Field>,
    pub primary_key: usize,
    pub indexes: Vec<Index>,
    pub relations: Vec<RelationDef>,
    pub timestamps: bool,
    /// The definition, as `DESCRIBE` prints it.
    pub def: DefineModel,
    /// Where each field sits in a row: its slot is its position in `fields`.
    pub slots: std::sync::Arc<Slots>,
    /// Each field's DEFAULT, CHECK, ON UPDATE and computed expressions lowered to the plan
    /// IR (by slot): what writes and reads evaluate.
    pub exprs: std::sync::Arc<Vec<FieldExprs>>,
}

/// A field's expressions as the engine evaluates them. A definition stored by an earlier
/// version that no longer lowers keeps its error, raised when the expression is needed (so
/// the catalog still loads); `DEFINE` and `ALTER` refuse such a definition up front.
#[derive(Debug, Clone, Default)]
pub struct FieldExprs {
    pub default: Option<Lowered>,
    pub check: Option<Lowered>,
    pub on_update: Option<Lowered>,
    pub virtual_expr: Option<Lowered>,
    pub stored_expr: Option<Lowered>,
}

/// An expression of a definition, lowered.
pub type Lowered = Result<crate::ir::Scalar, PlanError>;

impl FieldExprs {
    fn new(model: &Model, f: &Field) -> FieldExprs {
        let scope = crate::ir::Scope::row(model);
        let lower = |e: &Option<Expr>| e.as_ref().map(|e| scope.lower(e));
        FieldExprs {
            default: lower(&f.default),
            check: lower(&f.check),
            on_update: lower(&f.on_update),
            virtual_expr: lower(&f.virtual_expr),
            stored_expr: lower(&f.stored_expr),
        }
    }
}

/// The slots of a model's rows: field `i` of the model is slot `i`. Rows are vectors in
/// this order; names are looked up here (by binary search) only where a name is all the
/// executor has.
///
/// Each field also has an **id**, what a stored record names it by (`Value::encode_record`).
/// Slots follow the definition and may move when it changes (a field added to a model
/// `WITH TIMESTAMPS` lands before `created_at`); an id never changes while the field
/// exists, and is never given to another field of the model (`next_id` only grows). So a
/// record written under any version of the model reads under any other, and a dropped
/// field's leftover value can never be taken for a later field of the same name.
#[derive(Debug, Clone, PartialEq)]
pub struct Slots {
    /// The field names, in slot order.
    pub names: Vec<String>,
    /// The slots in the order of their names (the order a stored record's fields are in).
    pub by_name: Vec<usize>,
    /// Each slot's field id.
    pub ids: Vec<u32>,
    /// The slots in increasing id order (the order a record stores its fields in).
    pub by_id_order: Vec<usize>,
    /// The slot of each id (`NO_SLOT` for an id the model does not have).
    by_id: Vec<u32>,
    /// The id the next new field gets.
    pub next_id: u32,
    /// Each slot's fill: what a record that lacks the field holds in it. `Some` for a field
    /// `ALTER MODEL … ADD FIELD … DEFAULT <constant>` added to a model that had records:
    /// those records were not rewritten (the ALTER is one small commit at any size), and
    /// read the default. A record written since stores the field even when null, so a
    /// missing field means "written before the field existed", never "null".
    pub fill: Vec<Option<kvm_storage::Value>>,
    /// Whether records of this model may be objects that name their fields (written before
    /// field ids, catalog format 1). Such a record names a dropped field by name, so a later
    /// field of that name would read its leftover value: `DROP FIELD` rewrites the records
    /// of these models instead of leaving the dropped values in place.
    pub objects: bool,
}

const NO_SLOT: u32 = u32::MAX;

/// Ids above this are refused: `by_id` is a table indexed by id.
pub const MAX_FIELD_ID: u32 = 1 << 20;

impl Slots {
    /// Slots with fresh ids: slot `i` has id `i`.
    pub fn new(names: Vec<String>) -> Slots {
        Slots::with_ids(names, |_| None, 0).unwrap_or_else(|e| unreachable!("fresh ids: {e}"))
    }

    /// Slots whose field ids come from `known` where it has one (an earlier version of the
    /// model, or the stored catalog); every other field gets a fresh id from `next` on.
    /// Two fields with one id, or an id beyond [`MAX_FIELD_ID`], are refused (a damaged
    /// catalog entry).
    pub fn with_ids(
        names: Vec<String>,
        known: impl Fn(&str) -> Option<u32>,
        next: u32,
    ) -> Result<Slots, String> {
        let mut by_name: Vec<usize> = (0..names.len()).collect();
        by_name.sort_by(|a, b| names[*a].cmp(&names[*b]));
        let mut next_id =
            next.max(names.iter().filter_map(|n| known(n)).max().map_or(0, |m| m + 1));
        let ids: Vec<u32> = names
            .iter()
            .map(|n| {
                known(n).unwrap_or_else(|| {
                    next_id += 1;
                    next_id - 1
                })
            })
            .collect();
        if let Some(&id) = ids.iter().find(|id| **id > MAX_FIELD_ID) {
            return Err(format!("field id {id} is out of range"));
        }
        let mut by_id = vec![NO_SLOT; ids.iter().max().map_or(0, |m| *m as usize + 1)];
        for (slot, &id) in ids.iter().enumerate() {
            if by_id[id as usize] != NO_SLOT {
                return Err(format!("two fields have id {id}"));
            }
            by_id[id as usize] = slot as u32;
        }
        let mut by_id_order: Vec<usize> = (0..names.len()).collect();
        by_id_order.sort_by_key(|i| ids[*i]);
        let fill = vec![None; names.len()];
        Ok(Slots { names, by_name, ids, by_id_order, by_id, next_id, fill, objects: false })
    }

    /// These fields with the ids `previous` (an earlier version of the model) gave them, and
    /// their fills (and whether records may be objects).
    pub fn keeping_ids(names: Vec<String>, previous: &Slots) -> Slots {
        Slots::keeping_ids_renamed(names, previous, &[])
    }

    /// [`Slots::keeping_ids`], a field renamed `(old, new)` keeping the old one's id.
    pub fn keeping_ids_renamed(
        names: Vec<String>,
        previous: &Slots,
        renames: &[(String, String)],
    ) -> Slots {
        let old_name = |n: &str| -> String {
            let mut n = n.to_string();
            for (old, new) in renames.iter().rev() {
                if *new == n {
                    n = old.clone();
                }
            }
            n
        };
        let known = |n: &str| previous.slot(&old_name(n)).map(|i| previous.ids[i]);
        let mut slots = Slots::with_ids(names, known, previous.next_id)
            .unwrap_or_else(|e| unreachable!("ids of a valid model: {e}"));
        for (i, id) in slots.ids.iter().enumerate() {
            if let Some(p) = previous.slot_of_id(*id) {
                slots.fill[i] = previous.fill[p].clone();
            }
        }
        slots.objects = previous.objects;
        slots
    }

    /// The fill of slot `i` ([`Slots::fill`]).
    #[inline]
    pub fn fill_of(&self, i: usize) -> Option<&kvm_storage::Value> {
        self.fill.get(i).and_then(Option::as_ref)
    }

    /// Whether any slot has a fill (decoders look for missing fields only then).
    pub fn has_fills(&self) -> bool {
        self.fill.iter().any(Option::is_some)
    }

    /// The slot of the field with id `id`, if the model has it.
    #[inline]
    pub fn slot_of_id(&self, id: u32) -> Option<usize> {
        match self.by_id.get(id as usize) {
            Some(&s) if s != NO_SLOT => Some(s as usize),
            _ => None,
        }
    }

    /// The slot of each id (a table indexed by id) for the slots `wanted` marks, and
    /// `NO_SLOT` for the others; it ends at the last wanted id, so a reader of it stops
    /// there. What a scan that reads a few fields of every record looks ids up in.
    pub fn wanted_by_id(&self, wanted: &[bool]) -> Vec<u32> {
        let mut table = self.by_id.clone();
        for s in table.iter_mut() {
            if *s != NO_SLOT && wanted.get(*s as usize) != Some(&true) {
                *s = NO_SLOT;
            }
        }
        while table.last() == Some(&NO_SLOT) {
            table.pop();
        }
        table
    }

    /// The slot of field `name`.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.by_name
            .binary_search_by(|i| self.names[*i].as_str().cmp(name))
            .ok()
            .map(|at| self.by_name[at])
    }

    /// The slot of stored field `name`, for a decoder reading a record's fields in their
    /// stored (name, byte) order: a merge with `by_name`, `at` its position, moved past the
    /// slots passed (one comparison each). `None` when the model has no such field.
    pub fn merge(&self, at: &mut usize, name: &[u8]) -> Option<usize> {
        while let Some(&i) = self.by_name.get(*at) {
            match self.names[i].as_bytes().cmp(name) {
                std::cmp::Ordering::Less => *at += 1,
                std::cmp::Ordering::Equal => return Some(i),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl Model {
    /// Builds a model from its definition, checking it: one primary key of a keyable type,
    /// unique names, indexes over known, indexable, stored fields. `building` lists indexes
    /// whose backfill has not finished.
    pub fn from_def(def: &DefineModel, building: &[String]) -> Result<Model, PlanError> {
        let name = def.name.name.clone();
        if name.starts_with("__") {
            return Err(PlanError::new(
                "kvm.invalid_model",
                format!("model names starting with `__` are reserved: `{name}`"),
            )
            .at(def.name.span));
        }
        let mut fields = Vec::new();
        let mut indexes: Vec<Index> = Vec::new();
        let mut relations = Vec::new();
        let mut pk = None;
        for element in &def.elements {
            match element {
                ModelElement::Field(fd) => {
                    let field = field_from_def(&name, fd)?;
                    if fields.iter().any(|f: &Field| f.name == field.name) {
                        return Err(PlanError::new(
                            "kvm.invalid_model",
                            format!("model `{name}` defines field `{}` twice", field.name),
                        )
                        .at(fd.name.span));
                    }
                    if field.primary_key {
                        if pk.is_some() {
                            return Err(PlanError::new(
                                "kvm.invalid_model",
                                format!("model `{name}` has more than one PRIMARY KEY"),
                            )
                            .at(fd.span));
                        }
                        pk = Some(fields.len());
                    }
                    if fd.modifiers.iter().any(|m| m.kind == ModifierKind::Unique) {
                        indexes.push(Index {
                            name: format!("{}_unique", field.name),
                            unique: true,
                            fields: vec![field.name.clone()],
                            ready: true,
                        });
                    }
                    fields.push(field);
                }
                ModelElement::Index(ix) => indexes.push(index_from_def(ix)),
                ModelElement::Relation(r) => relations.push(r.clone()),
            }
        }
        if def.timestamps {
            for ts in [CREATED_AT, UPDATED_AT] {
                if fields.iter().any(|f| f.name == ts) {
                    return Err(PlanError::new(
                        "kvm.invalid_model",
                        format!("model `{name}` is WITH TIMESTAMPS and also defines `{ts}`"),
                    )
                    .at(def.span));
                }
                fields.push(timestamp_field(ts));
            }
        }
        let Some(primary_key) = pk else {
            return Err(PlanError::new(
                "kvm.invalid_model",
                format!("model `{name}` needs a PRIMARY KEY field"),
            )
            .at(def.name.span));
        };
        let pk_field = &fields[primary_key];
        if !keyable(&pk_field.ty.name) || pk_field.virtual_expr.is_some() {
            return Err(PlanError::new(
                "kvm.invalid_model",
                format!(
                    "field `{name}.{}` cannot be a primary key: its type is not a key type \
                     (STRING, INT, U64, ULID, UUID, BYTES, TIMESTAMP, DATE)",
                    pk_field.name
                ),
            )
            .at(def.name.span));
        }
        for ix in &mut indexes {
            if building.contains(&ix.name) {
                ix.ready = false;
            }
        }
        let slots =
            std::sync::Arc::new(Slots::new(fields.iter().map(|f| f.name.clone()).collect()));
        let mut model = Model {
            name,
            slots,
            exprs: Default::default(),
            fields,
            primary_key,
            indexes,
            relations,
            timestamps: def.timestamps,
            def: def.clone(),
        };
        for (i, ix) in model.indexes.iter().enumerate() {
            model.check_index(ix, def.span)?;
            if model.indexes[..i].iter().any(|o| o.name == ix.name) {
                return Err(PlanError::new(
                    "kvm.invalid_model",
                    format!("model `{}` has two indexes named `{}`", model.name, ix.name),
                )
                .at(def.span));
            }
        }
        let exprs = model.fields.iter().map(|f| FieldExprs::new(&model, f)).collect();
        model.exprs = std::sync::Arc::new(exprs);
        Ok(model)
    }

    /// This model (a new version of `previous`) with the field ids `previous` gave its
    /// fields; a new field gets a fresh id (see [`Slots`]).
    pub fn keeping_field_ids(self, previous: &Model) -> Model {
        self.keeping_field_ids_renamed(previous, &[])
    }

    /// [`Model::keeping_field_ids`] where fields were renamed (`(old, new)`, in order): a
    /// renamed field keeps its id, so its values and fill carry over.
    pub fn keeping_field_ids_renamed(
        mut self,
        previous: &Model,
        renames: &[(String, String)],
    ) -> Model {
        let names = self.slots.names.clone();
        self.slots =
            std::sync::Arc::new(Slots::keeping_ids_renamed(names, &previous.slots, renames));
        self
    }

    /// This model marked as one whose records may be objects ([`Slots::objects`]).
    pub fn with_objects(mut self, objects: bool) -> Model {
        if objects != self.slots.objects {
            std::sync::Arc::make_mut(&mut self.slots).objects = objects;
        }
        self
    }

    /// This model with the fills its stored catalog entry gives ([`Slots::fill`]); a name
    /// the model lacks is ignored.
    pub fn with_fills(mut self, fills: &BTreeMap<String, kvm_storage::Value>) -> Model {
        if fills.is_empty() {
            return self;
        }
        let mut slots = (*self.slots).clone();
        for (name, v) in fills {
            if let Some(i) = slots.slot(name) {
                slots.fill[i] = Some(v.clone());
            }
        }
        self.slots = std::sync::Arc::new(slots);
        self
    }

    /// This model with the field ids its stored catalog entry gives (`next`: the id its
    /// next new field gets). A field the entry does not name gets a fresh id.
    pub fn with_field_ids(
        mut self,
        ids: &BTreeMap<String, u32>,
        next: u32,
    ) -> Result<Model, PlanError> {
        let names = self.slots.names.clone();
        let slots = Slots::with_ids(names, |n| ids.get(n).copied(), next)
            .map_err(|e| PlanError::new("kvm.corrupt", format!("model `{}`: {e}", self.name)))?;
        self.slots = std::sync::Arc::new(slots);
        Ok(self)
    }

    /// The expressions of each field's definition, with the clause each comes from.
    pub fn field_exprs(&self) -> impl Iterator<Item = (&Field, &'static str, &Expr)> {
        self.fields.iter().flat_map(|f| {
            [
                ("DEFAULT", &f.default),
                ("CHECK", &f.check),
                ("ON UPDATE", &f.on_update),
                ("AS … VIRTUAL", &f.virtual_expr),
                ("AS … STORED", &f.stored_expr),
            ]
            .into_iter()
            .filter_map(move |(clause, e)| e.as_ref().map(|e| (f, clause, e)))
        })
    }

    /// Binds every DEFAULT, CHECK, ON UPDATE and computed (`AS`) expression against the
    /// model's fields (run by `DEFINE MODEL` and `ALTER MODEL`, not when a stored catalog is
    /// loaded): an unknown name is an error with a "did you mean".
    pub fn bind_definitions(&self) -> Result<(), PlanError> {
        for (f, clause, e) in self.field_exprs() {
            crate::bind::bind_expr(self, e).map_err(|mut err| {
                err.message =
                    format!("{clause} of field `{}.{}`: {}", self.name, f.name, err.message);
                err
            })?;
            if clause == "DEFAULT" {
                if let Some(used) = self.fields.iter().find(|u| crate::bind::uses_field(e, &u.name))
                {
                    return Err(PlanError::new(
                        "kvm.invalid_model",
                        format!(
                            "DEFAULT of field `{}.{}` uses field `{}`, but a default is \
                             computed before the record exists",
                            self.name, f.name, used.name
                        ),
                    )
                    .at(e.span)
                    .help("use `AS (…) STORED` for a value computed from other fields"));
                }
            }
        }
        for (f, x) in self.fields.iter().zip(self.exprs.iter()) {
            let all = [&x.default, &x.check, &x.on_update, &x.virtual_expr, &x.stored_expr];
            if let Some(Err(e)) = all.into_iter().flatten().find(|l| l.is_err()) {
                let mut e = e.clone();
                e.message = format!("field `{}.{}`: {}", self.name, f.name, e.message);
                return Err(e);
            }
        }
        Ok(())
    }

    /// What still uses field `name` (another field's DEFAULT, CHECK, ON UPDATE or `AS`
    /// expression, or an index), described for an error message; `None` when nothing does.
    /// Fields in `gone_fields` and indexes in `gone_indexes` (dropped by the same statement)
    /// do not count.
    pub fn field_used_by(
        &self,
        name: &str,
        gone_fields: &[String],
        gone_indexes: &[String],
    ) -> Option<String> {
        if let Some((f, clause, _)) = self.field_exprs().find(|(f, _, e)| {
            f.name != name && !gone_fields.contains(&f.name) && crate::bind::uses_field(e, name)
        }) {
            return Some(format!("the {clause} of field `{}.{}`", self.name, f.name));
        }
        self.indexes
            .iter()
            .filter(|i| !gone_indexes.contains(&i.name))
            .find(|i| i.fields.iter().any(|x| x == name))
            .map(|i| format!("index `{}`", i.name))
    }

    /// Checks that an index names known, stored fields of indexable types.
    pub fn check_index(&self, ix: &Index, span: Span) -> Result<(), PlanError> {
        if ix.fields.is_empty() {
            return Err(PlanError::new(
                "kvm.invalid_index",
                format!("index `{}` has no fields", ix.name),
            )
            .at(span));
        }
        for (i, f) in ix.fields.iter().enumerate() {
            if ix.fields[..i].contains(f) {
                return Err(PlanError::new(
                    "kvm.invalid_index",
                    format!("index `{}` names field `{}.{f}` twice", ix.name, self.name),
                )
                .at(span));
            }
            let Some(field) = self.field(f) else {
                let mut e = PlanError::new(
                    "kvm.unknown_field",
                    format!("index `{}` names unknown field `{}.{f}`", ix.name, self.name),
                )
                .at(span);
                if let Some(s) =
                    crate::suggest::did_you_mean(f, self.fields.iter().map(|f| &f.name))
                {
                    e = e.help(format!("did you mean `{s}`?"));
                }
                return Err(e);
            };
            if field.virtual_expr.is_some() || !indexable(&field.ty.name) {
                return Err(PlanError::new(
                    "kvm.invalid_index",
                    format!(
                        "field `{}.{f}` cannot be indexed (virtual fields, objects and arrays \
                         are not indexable)",
                        self.name
                    ),
                )
                .at(span));
            }
        }
        Ok(())
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The primary-key field.
    pub fn pk(&self) -> &Field {
        &self.fields[self.primary_key]
    }

    /// The index called `name`.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The canonical definition, with indexes added by `ALTER` folded in.
    pub fn to_kql(&self) -> String {
        self.def.to_string()
    }
}

/// The generated name of an unnamed index: `by_a_b`.
pub fn index_name(ix: &IndexDef) -> String {
    match &ix.name {
        Some(n) => n.name.clone(),
        None => {
            let names: Vec<&str> = ix.fields.iter().map(|f| f.name.as_str()).collect();
            format!("by_{}", names.join("_"))
        }
    }
}

/// An [`Index`] from its definition (ready).
pub fn index_from_def(ix: &IndexDef) -> Index {
    Index {
        name: index_name(ix),
        unique: ix.unique,
        fields: ix.fields.iter().map(|f| f.name.clone()).collect(),
        ready: true,
    }
}

/// Types a primary key may have.
pub fn keyable(t: &TypeName) -> bool {
    matches!(
        t,
        TypeName::String
            | TypeName::Int
            | TypeName::U64
            | TypeName::Ulid
            | TypeName::Uuid
            | TypeName::Bytes
            | TypeName::Timestamp
            | TypeName::Date
    )
}

/// Types an index may cover.
pub fn indexable(t: &TypeName) -> bool {
    keyable(t) || matches!(t, TypeName::Float | TypeName::Bool | TypeName::Enum(_))
}

fn timestamp_field(name: &str) -> Field {
    Field {
        name: name.to_string(),
        ty: FieldType { name: TypeName::Timestamp, optional: false, span: Span::default() },
        primary_key: false,
        not_null: true,
        default: None,
        check: None,
        lowercase: false,
        uppercase: false,
        trim: false,
        immutable: name == CREATED_AT,
        on_update: None,
        virtual_expr: None,
        stored_expr: None,
        implicit: true,
    }
}

/// Unpacks a field definition's modifiers.
pub fn field_from_def(model: &str, fd: &FieldDef) -> Result<Field, PlanError> {
    let mut f = Field {
        name: fd.name.name.clone(),
        ty: fd.ty.clone(),
        primary_key: false,
        not_null: false,
        default: None,
        check: None,
        lowercase: false,
        uppercase: false,
        trim: false,
        immutable: false,
        on_update: None,
        virtual_expr: None,
        stored_expr: None,
        implicit: false,
    };
    for m in &fd.modifiers {
        match &m.kind {
            ModifierKind::PrimaryKey => f.primary_key = true,
            ModifierKind::Unique => {}
            ModifierKind::NotNull => f.not_null = true,
            ModifierKind::Default(e) => f.default = Some(e.clone()),
            ModifierKind::Check(e) => f.check = Some(e.clone()),
            ModifierKind::Lowercase => f.lowercase = true,
            ModifierKind::Uppercase => f.uppercase = true,
            ModifierKind::Trim => f.trim = true,
            ModifierKind::Immutable => f.immutable = true,
            ModifierKind::OnUpdate(e) => f.on_update = Some(e.clone()),
            ModifierKind::Computed { expr, stored: false } => f.virtual_expr = Some(expr.clone()),
            ModifierKind::Computed { expr, stored: true } => f.stored_expr = Some(expr.clone()),
        }
    }
    if f.not_null && fd.ty.optional {
        return Err(PlanError::new(
            "kvm.invalid_model",
            format!("field `{model}.{}` is both optional (`?`) and NOT NULL", f.name),
        )
        .at(fd.span));
    }
    if f.virtual_expr.is_some() && (f.primary_key || f.default.is_some()) {
        return Err(PlanError::new(
            "kvm.invalid_model",
            format!("virtual field `{model}.{}` cannot be a primary key or have a default", f.name),
        )
        .at(fd.span));
    }
    Ok(f)
}
