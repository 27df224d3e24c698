//! Streaming results ([`crate::Database::query_iter`]): a `SELECT` runs on its own thread
//! against its own snapshot and hands rows over a bounded channel, so the first row
//! arrives as soon as it is read and memory holds a few batches, not the result. Dropping
//! the stream stops the query at its next row (and closes its snapshot).
//!
//! A thread, rather than an iterator borrowing the read transaction: the snapshot, the
//! catalog and the plan live together on the producer's stack, so the stream is `'static`
//! and `Send` and holds no borrow of the database.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use kvm_lang::Statement;
use kvm_planner::{Catalog, Plan};
use kvm_storage::Value;

use crate::error::{Error, Result};
use crate::params::Params;
use crate::row::Row;
use crate::Database;

/// Batches in flight between the query thread and the reader (each at most [`BATCH`] rows).
const IN_FLIGHT: usize = 4;
/// The most rows sent at once. The first batches are smaller (1, 2, 4, …) so the first
/// row is not held back while a batch fills.
const BATCH: usize = 256;

enum Message {
    Columns(Vec<String>),
    Rows(Vec<Vec<Value>>),
    Done(Option<String>),
    Failed(Error),
}

/// The rows of a query as they are read: an iterator of `Result<Row>` (an error ends it).
/// See [`crate::Database::query_iter`].
pub struct RowStream {
    columns: Arc<[String]>,
    rx: Option<Receiver<Message>>,
    ready: std::vec::IntoIter<Vec<Value>>,
    next_cursor: Option<String>,
}

impl RowStream {
    /// The column names, in output order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Once the stream is exhausted: the cursor after its last row, when the query was a
    /// full page (`LIMIT n` with an order), as [`crate::Rows::next_cursor`].
    pub fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }

    /// A stream over rows already in memory (a statement that does not stream).
    pub(crate) fn of(rows: crate::Rows) -> RowStream {
        RowStream {
            columns: rows.columns.into(),
            rx: None,
            ready: rows.rows.into_iter(),
            next_cursor: rows.next_cursor,
        }
    }

    /// Starts `stmt` (a `SELECT`) on its own thread; returns once its columns are known (or
    /// it failed to start: the error is returned here).
    pub(crate) fn start(
        db: &Database,
        stmt: Statement,
        params: Params,
        prepared: Option<(Arc<Catalog>, Plan)>,
    ) -> Result<RowStream> {
        let (tx, rx) = sync_channel::<Message>(IN_FLIGHT);
        let db = db.clone();
        std::thread::Builder::new()
            .name("kvm-query".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(1);
                let mut size = 1;
                let prepared = prepared.as_ref().map(|(c, p)| (c, p));
                let result = crate::model_txn::ModelTxn::new(db.host().engine()).and_then(|mtx| {
                    crate::exec::stream_in(
                        db.host(),
                        &mtx,
                        &stmt,
                        &params,
                        prepared,
                        &mut |columns| tx.send(Message::Columns(columns)).is_ok(),
                        &mut |row| {
                            batch.push(row);
                            if batch.len() < size {
                                return Ok(true);
                            }
                            size = (size * 2).min(BATCH);
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(size));
                            Ok(tx.send(Message::Rows(full)).is_ok())
                        },
                    )
                });
                let last = match result {
                    Ok(cursor) => {
                        if !batch.is_empty() && tx.send(Message::Rows(batch)).is_err() {
                            return;
                        }
                        Message::Done(cursor)
                    }
                    Err(e) => Message::Failed(e),
                };
                let _ = tx.send(last);
            })
            .map_err(|e| {
                Error::Storage(kvm_storage::Error::Backend(format!(
                    "cannot start a query thread: {e}"
                )))
            })?;
        match rx.recv() {
            Ok(Message::Columns(columns)) => Ok(RowStream {
                columns: columns.into(),
                rx: Some(rx),
                ready: Vec::new().into_iter(),
                next_cursor: None,
            }),
            Ok(Message::Failed(e)) => Err(e),
            Ok(_) | Err(_) => {
                Err(Error::Internal("the query thread ended before its columns".into()))
            }
        }
    }
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("columns", &self.columns)
            .field("open", &self.rx.is_some())
            .finish_non_exhaustive()
    }
}

impl Iterator for RowStream {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        loop {
            if let Some(values) = self.ready.next() {
                return Some(Ok(Row::new(self.columns.clone(), values)));
            }
            let rx = self.rx.as_ref()?;
            match rx.recv() {
                Ok(Message::Rows(rows)) => self.ready = rows.into_iter(),
                Ok(Message::Done(cursor)) => {
                    self.next_cursor = cursor;
                    self.rx = None;
                    return None;
                }
                Ok(Message::Failed(e)) => {
                    self.rx = None;
                    return Some(Err(e));
                }
                Ok(Message::Columns(_)) => {
                    self.rx = None;
                    return Some(Err(Error::Internal("a query sent its columns twice".into())));
                }
                Err(_) => {
                    self.rx = None;
                    return Some(Err(Error::Internal("the query thread ended early".into())));
                }
            }
        }
    }
}
