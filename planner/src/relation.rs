//! Relations resolved against the whole catalog: how a record reaches its related records
//! ([`Rel`]), the foreign keys the engine keeps intact ([`Link`]), and the checks a schema
//! change must pass (fk fields that exist and match the key they point at, no conflicting
//! `ON DELETE`). A relation may name a model defined later: it is resolved, and checked,
//! once both models exist.

use kvm_lang::ast::{
    DefineModel, FieldDef, FieldModifier, FieldType, Ident, IndexDef, ModelElement, ModifierKind,
    OnDelete, RelationDef, RelationKind, TypeName,
};
use kvm_lang::Span;

use crate::catalog::{Catalog, Model};
use crate::error::PlanError;

/// The fields of a join model made for a `MANY TO MANY` without `THROUGH`.
pub const JOIN_SOURCE: &str = "source_id";
/// See [`JOIN_SOURCE`].
pub const JOIN_TARGET: &str = "target_id";

/// How the records of a relation are reached from a record of its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelPath {
    /// The model's field `fk` holds the target's primary key (`BELONGS TO`).
    Fk { fk: String },
    /// The target's field `fk` holds the model's primary key (`HAS ONE` / `HAS MANY`);
    /// `index` is an index of the target whose first field is `fk`.
    Reverse { fk: String, index: String },
    /// Records of the join model `join`: `src` holds the model's key, `dst` the target's;
    /// `index` is an index of the join model whose first field is `src`.
    Through { join: String, src: String, dst: String, index: String },
}

/// A relation, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rel {
    /// The model that declares it.
    pub model: String,
    pub name: String,
    pub kind: RelationKind,
    pub target: String,
    pub path: RelPath,
}

impl Rel {
    /// Whether it yields at most one record (an object or null, not an array).
    pub fn single(&self) -> bool {
        matches!(self.kind, RelationKind::BelongsTo | RelationKind::HasOne)
    }

    /// How `EXPLAIN` describes the read.
    pub fn describe(&self) -> String {
        match &self.path {
            RelPath::Fk { fk } => format!("Get {} by {}.{fk}", self.target, self.model),
            RelPath::Reverse { index, .. } => {
                format!("IndexScan {}.{index} prefix [key of {}]", self.target, self.model)
            }
            RelPath::Through { join, index, dst, .. } => format!(
                "IndexScan {join}.{index} prefix [key of {}], then Get {} by {join}.{dst}",
                self.model, self.target
            ),
        }
    }
}

/// A foreign key the engine keeps intact: `child.fk` is null or holds the primary key of a
/// `parent` record; deleting that record does `on_delete` to its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub parent: String,
    pub child: String,
    pub fk: String,
    pub on_delete: OnDelete,
    /// The relation that declares it (`model.relation`), for messages.
    pub via: String,
}

/// The name of the join model a `MANY TO MANY` without `THROUGH` gets.
pub fn join_model_name(model: &str, relation: &str) -> String {
    format!("{model}_{relation}")
}

fn err(message: String, span: Span) -> PlanError {
    PlanError::new("kvm.invalid_relation", message).at(span)
}

impl Catalog {
    /// A catalog of these models, with its foreign keys derived.
    pub fn new(models: impl IntoIterator<Item = Model>) -> Catalog {
        let mut c = Catalog {
            models: models.into_iter().map(|m| (m.name.clone(), m)).collect(),
            links: Vec::new(),
        };
        c.links = c.derive_links();
        c
    }

    /// The relation `name` of `model`, resolved (its target must exist).
    pub fn relation(&self, model: &Model, name: &str, span: Span) -> Result<Rel, PlanError> {
        let Some(def) = model.relations.iter().find(|r| r.name.name == name) else {
            let mut e = PlanError::new(
                "kvm.unknown_relation",
                format!("model `{}` has no relation `{name}`", model.name),
            )
            .at(span);
            let names = model.relations.iter().map(|r| &r.name.name);
            if let Some(s) = crate::suggest::did_you_mean(name, names) {
                e = e.help(format!("did you mean `{s}`?"));
            }
            return Err(e);
        };
        // The definition's spans point into the text that defined it (stored in the catalog),
        // not into this statement: point at the use instead.
        self.resolve(model, def).map_err(|e| e.at(span))
    }

    /// Resolves one relation definition of `model`.
    pub fn resolve(&self, model: &Model, def: &RelationDef) -> Result<Rel, PlanError> {
        let name = &def.name.name;
        let full = format!("{}.{name}", model.name);
        let target = self.models.get(&def.target.name).ok_or_else(|| {
            err(
                format!(
                    "relation `{full}` targets model `{}`, which is not defined",
                    def.target.name
                ),
                def.target.span,
            )
        })?;
        let one_fk = |default: Option<String>| -> Result<String, PlanError> {
            match def.fields.as_slice() {
                [f] => Ok(f.name.clone()),
                [] => default.ok_or_else(|| {
                    err(
                        format!("relation `{full}` needs its foreign-key field: `(field)`"),
                        def.span,
                    )
                }),
                _ => Err(PlanError::unsupported("a foreign key of several fields", def.span)),
            }
        };
        let index_on = |m: &Model, fk: &str| -> Result<String, PlanError> {
            m.indexes
                .iter()
                .find(|i| i.fields.first().is_some_and(|f| f == fk))
                .map(|i| i.name.clone())
                .ok_or_else(|| {
                    err(format!("relation `{full}`: no index on `{}.{fk}`", m.name), def.span)
                })
        };
        let path = match def.kind {
            RelationKind::BelongsTo => RelPath::Fk { fk: belongs_fk(def) },
            RelationKind::HasOne | RelationKind::HasMany => {
                let fk = one_fk(back_fk(model, target))?;
                let index = index_on(target, &fk)?;
                RelPath::Reverse { fk, index }
            }
            RelationKind::ManyToMany => {
                let (join, auto) = match &def.through {
                    Some(j) => (j.name.clone(), false),
                    None => (join_model_name(&model.name, name), true),
                };
                let jm = self.models.get(&join).ok_or_else(|| {
                    err(format!("relation `{full}`: join model `{join}` is not defined"), def.span)
                })?;
                let (src, dst) = match (def.fields.as_slice(), auto) {
                    ([s, d], _) => (s.name.clone(), d.name.clone()),
                    ([], true) => (JOIN_SOURCE.to_string(), JOIN_TARGET.to_string()),
                    ([], false) => {
                        let to = |m: &str| -> Vec<String> {
                            jm.relations
                                .iter()
                                .filter(|r| r.kind == RelationKind::BelongsTo && r.target.name == m)
                                .map(belongs_fk)
                                .collect()
                        };
                        match (to(&model.name).as_slice(), to(&target.name).as_slice()) {
                            ([s], [d]) if s != d => (s.clone(), d.clone()),
                            _ => {
                                return Err(err(
                                    format!(
                                        "relation `{full}`: name the join fields, \
                                         `MANY TO MANY {} (field for {}, field for {}) THROUGH {join}` \
                                         (`{join}` needs one BELONGS TO each model)",
                                        target.name, model.name, target.name
                                    ),
                                    def.span,
                                ))
                            }
                        }
                    }
                    _ => {
                        return Err(err(
                            format!(
                                "relation `{full}`: a MANY TO MANY names two join fields \
                                 (this model's key, the target's key)"
                            ),
                            def.span,
                        ))
                    }
                };
                for f in [&src, &dst] {
                    if jm.field(f).is_none() {
                        return Err(err(
                            format!("relation `{full}`: join model `{join}` has no field `{f}`"),
                            def.span,
                        ));
                    }
                }
                let index = index_on(jm, &src)?;
                RelPath::Through { join, src, dst, index }
            }
        };
        Ok(Rel {
            model: model.name.clone(),
            name: name.clone(),
            kind: def.kind,
            target: target.name.clone(),
            path,
        })
    }

    /// Every foreign key among defined models: one per (parent, child, field), declared by a
    /// `BELONGS TO` on the child or a `HAS ONE`/`HAS MANY` on the parent (or both). The
    /// `ON DELETE` written on either side applies; none means `RESTRICT`.
    fn derive_links(&self) -> Vec<Link> {
        let mut links: Vec<(Link, bool)> = Vec::new();
        for m in self.models.values() {
            for r in &m.relations {
                let Some(target) = self.models.get(&r.target.name) else { continue };
                let (parent, child, fk) = match r.kind {
                    RelationKind::BelongsTo => (target, m, belongs_fk(r)),
                    RelationKind::HasOne | RelationKind::HasMany => match r.fields.as_slice() {
                        [f] => (m, target, f.name.clone()),
                        [] => match back_fk(m, target) {
                            Some(fk) => (m, target, fk),
                            None => continue,
                        },
                        _ => continue,
                    },
                    RelationKind::ManyToMany => continue,
                };
                let explicit = r.on_delete.is_some();
                let link = Link {
                    parent: parent.name.clone(),
                    child: child.name.clone(),
                    fk,
                    on_delete: r.on_delete.unwrap_or(OnDelete::Restrict),
                    via: format!("{}.{}", m.name, r.name.name),
                };
                match links.iter_mut().find(|(l, _)| {
                    l.parent == link.parent && l.child == link.child && l.fk == link.fk
                }) {
                    Some((l, was_explicit)) => {
                        if explicit && !*was_explicit {
                            l.on_delete = link.on_delete;
                            *was_explicit = true;
                        }
                    }
                    None => links.push((link, explicit)),
                }
            }
        }
        links.into_iter().map(|(l, _)| l).collect()
    }

    /// Foreign keys whose parent is `model`.
    pub fn links_to<'a>(&'a self, model: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |l| l.parent == model)
    }

    /// Foreign keys whose child is `model`.
    pub fn links_from<'a>(&'a self, model: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |l| l.child == model)
    }

    /// Checks every relation whose models exist: names, fk fields (present, stored, of the
    /// type of the key they hold), `SET NULL` only on a nullable field, and no foreign key
    /// with two different `ON DELETE`s.
    pub fn check_relations(&self) -> Result<(), PlanError> {
        for m in self.models.values() {
            for (i, r) in m.relations.iter().enumerate() {
                let full = format!("{}.{}", m.name, r.name.name);
                if m.relations[..i].iter().any(|o| o.name.name == r.name.name) {
                    return Err(err(
                        format!("model `{}` has two relations named `{}`", m.name, r.name.name),
                        r.span,
                    ));
                }
                if m.field(&r.name.name).is_some() {
                    return Err(err(
                        format!(
                            "relation `{full}` has the name of a field of `{}`: name it \
                             differently (e.g. `RELATION {} …` for field `{}`)",
                            m.name,
                            r.name.name.trim_end_matches("_id"),
                            r.name.name
                        ),
                        r.span,
                    ));
                }
                if r.kind == RelationKind::ManyToMany && r.on_delete.is_some() {
                    return Err(err(
                        format!(
                            "relation `{full}`: ON DELETE does not apply to MANY TO MANY \
                             (join records go with either side; a THROUGH model's own \
                             BELONGS TO relations say what happens)"
                        ),
                        r.span,
                    ));
                }
                if !self.models.contains_key(&r.target.name) {
                    continue;
                }
                if r.through.as_ref().is_some_and(|j| !self.models.contains_key(&j.name)) {
                    continue; // checked once the join model is defined
                }
                if r.kind == RelationKind::ManyToMany
                    && r.through.is_none()
                    && !self.models.contains_key(&join_model_name(&m.name, &r.name.name))
                {
                    continue; // the join model is made by the same statement
                }
                let rel = self.resolve(m, r)?;
                let (holder, fk, key_of) = match &rel.path {
                    RelPath::Fk { fk } => (m, fk, &rel.target),
                    RelPath::Reverse { fk, .. } => (&self.models[&rel.target], fk, &m.name),
                    RelPath::Through { .. } => continue, // checked through the join model's links
                };
                check_fk(&full, holder, fk, &self.models[key_of], r)?;
            }
        }
        for l in &self.links {
            let child = &self.models[&l.child];
            if l.on_delete == OnDelete::SetNull && child.field(&l.fk).is_some_and(|f| !f.nullable())
            {
                return Err(PlanError::new(
                    "kvm.invalid_relation",
                    format!(
                        "relation `{}` is ON DELETE SET NULL, but `{}.{}` is NOT NULL",
                        l.via, l.child, l.fk
                    ),
                ));
            }
        }
        for m in self.models.values() {
            for r in &m.relations {
                let Some(action) = r.on_delete else { continue };
                let Ok(rel) = self.resolve(m, r) else { continue };
                let (parent, child, fk) = match &rel.path {
                    RelPath::Fk { fk } => (&rel.target, &m.name, fk),
                    RelPath::Reverse { fk, .. } => (&m.name, &rel.target, fk),
                    RelPath::Through { .. } => continue,
                };
                if let Some(l) = self.links.iter().find(|l| {
                    &l.parent == parent && &l.child == child && &l.fk == fk && l.on_delete != action
                }) {
                    return Err(err(
                        format!(
                            "relations `{}` and `{}.{}` describe the same foreign key \
                             `{child}.{fk}` with different ON DELETE actions",
                            l.via, m.name, r.name.name
                        ),
                        r.span,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Indexes the foreign keys need and lack: `(model, field)` for every fk field (and
    /// join-model source field) without an index that starts with it.
    pub fn missing_fk_indexes(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut need = |model: &str, field: &str| {
            let Some(m) = self.models.get(model) else { return };
            if m.field(field).is_none()
                || m.indexes.iter().any(|i| i.fields.first().is_some_and(|f| f == field))
            {
                return;
            }
            let pair = (model.to_string(), field.to_string());
            if !out.contains(&pair) {
                out.push(pair);
            }
        };
        for l in &self.links {
            need(&l.child, &l.fk);
        }
        for m in self.models.values() {
            for r in &m.relations {
                if !self.models.contains_key(&r.target.name) {
                    continue;
                }
                match r.kind {
                    RelationKind::HasOne | RelationKind::HasMany => {
                        if let [f] = r.fields.as_slice() {
                            need(&r.target.name, &f.name);
                        }
                    }
                    RelationKind::ManyToMany => {
                        if let (Some(j), [s, _]) = (&r.through, r.fields.as_slice()) {
                            need(&j.name, &s.name);
                        }
                    }
                    RelationKind::BelongsTo => {}
                }
            }
        }
        out
    }

    /// Definitions of the join models that `MANY TO MANY` relations without `THROUGH` need
    /// and that do not exist yet (both sides must be defined). A model of that name that is
    /// not such a join model is an error.
    pub fn missing_join_models(&self) -> Result<Vec<DefineModel>, PlanError> {
        let mut out = Vec::new();
        for m in self.models.values() {
            for r in m.relations.iter().filter(|r| r.kind == RelationKind::ManyToMany) {
                if r.through.is_some() {
                    continue;
                }
                let Some(target) = self.models.get(&r.target.name) else { continue };
                let join = join_model_name(&m.name, &r.name.name);
                if let Some(existing) = self.models.get(&join) {
                    let is_join = existing.relations.iter().any(|x| {
                        x.kind == RelationKind::BelongsTo
                            && x.target.name == m.name
                            && x.fields.first().is_some_and(|f| f.name == JOIN_SOURCE)
                    });
                    if !is_join {
                        return Err(err(
                            format!(
                                "relation `{}.{}` needs a join model `{join}`, and a model of \
                                 that name exists: name a join model with THROUGH",
                                m.name, r.name.name
                            ),
                            r.span,
                        ));
                    }
                    continue;
                }
                out.push(join_def(&join, m, target));
            }
        }
        Ok(out)
    }
}

/// The foreign key of a `HAS …` relation written without one: the field of the target's one
/// `BELONGS TO` back to `model`.
fn back_fk(model: &Model, target: &Model) -> Option<String> {
    let back: Vec<&RelationDef> = target
        .relations
        .iter()
        .filter(|r| {
            r.kind == RelationKind::BelongsTo && r.target.name == model.name && r.fields.len() <= 1
        })
        .collect();
    match back.as_slice() {
        [r] => Some(belongs_fk(r)),
        _ => None,
    }
}

/// The foreign-key field of a `BELONGS TO`: the one written, or `<relation>_id`.
pub fn belongs_fk(r: &RelationDef) -> String {
    r.fields.first().map_or(format!("{}_id", r.name.name), |f| f.name.clone())
}

/// The fk field `holder.fk` must exist, be stored, and have the type of `key_of`'s key.
fn check_fk(
    full: &str,
    holder: &Model,
    fk: &str,
    key_of: &Model,
    r: &RelationDef,
) -> Result<(), PlanError> {
    let Some(f) = holder.field(fk) else {
        let mut e =
            err(format!("relation `{full}` names unknown field `{}.{fk}`", holder.name), r.span);
        if let Some(s) = crate::suggest::did_you_mean(fk, holder.fields.iter().map(|f| &f.name)) {
            e = e.help(format!("did you mean `{s}`?"));
        }
        return Err(e);
    };
    if f.virtual_expr.is_some() {
        return Err(err(
            format!("relation `{full}`: `{}.{fk}` is virtual and cannot hold a key", holder.name),
            r.span,
        ));
    }
    let pk = key_of.pk();
    if f.ty.name != pk.ty.name {
        return Err(err(
            format!(
                "relation `{full}`: `{}.{fk}` is {} but the key it holds, `{}.{}`, is {}",
                holder.name, f.ty, key_of.name, pk.name, pk.ty
            ),
            r.span,
        )
        .help(format!("declare `{fk} {}`", pk.ty)));
    }
    Ok(())
}

/// The join model of `model`'s `MANY TO MANY target` relation: a generated ULID key, the two
/// keys (unique as a pair, indexed both ways), and a `BELONGS TO` each side that cascades.
fn join_def(name: &str, model: &Model, target: &Model) -> DefineModel {
    let span = Span::default();
    let id = |n: &str| Ident { name: n.to_string(), span };
    let field = |n: &str, ty: &TypeName, pk: bool| {
        let kind = if pk { ModifierKind::PrimaryKey } else { ModifierKind::NotNull };
        ModelElement::Field(FieldDef {
            name: id(n),
            ty: FieldType { name: ty.clone(), optional: false, span },
            modifiers: vec![FieldModifier { kind, span }],
            span,
        })
    };
    let index = |n: &str, unique: bool, fields: &[&str]| {
        ModelElement::Index(IndexDef {
            name: Some(id(n)),
            unique,
            fields: fields.iter().map(|f| id(f)).collect(),
            span,
        })
    };
    let belongs = |n: &str, to: &str, fk: &str| {
        ModelElement::Relation(RelationDef {
            name: id(n),
            kind: RelationKind::BelongsTo,
            target: id(to),
            fields: vec![id(fk)],
            through: None,
            on_delete: Some(OnDelete::Cascade),
            span,
        })
    };
    DefineModel {
        name: id(name),
        if_not_exists: false,
        elements: vec![
            field("id", &TypeName::Ulid, true),
            field(JOIN_SOURCE, &model.pk().ty.name, false),
            field(JOIN_TARGET, &target.pk().ty.name, false),
            index("by_pair", true, &[JOIN_SOURCE, JOIN_TARGET]),
            index("by_target", false, &[JOIN_TARGET, JOIN_SOURCE]),
            belongs("source", &model.name, JOIN_SOURCE),
            belongs("target", &target.name, JOIN_TARGET),
        ],
        timestamps: false,
        span,
    }
}
