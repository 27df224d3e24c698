//! `kvm::Error`: the engine's one error type, grouped by what the caller can do. Every
//! variant has a stable [`Error::code`]; errors found in the statement text carry its span
//! and render with a caret ([`Error::render`]).

use std::fmt;

use kvm_lang::{Diagnostic, Span};
use kvm_planner::PlanError;

/// The result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong running KQL.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The text does not parse.
    Parse(Diagnostic),
    /// The statement names an unknown model or field, compares mismatched types, defines an
    /// invalid model, or uses a feature that is not supported yet (`kvm.unsupported`).
    Invalid { code: &'static str, message: String, span: Option<Span>, help: Option<String> },
    /// A record breaks its model's rules (type, NOT NULL, CHECK, ENUM, IMMUTABLE, unknown
    /// field). Nothing was written.
    /// `span`: where the offending value is in the statement text, when it is there (a
    /// literal record's field, a `SET` value, a parameter).
    Validation { model: String, field: String, value: String, message: String, span: Option<Span> },
    /// A unique index already holds the value. Nothing was written.
    UniqueViolation { model: String, index: String, value: String },
    /// A write would break a relation: a foreign key that points at no record
    /// (`kvm.dangling_reference`), or a delete that an `ON DELETE RESTRICT` refuses
    /// (`kvm.restrict`). The message names the relation. Nothing was written.
    Reference { code: &'static str, message: String },
    /// The model, index or field a DDL statement names exists already / does not exist.
    Catalog { code: &'static str, message: String },
    /// A parameter is missing or has the wrong shape.
    Param(String),
    /// A storage error; `storage.conflict` is retryable.
    Storage(kvm_storage::Error),
    /// A write kept conflicting with concurrent commits: an autocommit statement or a
    /// `Database::transaction` closure was tried `attempts` times, or an explicit
    /// transaction's `COMMIT` found data it read had changed. Nothing was written; running
    /// it again may succeed ([`Error::is_retryable`]).
    Conflict { attempts: usize },
    /// A statement's or transaction's batch is larger than one commit of this backend may be
    /// (etcd: 128 operations, 1.5 MiB). Nothing was written; split the work explicitly.
    TooLarge { backend: &'static str, ops: usize, bytes: usize, max_ops: usize, max_bytes: usize },
    /// A statement inside `BEGIN … COMMIT` failed, so the transaction was aborted: its
    /// writes are discarded and statements up to `COMMIT`/`ROLLBACK` are refused.
    TxnAborted(String),
    /// The database holds bytes this version cannot read.
    Corrupt(String),
    /// The database's catalog was written in a format newer than this version of KVM reads
    /// (`kvm.catalog_version`): a newer KVM wrote it. Nothing was read or written; open it
    /// with that version (or newer).
    CatalogFormat { found: u64, supported: u64 },
    /// `CHECK DATABASE` / `CHECK MODEL` found problems (`kvm.check_failed`): the report lists
    /// each (its kind, model, index and key). Nothing was changed; the message lists them.
    Check(CheckReport),
    /// [`crate::Interrupt::interrupt`] stopped the statement (the shell's Ctrl-C). Nothing
    /// was written.
    Interrupted,
    /// `query_row` found no row (`kvm.no_rows`); `query_opt` returns `None` instead.
    NoRows,
    /// A result column cannot be read as asked: no such column (`kvm.unknown_column`), or
    /// its value does not convert to the requested Rust type (`kvm.column_type`).
    Column { code: &'static str, column: String, message: String },
    /// A bug in KVM: an invariant of its own did not hold (`kvm.internal`). Please report it.
    Internal(String),
}

impl Error {
    /// A stable, machine-readable code (`kvm.parse`, `kvm.unknown_field`, `kvm.validation`,
    /// `kvm.unique_violation`, `storage.conflict`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Parse(_) => "kvm.parse",
            Error::Invalid { code, .. }
            | Error::Catalog { code, .. }
            | Error::Reference { code, .. } => code,
            Error::Validation { .. } => "kvm.validation",
            Error::UniqueViolation { .. } => "kvm.unique_violation",
            Error::Param(_) => "kvm.param",
            Error::Storage(e) => e.code(),
            Error::Corrupt(_) => "kvm.corrupt",
            Error::CatalogFormat { .. } => "kvm.catalog_version",
            Error::Check(_) => "kvm.check_failed",
            Error::Conflict { .. } => "kvm.conflict",
            Error::TxnAborted(_) => "kvm.txn_aborted",
            Error::TooLarge { .. } => "kvm.batch_too_large",
            Error::Interrupted => "kvm.interrupted",
            Error::NoRows => "kvm.no_rows",
            Error::Column { code, .. } => code,
            Error::Internal(_) => "kvm.internal",
        }
    }

    /// True when running the statement again may succeed (a write conflict that outlasted
    /// the automatic retries).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict { .. })
            || matches!(self, Error::Storage(e) if e.is_retryable())
    }

    /// The span in the statement text the error points at, if any.
    pub fn span(&self) -> Option<Span> {
        match self {
            Error::Parse(d) => Some(d.span),
            Error::Invalid { span, .. } | Error::Validation { span, .. } => *span,
            _ => None,
        }
    }

    /// Renders the error against the text it came from: with `file:line:col`, the source
    /// line and a caret when it has a span, else `error[code]: message`.
    pub fn render(&self, file: &str, source: &str) -> String {
        match self {
            Error::Parse(d) => d.render(file, source),
            Error::Invalid { message, span: Some(span), help, code } => {
                let mut d = Diagnostic::new(*span, format!("{message} [{code}]"));
                if let Some(h) = help {
                    d = d.with_help(h.clone());
                }
                d.render(file, source)
            }
            Error::Validation { span: Some(span), .. } => {
                Diagnostic::new(*span, format!("{self} [{}]", self.code())).render(file, source)
            }
            other => format!("error: {other} [{}]", other.code()),
        }
    }

    /// [`Error::render`] for an error raised while running the statement at `statement`:
    /// an error without a span of its own points at the statement, so a script's reader
    /// still gets `file:line:col`, the source line and a caret.
    pub fn render_at(&self, file: &str, source: &str, statement: Span) -> String {
        match self.span() {
            Some(_) => self.render(file, source),
            None => {
                Diagnostic::new(statement, format!("{self} [{}]", self.code())).render(file, source)
            }
        }
    }

    pub(crate) fn validation(
        model: &str,
        field: &str,
        value: impl Shown,
        message: impl Into<String>,
    ) -> Error {
        Error::Validation {
            model: model.to_string(),
            field: field.to_string(),
            value: value.shown(),
            message: message.into(),
            span: None,
        }
    }

    /// A validation error pointed at `span` (unless it points somewhere already); other
    /// errors unchanged.
    pub(crate) fn at(self, at: Span) -> Error {
        match self {
            Error::Validation { model, field, value, message, span: None } if !at.is_empty() => {
                Error::Validation { model, field, value, message, span: Some(at) }
            }
            other => other,
        }
    }

    pub(crate) fn unsupported(what: &str, span: Span) -> Error {
        PlanError::unsupported(what, span).into()
    }

    pub(crate) fn catalog(code: &'static str, message: impl Into<String>) -> Error {
        Error::Catalog { code, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse(d) => write!(f, "{}", d.message),
            Error::Invalid { message, help, .. } => {
                f.write_str(message)?;
                if let Some(h) = help {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            Error::Validation { model, field, value, message, .. } => {
                write!(f, "{model}.{field}: {message} (value: {value})")
            }
            Error::UniqueViolation { model, index, value } => {
                write!(f, "unique index `{model}.{index}` already holds {value}")
            }
            Error::Catalog { message, .. } | Error::Reference { message, .. } => {
                f.write_str(message)
            }
            Error::Param(m) => write!(f, "parameter error: {m}"),
            Error::Storage(e) => write!(f, "{e}"),
            Error::Corrupt(m) => write!(f, "corrupt data: {m}"),
            Error::CatalogFormat { found, supported } => write!(
                f,
                "the database's catalog is in format {found}, and this version of KVM reads formats up to {supported}: it was written by a newer KVM; open it with that version"
            ),
            Error::Conflict { attempts } => write!(
                f,
                "write conflict: data this statement or transaction read was changed by a concurrent commit ({attempts} attempt{}); nothing was written, retry",
                if *attempts == 1 { "" } else { "s" }
            ),
            Error::TxnAborted(m) => write!(f, "transaction aborted: {m}"),
            Error::Check(report) => {
                let n = report.problems.len();
                write!(f, "CHECK found {n} problem{}:", if n == 1 { "" } else { "s" })?;
                for p in &report.problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
            Error::Interrupted => f.write_str("interrupted; nothing was written"),
            Error::NoRows => f.write_str("the query returned no rows"),
            Error::Column { column, message, .. } => write!(f, "column `{column}`: {message}"),
            Error::Internal(m) => write!(f, "internal error (a bug in KVM, please report it): {m}"),
            Error::TooLarge { backend, ops, bytes, max_ops, max_bytes } => write!(
                f,
                "the commit would hold {ops} operations and {bytes} bytes; the {backend} backend allows at most {max_ops} operations and {max_bytes} bytes per commit; nothing was written (split the work into smaller statements or transactions)"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// A value as an error message shows it: in KQL form (`'text'`, `5`, `'2026-01-01T00:00:00Z'`),
/// never the codec's debug spellings (`5u64`, `timestamp(…)`).
pub(crate) trait Shown {
    fn shown(&self) -> String;
}

impl Shown for kvm_storage::Value {
    fn shown(&self) -> String {
        crate::values::kql(self)
    }
}

impl Shown for &kvm_storage::Value {
    fn shown(&self) -> String {
        crate::values::kql(self)
    }
}

impl Shown for &str {
    fn shown(&self) -> String {
        self.to_string()
    }
}

impl Shown for String {
    fn shown(&self) -> String {
        self.clone()
    }
}

/// What `CHECK DATABASE` / `CHECK MODEL` found. With any [`CheckReport::problems`] the
/// statement fails with [`Error::Check`] (`kvm.check_failed`), so a script or CI job that runs
/// it stops (kvmsh exits non-zero); a clean check returns a one-line `ok: …` message.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// How many models were checked.
    pub models: usize,
    /// How many records were read.
    pub records: u64,
    /// The inconsistencies found.
    pub problems: Vec<CheckProblem>,
    /// Indexes still being built, as `(model, index)`: not used by queries and not checked.
    /// Not a problem: the backfill may be running (in this process, resumed on open, or in
    /// another), and opening the database restarts an interrupted one.
    pub building: Vec<(String, String)>,
}

/// One inconsistency [`CheckReport`] lists.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckProblem {
    pub kind: CheckProblemKind,
    /// The model whose data is inconsistent.
    pub model: String,
    /// The index involved (for a dangling reference: the relation, `model.relation`).
    pub index: Option<String>,
    /// The key involved, printed as a tuple (`['users', '__idx', 'by_age', 31, 1]`).
    pub key: Option<String>,
    /// What is wrong, in words, naming the model, index and key.
    pub message: String,
}

/// The kinds of [`CheckProblem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckProblemKind {
    /// An index entry with no record holding its values (the record is gone, or changed,
    /// or a unique entry names another record).
    DanglingEntry,
    /// A record without the entry one of its model's indexes should hold for it.
    MissingEntry,
    /// A record whose primary key cannot be a key (null, or too long).
    BadPrimaryKey,
    /// A foreign key that points at no record.
    DanglingReference,
}

impl CheckProblemKind {
    /// A stable name: `dangling_entry`, `missing_entry`, `bad_primary_key`,
    /// `dangling_reference`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckProblemKind::DanglingEntry => "dangling_entry",
            CheckProblemKind::MissingEntry => "missing_entry",
            CheckProblemKind::BadPrimaryKey => "bad_primary_key",
            CheckProblemKind::DanglingReference => "dangling_reference",
        }
    }
}

impl fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.kind.as_str(), self.message)
    }
}

impl CheckReport {
    /// The `ok: …` line of a clean check, and a note per index still building.
    pub fn summary(&self, foreign_keys: bool) -> String {
        let fks = if foreign_keys { ", every foreign key points at a record" } else { "" };
        let mut out =
            format!("ok: {} model(s), every index entry matches its record{fks}", self.models);
        for (model, index) in &self.building {
            out.push_str(&format!(
                "\nnote: index `{model}.{index}` is still building (not used by queries, not \
                 checked): its backfill was interrupted, or is running; opening the database or \
                 the next ALTER MODEL {model} restarts it"
            ));
        }
        out
    }
}

impl From<kvm_storage::Error> for Error {
    fn from(e: kvm_storage::Error) -> Self {
        Error::Storage(e)
    }
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        Error::Invalid { code: e.code, message: e.message, span: e.span, help: e.help }
    }
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::Parse(d)
    }
}
