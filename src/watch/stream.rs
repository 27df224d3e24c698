//! `Watch::into_stream`: a watch as an async `Stream` for tokio applications. A thread reads
//! the blocking watch and sends into a small bounded channel; when the consumer is slow the
//! thread waits on the channel, and the watch meanwhile coalesces changes into the latest
//! state — memory stays bounded. Dropping the stream stops the thread and unregisters the
//! watch (within 100 ms).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Watch, WatchEvent};
use crate::error::Result;

/// Events buffered between the watch thread and the stream.
const BUFFER: usize = 16;

/// An async stream of a watch's events (`futures_core::Stream`).
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchEvent>>,
}

impl Watch {
    /// This watch as an async `Stream` (feature `async`). Needs no runtime of its own.
    pub fn into_stream(mut self) -> WatchStream {
        let (tx, rx) = mpsc::channel(BUFFER);
        let spawned =
            std::thread::Builder::new().name("kvm-watch-stream".into()).spawn(move || {
                while !tx.is_closed() {
                    match self.next_timeout(Duration::from_millis(100)) {
                        Some(item) => {
                            let end = item.is_err();
                            if tx.blocking_send(item).is_err() || end {
                                return;
                            }
                        }
                        None if self.done => return,
                        None => {}
                    }
                }
            });
        if let Err(e) = spawned {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx
                .try_send(Err(crate::Error::Corrupt(format!("cannot start a watch thread: {e}"))));
            return WatchStream { rx };
        }
        WatchStream { rx }
    }
}

impl futures_core::Stream for WatchStream {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
