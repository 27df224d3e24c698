//! Printing data statements: `SELECT` (clauses in canonical order), `INSERT`, `UPSERT`,
//! `UPDATE`, `DELETE`, `WATCH`, `RELATE`.

use std::fmt::{self, Display, Formatter};

use super::comma_sep;
use crate::ast::{
    AssignOp, Assignment, Delete, Expire, Expr, Include, Insert, InsertSource, OrderBy, Projection,
    Relate, Select, SelectItem, Update, Upsert, Watch, WatchTarget,
};

impl Display for Expire {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expire::In(d) => write!(f, "EXPIRE IN {d}"),
            Expire::At(e) => write!(f, "EXPIRE AT {e}"),
            Expire::Never => f.write_str("EXPIRE NEVER"),
        }
    }
}

impl Display for Select {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        write!(f, "SELECT {distinct}{} FROM {}", self.projection, self.from)?;
        if let Some(filter) = &self.filter {
            write!(f, " WHERE {filter}")?;
        }
        if !self.group_by.is_empty() {
            f.write_str(" GROUP BY ")?;
            comma_sep(f, &self.group_by, ", ")?;
        }
        if let Some(having) = &self.having {
            write!(f, " HAVING {having}")?;
        }
        write_clauses(f, &None, &self.order_by, &self.limit, &self.offset)?;
        if let Some(after) = &self.after {
            write!(f, " AFTER {after}")?;
        }
        if !self.include.is_empty() {
            f.write_str(" INCLUDE ")?;
            comma_sep(f, &self.include, ", ")?;
        }
        Ok(())
    }
}

fn write_clauses(
    f: &mut Formatter<'_>,
    filter: &Option<Expr>,
    order_by: &[OrderBy],
    limit: &Option<Expr>,
    offset: &Option<Expr>,
) -> fmt::Result {
    if let Some(filter) = filter {
        write!(f, " WHERE {filter}")?;
    }
    if !order_by.is_empty() {
        f.write_str(" ORDER BY ")?;
        comma_sep(f, order_by, ", ")?;
    }
    if let Some(limit) = limit {
        write!(f, " LIMIT {limit}")?;
    }
    if let Some(offset) = offset {
        write!(f, " OFFSET {offset}")?;
    }
    Ok(())
}

impl Display for Projection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Projection::All => f.write_str("*"),
            Projection::Items(items) => comma_sep(f, items, ", "),
        }
    }
}

impl Display for SelectItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)?;
        if let Some(alias) = &self.alias {
            write!(f, " AS {alias}")?;
        }
        Ok(())
    }
}

impl Display for OrderBy {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)?;
        if self.descending {
            f.write_str(" DESC")?;
        }
        Ok(())
    }
}

impl Display for Include {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.relation.fmt(f)?;
        let has_options = self.filter.is_some()
            || !self.order_by.is_empty()
            || self.limit.is_some()
            || self.offset.is_some()
            || !self.include.is_empty();
        if !has_options {
            return Ok(());
        }
        // `write_clauses` writes a leading space before each clause; drop the first one.
        let mut inner = String::new();
        {
            use std::fmt::Write as _;
            let _ = write!(inner, "{}", ClausesOf(self));
        }
        write!(f, " ({})", inner.trim_start())
    }
}

struct ClausesOf<'a>(&'a Include);

impl Display for ClausesOf<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let i = self.0;
        write_clauses(f, &i.filter, &i.order_by, &i.limit, &i.offset)?;
        if !i.include.is_empty() {
            f.write_str(" INCLUDE ")?;
            comma_sep(f, &i.include, ", ")?;
        }
        Ok(())
    }
}

fn write_tail(
    f: &mut Formatter<'_>,
    expire: &Option<Expire>,
    returning: &Option<Projection>,
) -> fmt::Result {
    if let Some(expire) = expire {
        write!(f, " {expire}")?;
    }
    if let Some(returning) = returning {
        write!(f, " RETURNING {returning}")?;
    }
    Ok(())
}

impl Display for Insert {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "INSERT INTO {} ", self.model)?;
        match &self.source {
            InsertSource::One(value) => value.fmt(f)?,
            InsertSource::Batch(values) => {
                f.write_str("[")?;
                comma_sep(f, values, ", ")?;
                f.write_str("]")?;
            }
        }
        write_tail(f, &self.expire, &self.returning)
    }
}

impl Display for Upsert {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "UPSERT INTO {} {}", self.model, self.value)?;
        if !self.on.is_empty() {
            f.write_str(" ON (")?;
            comma_sep(f, &self.on, ", ")?;
            f.write_str(")")?;
        }
        if let Some(update) = &self.update {
            f.write_str(" DO UPDATE SET ")?;
            comma_sep(f, update, ", ")?;
        }
        write_tail(f, &self.expire, &self.returning)
    }
}

impl Display for Update {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "UPDATE {}", self.model)?;
        if !self.assignments.is_empty() {
            f.write_str(" SET ")?;
            comma_sep(f, &self.assignments, ", ")?;
        }
        if let Some(filter) = &self.filter {
            write!(f, " WHERE {filter}")?;
        }
        write_tail(f, &self.expire, &self.returning)
    }
}

impl Display for Assignment {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_assignment(f, &self.target, self.op, &self.value)
    }
}

/// `target op value` as KQL writes it (`n += 1`, `m = MAX(m, v)`): for the AST and for a
/// plan's bound assignments alike.
pub fn write_assignment(
    f: &mut Formatter<'_>,
    target: &dyn Display,
    op: AssignOp,
    value: &dyn Display,
) -> fmt::Result {
    let (t, v) = (target, value);
    match op {
        AssignOp::Set => write!(f, "{t} = {v}"),
        AssignOp::Add => write!(f, "{t} += {v}"),
        AssignOp::Sub => write!(f, "{t} -= {v}"),
        AssignOp::Min => write!(f, "{t} = MIN({t}, {v})"),
        AssignOp::Max => write!(f, "{t} = MAX({t}, {v})"),
    }
}

impl Display for Delete {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "DELETE FROM {}", self.model)?;
        if let Some(filter) = &self.filter {
            write!(f, " WHERE {filter}")?;
        }
        write_tail(f, &None, &self.returning)
    }
}

impl Display for Watch {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("WATCH ")?;
        match &self.target {
            WatchTarget::Query(select) => select.fmt(f),
            WatchTarget::Model { model, relation, filter } => {
                model.fmt(f)?;
                if let Some(relation) = relation {
                    write!(f, ".{relation}")?;
                }
                if let Some(filter) = filter {
                    write!(f, " WHERE {filter}")?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Relate {
    /// The part after `RELATE` / `UNRELATE`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} TO {}:{}", self.from.model, self.from.key, self.to.model, self.to.key)?;
        if let Some(via) = &self.via {
            write!(f, " VIA {via}")?;
        }
        Ok(())
    }
}
