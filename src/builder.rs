//! The chainable query builder (`db.model("users")?.filter("age").gte(18)…`): builds the
//! same statements KQL text does, so both plan and EXPLAIN alike.
//!
//! A [`Query`] is a `SELECT` under construction. Each call adds to the same
//! `Select` AST the parser would produce from the equivalent text:
//! conditions are `AND`-ed in call order, values are bound as positional parameters (`$1`,
//! `$2`, … in call order, never spliced into text), and `LIMIT`/`OFFSET` are integer
//! literals. So `builder.explain()` prints exactly what `EXPLAIN` prints for the text
//! [`Query::to_kql`] returns, and the planner picks the same access path for both.
//!
//! ```
//! use kvm::builder::Order;
//! use kvm::Database;
//!
//! let db = Database::memory()?;
//! db.execute("DEFINE MODEL users (id INT PRIMARY KEY, status STRING NOT NULL, age INT NOT NULL, \
//!             INDEX by_status_age (status, age))", ())?;
//! db.execute("INSERT INTO users [{id: 1, status: 'active', age: 31}, \
//!             {id: 2, status: 'active', age: 17}, {id: 3, status: 'banned', age: 40}]", ())?;
//!
//! let q = db.model("users")?.filter("status").eq("active").filter("age").gte(18)
//!     .order_by("age", Order::Desc).limit(10);
//! assert_eq!(q.to_kql(), "SELECT * FROM users WHERE status = $1 AND age >= $2 ORDER BY age DESC LIMIT 10");
//! assert!(q.explain()?.contains("IndexScan users.by_status_age range"));
//! let rows = q.all()?;
//! assert_eq!(rows.rows.len(), 1);
//! assert_eq!(db.model("users")?.filter("age").lt(100).count()?, 3);
//!
//! // Unknown names are the engine's errors, with a suggestion.
//! let err = db.model("user").err().expect("no such model");
//! assert_eq!(err.to_string(), "unknown model `user` (did you mean `users`?)");
//! # Ok::<(), kvm::Error>(())
//! ```
//!
//! `include("posts")` adds an `INCLUDE` clause (dotted for nested relations,
//! `include("comments.author")`): each row gets its related records, loaded in batches.

use kvm_lang::ast::{
    BinaryOp, CallArgs, Explain, Ident, InRhs, Include, Literal, OrderBy, Param, Path, Projection,
    Select, SelectItem,
};
use kvm_lang::{Expr, ExprKind, Span, Statement};
use kvm_storage::Value;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::output::{Output, Rows};
use crate::params::{IntoValue, Params};
use crate::Database;

/// Sort direction for [`Query::order_by`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending (`ASC`, the default in KQL).
    Asc,
    /// Descending (`DESC`).
    Desc,
}

/// `INSERT INTO model [$1, $2, …, $n]`: one statement inserting `n` records bound as
/// positional parameters — what [`Database::insert_many`] and kvmsh's `.import` run; the
/// model's name is an identifier in the AST, never text to parse.
pub fn insert_records(model: &str, n: usize) -> Statement {
    let slots = (1..=n)
        .map(|i| {
            Expr::new(ExprKind::Param(Param::Positional(u32::try_from(i).unwrap_or(u32::MAX))))
        })
        .collect();
    Statement::Insert(kvm_lang::ast::Insert {
        model: Ident { name: model.to_owned(), span: Span::default() },
        source: kvm_lang::ast::InsertSource::Batch(slots),
        expire: None,
        returning: None,
        span: Span::default(),
    })
}

/// Records per statement in [`Database::insert_many`].
pub const INSERT_CHUNK: usize = 1_000;

impl Database {
    /// Inserts `records` (objects, as `INSERT` takes them) into `model`, all or none, reading
    /// them as it goes: they are bound [`INSERT_CHUNK`] at a time into statements of one
    /// commit. Returns how many were inserted; a refused record fails the whole call and
    /// nothing is written. On LMDB and memory the statements write straight into one
    /// storage write transaction (a direct write: no write buffer, no conflict, other
    /// writers wait for the call): the records inserted are kept in their compact stored
    /// form until the commit, so that the write can run again if the file's map must grow
    /// on the way. A backend without direct writes runs them in one transaction instead,
    /// whose buffered writes are held until its commit (about 1.8 KB a record of five fields
    /// and two indexes); its records cannot be read twice, so a conflict with another writer
    /// is not retried there: it is returned (`kvm.conflict`, retryable) and the caller calls
    /// again. For loads that need not be atomic, commit a chunk at a time instead (what
    /// kvmsh's `.import` does).
    ///
    /// ```
    /// use kvm::{Database, Value};
    ///
    /// let db = Database::memory()?;
    /// db.execute("DEFINE MODEL hits (id INT PRIMARY KEY, path STRING NOT NULL)", ())?;
    /// let records = (0..2500).map(|i| {
    ///     Value::Object([("id".to_string(), Value::Int(i)), ("path".to_string(), Value::String("/".into()))].into())
    /// });
    /// assert_eq!(db.insert_many("hits", records)?, 2500);
    /// assert_eq!(db.model("hits")?.count()?, 2500);
    /// # Ok::<(), kvm::Error>(())
    /// ```
    pub fn insert_many(
        &self,
        model: &str,
        records: impl IntoIterator<Item = Value>,
    ) -> Result<usize> {
        let mut records = records.into_iter();
        // One direct write where the backend has it (no write buffer: the records pulled
        // are kept, to run again if the map must grow); else, or when a statement needs the
        // ordinary road, one transaction.
        let mut pulled = Vec::new();
        let host = self.host();
        if let Some(n) =
            crate::exec::run_direct_chunks(host, model, &mut records, INSERT_CHUNK, &mut pulled)?
        {
            return Ok(n);
        }
        let mut kept = Vec::new();
        for chunk in &pulled {
            kept.extend(crate::exec::decode_chunk(chunk)?);
        }
        drop(pulled);
        let mut records = kept.into_iter().chain(records);
        let mut attempts = 0;
        let outcome = self.try_transaction(|tx| {
            attempts += 1;
            if attempts > 1 {
                return Err(crate::TxError::Abort(Error::Conflict { attempts: 1 }));
            }
            let mut inserted = 0;
            loop {
                let chunk: Vec<Value> = records.by_ref().take(INSERT_CHUNK).collect();
                if chunk.is_empty() {
                    return Ok(inserted);
                }
                let n = chunk.len();
                let params = Params { positional: chunk, ..Params::default() };
                tx.run_statement(&insert_records(model, n), &params)?;
                inserted += n;
            }
        });
        outcome.map_err(|e| match e {
            crate::TxError::Abort(e) | crate::TxError::Kvm(e) => e,
        })
    }

    /// Loads relation `relation` of the `model` record whose primary key is `key` (lazy
    /// loading of a record fetched earlier): an object or null for a single-record relation,
    /// an array otherwise; `None` when no such record exists.
    pub fn populate(
        &self,
        model: &str,
        key: impl IntoValue,
        relation: &str,
    ) -> Result<Option<Value>> {
        let catalog = self.catalog()?;
        let pk = catalog.model(model, Span::default())?.pk().name.clone();
        let rows = self.model(model)?.filter(&pk).eq(key).select(&[&pk]).include(relation).all()?;
        let col = rows.columns.iter().position(|c| c == relation);
        Ok(rows.rows.into_iter().next().and_then(|mut r| col.map(|i| r.swap_remove(i))))
    }

    /// Starts a query on `model`: a `SELECT * FROM model` to refine with
    /// [`Query::filter`], [`Query::order_by`], [`Query::limit`], … An unknown model is the
    /// engine's `kvm.unknown_model` error, with a "did you mean" when a name is close.
    pub fn model(&self, model: &str) -> Result<Query> {
        let catalog = self.catalog()?;
        let found = catalog.model(model, Span::default())?;
        Ok(Query {
            db: self.clone(),
            select: Select {
                distinct: false,
                projection: Projection::All,
                from: Ident::new(found.name.clone()),
                filter: None,
                group_by: Vec::new(),
                having: None,
                order_by: Vec::new(),
                limit: None,
                offset: None,
                after: None,
                include: Vec::new(),
                span: Span::default(),
            },
            params: Vec::new(),
        })
    }
}

/// A `SELECT` being built; see the [module docs](self). Cheap to clone, so one base query can
/// be refined several ways.
#[derive(Clone)]
pub struct Query {
    db: Database,
    select: Select,
    params: Vec<Value>,
}

/// A condition waiting for its operator: `query.filter("age")` then `.gte(18)`.
#[must_use = "a filter does nothing until an operator such as `.eq(v)` completes it"]
pub struct Filter {
    query: Query,
    field: Path,
}

fn path(field: &str) -> Path {
    Path { segments: field.split('.').map(Ident::new).collect(), span: Span::default() }
}

fn path_expr(p: Path) -> Expr {
    Expr::new(ExprKind::Path(p))
}

fn int(n: u64) -> Expr {
    Expr::new(ExprKind::Literal(Literal::Int(i64::try_from(n).unwrap_or(i64::MAX))))
}

impl Filter {
    fn binary(self, op: BinaryOp, value: impl IntoValue) -> Query {
        let Filter { mut query, field } = self;
        let rhs = query.bind(value.into_value());
        query.and(ExprKind::Binary { op, lhs: Box::new(path_expr(field)), rhs: Box::new(rhs) })
    }

    /// `field = value`.
    pub fn eq(self, value: impl IntoValue) -> Query {
        self.binary(BinaryOp::Eq, value)
    }
    /// `field != value`.
    pub fn ne(self, value: impl IntoValue) -> Query {
        self.binary(BinaryOp::NotEq, value)
    }
    /// `field < value`.
    pub fn lt(self, value: impl IntoValue) -> Query {
        self.binary(BinaryOp::Lt, value)
    }
    /// `field <= value`.
    pub fn lte(self, value: impl IntoValue) -> Query {
        self.binary(BinaryOp::LtEq, value)
    }
    /// `field > value`.
    pub fn gt(self, value: impl IntoValue) -> Query {
        self.binary(BinaryOp::Gt, value)
    }
    /// `field >= value`.
    pub fn gte(self, value: impl IntoValue) -> Query {
        self.binary(BinaryOp::GtEq, value)
    }
    /// `field LIKE pattern` (`%` any run, `_` one character).
    pub fn like(self, pattern: impl IntoValue) -> Query {
        self.binary(BinaryOp::Like, pattern)
    }

    /// `field IN ($i, $j, …)`, one parameter per value (a primary key `IN` is a multi-get).
    /// An empty list matches nothing.
    pub fn in_<V: IntoValue>(self, values: impl IntoIterator<Item = V>) -> Query {
        let Filter { mut query, field } = self;
        let list: Vec<Expr> = values.into_iter().map(|v| query.bind(v.into_value())).collect();
        if list.is_empty() {
            // `IN ()` does not parse; an empty list matches no record.
            return query.and(ExprKind::Literal(Literal::Bool(false)));
        }
        query.and(ExprKind::In {
            expr: Box::new(path_expr(field)),
            rhs: InRhs::List(list),
            negated: false,
        })
    }

    /// `field BETWEEN low AND high` (both ends included).
    pub fn between(self, low: impl IntoValue, high: impl IntoValue) -> Query {
        let Filter { mut query, field } = self;
        let low = query.bind(low.into_value());
        let high = query.bind(high.into_value());
        query.and(ExprKind::Between {
            expr: Box::new(path_expr(field)),
            low: Box::new(low),
            high: Box::new(high),
            negated: false,
        })
    }

    /// `field IS NULL`.
    pub fn is_null(self) -> Query {
        let Filter { query, field } = self;
        query.and(ExprKind::IsNull { expr: Box::new(path_expr(field)), negated: false })
    }

    /// `field IS NOT NULL`.
    pub fn is_not_null(self) -> Query {
        let Filter { query, field } = self;
        query.and(ExprKind::IsNull { expr: Box::new(path_expr(field)), negated: true })
    }
}

impl Query {
    /// Starts a condition on `field` (dotted for a nested object field); complete it with
    /// an operator: `.filter("age").gte(18)`. Conditions are `AND`-ed in call order. An
    /// unknown field is reported when the query runs, as the engine reports it for text.
    pub fn filter(self, field: &str) -> Filter {
        Filter { query: self, field: path(field) }
    }

    /// Adds an `ORDER BY` key (call again for further keys).
    pub fn order_by(mut self, field: &str, order: Order) -> Query {
        self.select
            .order_by
            .push(OrderBy { expr: path_expr(path(field)), descending: order == Order::Desc });
        self
    }

    /// `LIMIT n`.
    pub fn limit(mut self, n: u64) -> Query {
        self.select.limit = Some(int(n));
        self
    }

    /// `OFFSET n`.
    pub fn offset(mut self, n: u64) -> Query {
        self.select.offset = Some(int(n));
        self
    }

    /// Returns only these fields, in this order (default: every field, `SELECT *`).
    pub fn select(mut self, fields: &[&str]) -> Query {
        self.select.projection = Projection::Items(
            fields.iter().map(|f| SelectItem { expr: path_expr(path(f)), alias: None }).collect(),
        );
        self
    }

    /// `INCLUDE relation`: load related records with each row, as a column named after the
    /// relation (an object or null for a single-record relation, an array otherwise). A
    /// dotted path (`"comments.author"`) nests. Loaded one batched read per relation level.
    pub fn include(mut self, relation: &str) -> Query {
        self.select.include.push(Include {
            relation: path(relation),
            filter: None,
            order_by: Vec::new(),
            limit: None,
            offset: None,
            include: Vec::new(),
            span: Span::default(),
        });
        self
    }

    /// Runs the query and returns its rows.
    pub fn all(&self) -> Result<Rows> {
        let stmt = Statement::Select(self.select.clone());
        rows(self.db.run_statement(&stmt, &self.params())?)
    }

    /// Runs the query and deserializes each row (an object of its columns) into `T`.
    pub fn all_as<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        crate::json::rows_as(&self.all()?)
    }

    /// The first row (the query under `LIMIT 1`), if any, aligned with the columns
    /// [`Query::all`] would return.
    pub fn first(&self) -> Result<Option<Vec<Value>>> {
        Ok(self.clone().limit(1).all()?.rows.into_iter().next())
    }

    /// [`Query::first`], deserialized into `T`.
    pub fn first_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        Ok(self.clone().limit(1).all_as()?.into_iter().next())
    }

    /// `SELECT COUNT(*)` under the same conditions (answered from index entries alone when
    /// an index decides every condition): how many records match. Ordering, the projection,
    /// `LIMIT` and `OFFSET` do not change a count and are dropped.
    pub fn count(&self) -> Result<u64> {
        let mut select = self.select.clone();
        select.order_by.clear();
        select.limit = None;
        select.offset = None;
        select.projection = Projection::Items(vec![SelectItem {
            expr: Expr::new(ExprKind::Call { name: Ident::new("COUNT"), args: CallArgs::Star }),
            alias: None,
        }]);
        let rows = rows(self.db.run_statement(&Statement::Select(select), &self.params())?)?;
        match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Int(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
            Some(Value::Counter(n)) => Ok(*n),
            other => Err(Error::Internal(format!("COUNT(*) returned {other:?}"))),
        }
    }

    /// The plan, exactly as `EXPLAIN` prints it for [`Query::to_kql`]'s text.
    pub fn explain(&self) -> Result<String> {
        let stmt = Statement::Explain(Explain {
            statement: Box::new(Statement::Select(self.select.clone())),
            span: Span::default(),
        });
        match self.db.run_statement(&stmt, &self.params())? {
            Output::Plan(p) => Ok(p),
            other => Err(Error::Internal(format!("EXPLAIN returned {other:?}"))),
        }
    }

    /// The query as canonical KQL text, parameters as `$1`, `$2`, … (their values are
    /// [`Query::params`]).
    pub fn to_kql(&self) -> String {
        Statement::Select(self.select.clone()).to_string()
    }

    /// The statement's AST, for [`Database::run_statement`] or [`Database::prepare`]-like use.
    pub fn statement(&self) -> Statement {
        Statement::Select(self.select.clone())
    }

    /// The values bound to `$1`, `$2`, … in order.
    pub fn params(&self) -> Params {
        Params { positional: self.params.clone(), ..Params::default() }
    }

    /// Binds `value` to the next positional parameter and returns `$n`.
    fn bind(&mut self, value: Value) -> Expr {
        self.params.push(value);
        let n = u32::try_from(self.params.len()).unwrap_or(u32::MAX);
        Expr::new(ExprKind::Param(Param::Positional(n)))
    }

    /// `AND`s a condition onto the filter (left-associative, as the parser builds
    /// `a AND b AND c`).
    fn and(mut self, cond: ExprKind) -> Query {
        let cond = Expr::new(cond);
        self.select.filter = Some(match self.select.filter.take() {
            None => cond,
            Some(prev) => Expr::new(ExprKind::Binary {
                op: BinaryOp::And,
                lhs: Box::new(prev),
                rhs: Box::new(cond),
            }),
        });
        self
    }
}

fn rows(out: Output) -> Result<Rows> {
    match out {
        Output::Rows(r) => Ok(r),
        other => Err(Error::Param(format!("the statement returned {other:?}, not rows"))),
    }
}
