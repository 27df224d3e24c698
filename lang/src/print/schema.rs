//! Printing schema statements: `DEFINE MODEL` (one element per line), `ALTER MODEL`, drops.

use std::fmt::{self, Display, Formatter};

use super::{comma_sep, write_string};
use crate::ast::{
    AlterAction, AlterModel, DefineModel, Drop, FieldDef, FieldModifier, FieldType, IndexDef,
    ModelElement, ModifierKind, OnDelete, RelationDef, RelationKind, TypeName,
};
use crate::keyword::Keyword;

impl Display for DefineModel {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("DEFINE MODEL ")?;
        if self.if_not_exists {
            f.write_str("IF NOT EXISTS ")?;
        }
        writeln!(f, "{} (", self.name)?;
        for (i, element) in self.elements.iter().enumerate() {
            let sep = if i + 1 < self.elements.len() { "," } else { "" };
            writeln!(f, "  {element}{sep}")?;
        }
        f.write_str(")")?;
        if self.timestamps {
            f.write_str(" WITH TIMESTAMPS")?;
        }
        Ok(())
    }
}

impl Display for ModelElement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ModelElement::Field(field) => field.fmt(f),
            ModelElement::Index(index) => index.fmt(f),
            ModelElement::Relation(relation) => relation.fmt(f),
        }
    }
}

impl Display for FieldDef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // A field named like an element keyword is quoted so it cannot read as one.
        let head_keyword = matches!(
            Keyword::from_word(&self.name.name),
            Some(Keyword::Index | Keyword::Relation | Keyword::Unique)
        );
        if head_keyword {
            write!(f, "`{}` {}", self.name.name, self.ty)?;
        } else {
            write!(f, "{} {}", self.name, self.ty)?;
        }
        for modifier in &self.modifiers {
            write!(f, " {modifier}")?;
        }
        Ok(())
    }
}

impl Display for FieldType {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.name {
            TypeName::String => f.write_str("STRING")?,
            TypeName::Int => f.write_str("INT")?,
            TypeName::Float => f.write_str("FLOAT")?,
            TypeName::Bool => f.write_str("BOOL")?,
            TypeName::U64 => f.write_str("U64")?,
            TypeName::Timestamp => f.write_str("TIMESTAMP")?,
            TypeName::Date => f.write_str("DATE")?,
            TypeName::Bytes => f.write_str("BYTES")?,
            TypeName::Ulid => f.write_str("ULID")?,
            TypeName::Uuid => f.write_str("UUID")?,
            TypeName::Object => f.write_str("OBJECT")?,
            TypeName::Enum(variants) => {
                f.write_str("ENUM(")?;
                for (i, v) in variants.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_string(f, &v.value)?;
                }
                f.write_str(")")?;
            }
            TypeName::Array(inner) => write!(f, "ARRAY<{inner}>")?,
        }
        if self.optional {
            f.write_str("?")?;
        }
        Ok(())
    }
}

impl Display for FieldModifier {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ModifierKind::PrimaryKey => f.write_str("PRIMARY KEY"),
            ModifierKind::Unique => f.write_str("UNIQUE"),
            ModifierKind::NotNull => f.write_str("NOT NULL"),
            ModifierKind::Default(e) => write!(f, "DEFAULT {e}"),
            ModifierKind::Check(e) => write!(f, "CHECK ({e})"),
            ModifierKind::Lowercase => f.write_str("LOWERCASE"),
            ModifierKind::Uppercase => f.write_str("UPPERCASE"),
            ModifierKind::Trim => f.write_str("TRIM"),
            ModifierKind::Immutable => f.write_str("IMMUTABLE"),
            ModifierKind::OnUpdate(e) => write!(f, "ON UPDATE {e}"),
            ModifierKind::Computed { expr, stored } => {
                write!(f, "AS ({expr}) {}", if *stored { "STORED" } else { "VIRTUAL" })
            }
        }
    }
}

impl Display for IndexDef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.unique {
            f.write_str("UNIQUE ")?;
        }
        f.write_str("INDEX ")?;
        if let Some(name) = &self.name {
            write!(f, "{name} ")?;
        }
        f.write_str("(")?;
        comma_sep(f, &self.fields, ", ")?;
        f.write_str(")")
    }
}

impl Display for RelationDef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RelationKind::BelongsTo => "BELONGS TO",
            RelationKind::HasOne => "HAS ONE",
            RelationKind::HasMany => "HAS MANY",
            RelationKind::ManyToMany => "MANY TO MANY",
        };
        write!(f, "RELATION {} {kind} {}", self.name, self.target)?;
        if !self.fields.is_empty() {
            f.write_str(" (")?;
            comma_sep(f, &self.fields, ", ")?;
            f.write_str(")")?;
        }
        if let Some(through) = &self.through {
            write!(f, " THROUGH {through}")?;
        }
        if let Some(action) = self.on_delete {
            f.write_str(match action {
                OnDelete::Cascade => " ON DELETE CASCADE",
                OnDelete::Restrict => " ON DELETE RESTRICT",
                OnDelete::SetNull => " ON DELETE SET NULL",
            })?;
        }
        Ok(())
    }
}

impl Display for AlterModel {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "ALTER MODEL {} ", self.name)?;
        comma_sep(f, &self.actions, ", ")
    }
}

impl Display for AlterAction {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            AlterAction::AddField(field) => write!(f, "ADD FIELD {field}"),
            AlterAction::DropField(name) => write!(f, "DROP FIELD {name}"),
            AlterAction::RenameField { from, to } => write!(f, "RENAME FIELD {from} TO {to}"),
            AlterAction::AddIndex(index) => write!(f, "ADD {index}"),
            AlterAction::DropIndex(name) => write!(f, "DROP INDEX {name}"),
            AlterAction::AddRelation(relation) => write!(f, "ADD {relation}"),
            AlterAction::DropRelation(name) => write!(f, "DROP RELATION {name}"),
        }
    }
}

impl Display for Drop {
    /// The part after `DROP MODEL` / `DROP QUEUE`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.if_exists {
            f.write_str("IF EXISTS ")?;
        }
        self.name.fmt(f)
    }
}
