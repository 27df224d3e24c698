//! Schema statements: `DEFINE MODEL`, `ALTER MODEL`, `DROP MODEL`, with field types,
//! modifiers, indexes and relations.

use super::expr::{Expr, Ident};
use crate::span::Span;

/// `DEFINE MODEL [IF NOT EXISTS] name ( element, … ) [WITH TIMESTAMPS]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DefineModel {
    /// The model name.
    pub name: Ident,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// Fields, indexes and relations in the order written.
    pub elements: Vec<ModelElement>,
    /// `WITH TIMESTAMPS`: `created_at` (immutable) and `updated_at` are maintained.
    pub timestamps: bool,
    /// Where it is.
    pub span: Span,
}

/// One element of a model definition.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelElement {
    /// A field.
    Field(FieldDef),
    /// An index.
    Index(IndexDef),
    /// A relation.
    Relation(RelationDef),
}

/// `name TYPE modifier…`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDef {
    /// The field name.
    pub name: Ident,
    /// The field type.
    pub ty: FieldType,
    /// Modifiers in the order written.
    pub modifiers: Vec<FieldModifier>,
    /// Where it is.
    pub span: Span,
}

/// A field type; `optional` is written `T?` (or with a `NULL` modifier).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldType {
    /// The base type.
    pub name: TypeName,
    /// Whether the value may be null or absent.
    pub optional: bool,
    /// Where it is.
    pub span: Span,
}

/// The base types.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeName {
    /// `STRING`: UTF-8 text.
    String,
    /// `INT` (alias `INTEGER`): signed 64-bit.
    Int,
    /// `FLOAT`: 64-bit IEEE.
    Float,
    /// `BOOL` (alias `BOOLEAN`).
    Bool,
    /// `U64`: unsigned 64-bit; supports atomic `+=`, `-=`, min and max.
    U64,
    /// `TIMESTAMP`: an instant, UTC.
    Timestamp,
    /// `DATE`: a calendar date.
    Date,
    /// `BYTES`.
    Bytes,
    /// `ULID`: generated when not given on a primary key.
    Ulid,
    /// `UUID`.
    Uuid,
    /// `OBJECT`: a nested document.
    Object,
    /// `ENUM('a', 'b', …)`.
    Enum(Vec<EnumVariant>),
    /// `ARRAY<T>`.
    Array(Box<FieldType>),
}

/// One allowed value of an `ENUM` type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumVariant {
    /// The value.
    pub value: String,
    /// Where it is.
    pub span: Span,
}

/// A field modifier with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldModifier {
    /// What it is.
    pub kind: ModifierKind,
    /// Where it is.
    pub span: Span,
}

/// Field modifiers.
#[derive(Clone, Debug, PartialEq)]
pub enum ModifierKind {
    /// `PRIMARY KEY`
    PrimaryKey,
    /// `UNIQUE`
    Unique,
    /// `NOT NULL`
    NotNull,
    /// `DEFAULT expr`
    Default(Expr),
    /// `CHECK (expr)`
    Check(Expr),
    /// `LOWERCASE`: strings are lower-cased on write.
    Lowercase,
    /// `UPPERCASE`: strings are upper-cased on write.
    Uppercase,
    /// `TRIM`: surrounding whitespace is removed on write.
    Trim,
    /// `IMMUTABLE`: set on insert, never updated.
    Immutable,
    /// `ON UPDATE expr`: recomputed on every update.
    OnUpdate(Expr),
    /// `AS (expr) VIRTUAL` (computed on read) or `AS (expr) STORED` (computed on write).
    Computed {
        /// The expression.
        expr: Expr,
        /// `STORED` rather than `VIRTUAL`.
        stored: bool,
    },
}

/// `[UNIQUE] INDEX [name] (field, …)`.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexDef {
    /// The index name; generated from the fields when absent.
    pub name: Option<Ident>,
    /// `UNIQUE`.
    pub unique: bool,
    /// Indexed fields, in key order (several make a composite index).
    pub fields: Vec<Ident>,
    /// Where it is.
    pub span: Span,
}

/// `RELATION name kind target [(fields)] [THROUGH model] [ON DELETE action]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RelationDef {
    /// The relation name (used by `INCLUDE`, `EXISTS`, paths and `WATCH`).
    pub name: Ident,
    /// The cardinality.
    pub kind: RelationKind,
    /// The related model (may be defined later in the script).
    pub target: Ident,
    /// Foreign-key fields: on this model for `BELONGS TO`, on the target for `HAS …`.
    pub fields: Vec<Ident>,
    /// `THROUGH model`: the join model of a many-to-many relation.
    pub through: Option<Ident>,
    /// `ON DELETE …`.
    pub on_delete: Option<OnDelete>,
    /// Where it is.
    pub span: Span,
}

/// Relation cardinalities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelationKind {
    /// `BELONGS TO`
    BelongsTo,
    /// `HAS ONE`
    HasOne,
    /// `HAS MANY`
    HasMany,
    /// `MANY TO MANY`
    ManyToMany,
}

/// What deleting the referenced record does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnDelete {
    /// `CASCADE`: delete the dependent records too.
    Cascade,
    /// `RESTRICT`: refuse the delete while dependents exist.
    Restrict,
    /// `SET NULL`: clear the foreign key.
    SetNull,
}

/// `ALTER MODEL name action, …`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlterModel {
    /// The model.
    pub name: Ident,
    /// The changes, applied in order in one commit.
    pub actions: Vec<AlterAction>,
    /// Where it is.
    pub span: Span,
}

/// One change of an `ALTER MODEL`.
#[derive(Clone, Debug, PartialEq)]
pub enum AlterAction {
    /// `ADD FIELD def`
    AddField(FieldDef),
    /// `DROP FIELD name`
    DropField(Ident),
    /// `RENAME FIELD old TO new`
    RenameField {
        /// Current name.
        from: Ident,
        /// New name.
        to: Ident,
    },
    /// `ADD [UNIQUE] INDEX [name] (fields)`
    AddIndex(IndexDef),
    /// `DROP INDEX name`
    DropIndex(Ident),
    /// `ADD RELATION def`
    AddRelation(RelationDef),
    /// `DROP RELATION name`
    DropRelation(Ident),
}

/// `DROP MODEL [IF EXISTS] name` / `DROP QUEUE [IF EXISTS] name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drop {
    /// The model or queue.
    pub name: Ident,
    /// `IF EXISTS`.
    pub if_exists: bool,
    /// Where it is.
    pub span: Span,
}
