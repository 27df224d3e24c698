//! Queue workers: `concurrency` threads, each leasing one job at a time and running the
//! handler on it; a renewer thread extends the leases of jobs still running, so a long job
//! is not taken away from a live worker while a dead worker's jobs come back after their
//! timeout. Idle threads sleep until an enqueue of this process wakes them, a delayed job
//! falls due, or — for enqueues of other processes — the poll interval passes.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Job, Queue, POLL};

type Handler = dyn Fn(&Job) -> Result<(), String> + Send + Sync;
type Listener = dyn Fn(&WorkerEvent) + Send + Sync;

/// What happened to a job a worker ran.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    Completed {
        id: String,
        attempt: i64,
    },
    /// The handler failed; the job will be retried after its backoff.
    Retried {
        id: String,
        attempt: i64,
        error: String,
    },
    /// The handler failed on the last attempt: the job is dead (or in its dead-letter queue).
    Dead {
        id: String,
        attempt: i64,
        error: String,
    },
    /// Settling failed (the lease was lost: the job outlived its timeout unrenewed, or the
    /// database refused the write); the job will be delivered again.
    Lost {
        id: String,
        attempt: i64,
        error: String,
    },
}

/// Configures and starts a [`Worker`].
pub struct WorkerBuilder {
    queue: Queue,
    handler: Arc<Handler>,
    concurrency: usize,
    poll: Duration,
    timeout: Option<Duration>,
    listener: Option<Arc<Listener>>,
}

impl WorkerBuilder {
    pub(super) fn new<F>(queue: Queue, handler: F) -> WorkerBuilder
    where
        F: Fn(&Job) -> Result<(), String> + Send + Sync + 'static,
    {
        WorkerBuilder {
            queue,
            handler: Arc::new(handler),
            concurrency: 1,
            poll: POLL,
            timeout: None,
            listener: None,
        }
    }

    /// Jobs run at once (threads), at least 1.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The lease this worker takes its jobs for (instead of each job's `TIMEOUT`): renewed
    /// while the handler runs, so it bounds how long a dead worker's jobs wait, not how long
    /// a job may run.
    pub fn timeout(mut self, lease: Duration) -> Self {
        self.timeout = Some(lease.max(Duration::from_millis(1)));
        self
    }

    /// How often an idle worker looks for jobs enqueued by other processes.
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// Called after each job: completed, retried, dead or lost.
    pub fn on_event(mut self, f: impl Fn(&WorkerEvent) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(f));
        self
    }

    /// Starts the threads.
    pub fn spawn(self) -> std::io::Result<Worker> {
        let shared =
            Arc::new(Shared { stop: AtomicBool::new(false), running: Mutex::new(HashMap::new()) });
        let mut threads = Vec::new();
        for i in 0..self.concurrency {
            let (q, h, l, s, poll, lease) = (
                self.queue.clone(),
                self.handler.clone(),
                self.listener.clone(),
                shared.clone(),
                self.poll,
                self.timeout,
            );
            threads.push(
                std::thread::Builder::new()
                    .name(format!("kvm-worker-{}-{i}", q.name))
                    .spawn(move || run(&q, &*h, l.as_deref(), &s, poll, lease))?,
            );
        }
        let (q, s) = (self.queue.clone(), shared.clone());
        threads.push(
            std::thread::Builder::new()
                .name("kvm-worker-renew".into())
                .spawn(move || renew(&q, &s))?,
        );
        Ok(Worker { queue: self.queue, shared, threads })
    }
}

struct Shared {
    stop: AtomicBool,
    /// Leases of the jobs running now, with their lease end and length (ms).
    running: Mutex<HashMap<String, (u64, u64)>>,
}

/// A running worker; [`Worker::shutdown`] (or dropping it) stops it gracefully.
pub struct Worker {
    queue: Queue,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Stops taking jobs, lets the running ones finish and settle, and joins the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.queue.db.wake_queue_waiters();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// How many jobs are running now.
    pub fn running(&self) -> usize {
        self.shared.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    q: &Queue,
    handler: &Handler,
    listener: Option<&Listener>,
    s: &Shared,
    poll: Duration,
    lease: Option<Duration>,
) {
    while !s.stop.load(Ordering::SeqCst) {
        let seen = q.db.queue_signal();
        let leased = match lease {
            Some(d) => q.dequeue_for(1, d),
            None => q.dequeue(1),
        };
        let job = match leased {
            Ok(mut jobs) => jobs.pop(),
            Err(_) => None,
        };
        let Some(job) = job else {
            q.idle(seen, poll);
            continue;
        };
        let length = job.lease_until.saturating_sub(now_ms(q));
        if let Ok(mut r) = s.running.lock() {
            r.insert(job.lease.clone(), (job.lease_until, length.max(1)));
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| handler(&job))).unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(format!("the handler panicked: {what}"))
        });
        if let Ok(mut r) = s.running.lock() {
            r.remove(&job.lease);
        }
        let (id, attempt) = (job.id.clone(), job.attempt);
        let event = match outcome {
            Ok(()) => match q.ack(&job.lease) {
                Ok(()) => WorkerEvent::Completed { id, attempt },
                Err(e) => WorkerEvent::Lost { id, attempt, error: e.to_string() },
            },
            Err(error) => match q.nack(&job.lease, &error) {
                Ok(()) if attempt > job.retries => WorkerEvent::Dead { id, attempt, error },
                Ok(()) => WorkerEvent::Retried { id, attempt, error },
                Err(e) => WorkerEvent::Lost { id, attempt, error: e.to_string() },
            },
        };
        if let Some(l) = listener {
            l(&event);
        }
    }
}

fn now_ms(q: &Queue) -> u64 {
    q.db.engine().snapshot().map(|s| s.now_millis()).unwrap_or(0)
}

/// Renews each running job's lease when a third of it is left.
fn renew(q: &Queue, s: &Shared) {
    let mut last = Instant::now();
    while !s.stop.load(Ordering::SeqCst) || s.running.lock().map(|r| !r.is_empty()).unwrap_or(false)
    {
        std::thread::sleep(Duration::from_millis(20));
        if last.elapsed() < Duration::from_millis(100) {
            continue;
        }
        last = Instant::now();
        let now = now_ms(q);
        let due: Vec<(String, u64)> = match s.running.lock() {
            Ok(r) => r
                .iter()
                .filter(|(_, (until, length))| until.saturating_sub(now) <= length / 3)
                .map(|(l, (_, length))| (l.clone(), *length))
                .collect(),
            Err(_) => Vec::new(),
        };
        for (lease, length) in due {
            if let Ok(until) = q.renew(&lease) {
                if let Ok(mut r) = s.running.lock() {
                    if let Some(e) = r.get_mut(&lease) {
                        *e = (until, length);
                    }
                }
            }
        }
        if s.stop.load(Ordering::SeqCst) && s.running.lock().map(|r| r.is_empty()).unwrap_or(true) {
            return;
        }
    }
}
