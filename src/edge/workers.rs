//! Per-core connection workers (pingora's "no steal" runtime): N OS threads, each running a
//! current-thread tokio runtime with its own accept loop on every listener. A connection is
//! accepted by a worker and lives there to its end: its client socket, its pinned backend socket
//! and its timers share one thread, so a request never wakes another thread and no worker steals
//! another's tasks. Health checks, the keytab watcher and the admin listener stay on the main
//! runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::JoinSet;

use super::shutdown::{Drain, DrainSignal};

/// The worker threads and their runtimes' handles.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    /// Open connections per worker, for balancing long-lived connections.
    active: Vec<AtomicUsize>,
    stop: Drain,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Workers {
    /// Starts `n` worker threads (at least one), named `kedge-worker-<i>`.
    pub fn start(n: usize) -> std::io::Result<Arc<Self>> {
        let stop = Drain::new();
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let mut stopped = stop.signal();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("kedge-worker-{i}"))
                    .spawn(move || {
                        rt.block_on(stopped.draining());
                        // Whatever is still running on this worker is dropped with its runtime.
                    })?,
            );
        }
        Ok(Arc::new(Self {
            active: handles.iter().map(|_| AtomicUsize::new(0)).collect(),
            handles,
            stop,
            threads: std::sync::Mutex::new(threads),
        }))
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never true: there is always at least one worker.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Open connections on each worker.
    pub fn active(&self) -> Vec<usize> {
        self.active.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    }

    /// Where a connection accepted on worker `mine` should run: there, unless another worker
    /// has clearly fewer open connections (more than one in eight fewer), which happens when a
    /// few long-lived connections (spliced RPC, Outlook Anywhere channels) landed on one thread.
    fn place(&self, mine: usize) -> usize {
        let load = |i: usize| self.active[i].load(Ordering::Relaxed);
        let (least, min) = (0..self.active.len())
            .map(|i| (i, load(i)))
            .min_by_key(|&(_, n)| n)
            .unwrap_or((mine, 0));
        let own = load(mine);
        if own > min && (own - min) * 8 > own {
            least
        } else {
            mine
        }
    }

    /// Runs `task` on worker `index` (`None` when there is no such worker).
    pub fn spawn_on<F>(&self, index: usize, task: F) -> Option<tokio::task::JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handles.get(index).map(|h| h.spawn(task))
    }

    /// Asks every worker to run a no-op task; the indexes of those that did not answer within
    /// `within` (a thread stuck in a busy loop or a blocking call). Liveness probes use it: a
    /// kedge whose connection threads hang is not alive, however well its admin thread answers.
    pub async fn unresponsive(&self, within: Duration) -> Vec<usize> {
        let pings = self.handles.iter().map(|h| {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            h.spawn(async move {
                let _ = tx.send(());
            });
            async move { tokio::time::timeout(within, rx).await.is_ok_and(|r| r.is_ok()) }
        });
        let answered = futures_util::future::join_all(pings).await;
        answered
            .iter()
            .enumerate()
            .filter(|(_, ok)| !**ok)
            .map(|(i, _)| i)
            .collect()
    }

    /// Stops the workers and waits for their threads (call once every connection has ended).
    pub fn stop(&self) {
        self.stop.start();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    /// The last owner gone (every listener has stopped): the worker threads exit on their own.
    fn drop(&mut self) {
        self.stop.start();
    }
}

/// Counts one open connection on a worker while it lives.
struct ActiveGuard {
    workers: Arc<Workers>,
    index: usize,
}

impl ActiveGuard {
    fn new(workers: Arc<Workers>, index: usize) -> Self {
        workers.active[index].fetch_add(1, Ordering::Relaxed);
        Self { workers, index }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.workers.active[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where an accept loop runs: on worker `index`, or on the current runtime.
#[derive(Clone, Debug)]
pub struct Seat(Option<(Arc<Workers>, usize)>);

impl Seat {
    /// Runs `serve(stream)` as a task of `set`: on this loop's worker, or, when another worker
    /// has clearly fewer connections, on that one (the socket moves to its reactor).
    pub fn spawn<F, Fut>(&self, set: &mut JoinSet<()>, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some((workers, mine)) = &self.0 else {
            set.spawn(serve(stream));
            return;
        };
        let target = workers.place(*mine);
        let guard = ActiveGuard::new(workers.clone(), target);
        if target == *mine {
            set.spawn(async move {
                let _guard = guard;
                serve(stream).await
            });
            return;
        }
        let socket = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not move a connection to another worker");
                return;
            }
        };
        set.spawn_on(
            async move {
                let _guard = guard;
                match TcpStream::from_std(socket) {
                    Ok(stream) => serve(stream).await,
                    Err(e) => tracing::warn!(error = %e, "worker could not register a moved connection"),
                }
            },
            &workers.handles[target],
        );
    }
}

/// Runs a listener's accept loop on every worker, each over its own registration of the same
/// listening socket, so a connection is accepted by the thread that will serve it (no hand-off,
/// no second wakeup); without workers, one loop runs on the current runtime. When `shutdown`
/// resolves every loop's [`DrainSignal`] fires; returns what each loop returned, once all have.
pub async fn accept_loops<T, F, Fut>(
    listener: TcpListener,
    workers: Option<&Arc<Workers>>,
    shutdown: impl Future,
    accept_loop: F,
) -> std::io::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(TcpListener, DrainSignal, Seat) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let stop = Drain::new();
    let mut loops = JoinSet::new();
    match workers {
        None => {
            let stop = stop.signal();
            loops
                .spawn(async move { Ok::<T, std::io::Error>(accept_loop(listener, stop, Seat(None)).await) });
        }
        Some(workers) => {
            let socket = listener.into_std()?;
            for (index, handle) in workers.handles.iter().enumerate() {
                let (socket, stop, accept_loop) = (socket.try_clone()?, stop.signal(), accept_loop.clone());
                let seat = Seat(Some((workers.clone(), index)));
                loops.spawn_on(
                    async move {
                        // Registers the socket with this worker's reactor.
                        let listener = TcpListener::from_std(socket)?;
                        Ok::<T, std::io::Error>(accept_loop(listener, stop, seat).await)
                    },
                    handle,
                );
            }
        }
    }
    tokio::pin!(shutdown);
    let mut out = Vec::new();
    let mut first_error = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = &mut shutdown, if !stopping => {
                stopping = true;
                stop.start();
            }
            done = loops.join_next() => match done {
                Some(Ok(Ok(v))) => out.push(v),
                Some(Ok(Err(e))) => {
                    tracing::error!(error = %e, "accept loop could not start on a worker");
                    first_error.get_or_insert(e);
                    // The others stop too: a listener serves on all its workers or on none.
                    stopping = true;
                    stop.start();
                }
                Some(Err(e)) => {
                    if e.is_panic() {
                        tracing::error!(error = %e, "accept loop panicked");
                    }
                }
                None => break,
            },
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// An accept loop that answers each connection with the name of the thread that accepted
    /// it, and returns how many it served.
    async fn name_thread(listener: TcpListener, mut stop: DrainSignal, _seat: Seat) -> usize {
        let mut served = 0;
        loop {
            tokio::select! {
                _ = stop.draining() => return served,
                accepted = listener.accept() => {
                    let (mut s, _) = accepted.unwrap();
                    let name = std::thread::current().name().unwrap_or("?").to_owned();
                    let _ = s.write_all(name.as_bytes()).await;
                    served += 1;
                }
            }
        }
    }

    async fn thread_of(addr: std::net::SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn every_worker_accepts_and_serves_on_its_own_thread() {
        let workers = Workers::start(2).unwrap();
        assert_eq!(workers.len(), 2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let loops = tokio::spawn({
            let workers = workers.clone();
            async move {
                accept_loops(
                    listener,
                    Some(&workers),
                    async move {
                        let _ = rx.await;
                    },
                    name_thread,
                )
                .await
            }
        });
        for _ in 0..20 {
            let name = thread_of(addr).await;
            assert!(name.starts_with("kedge-worker-"), "accepted on {name}");
        }
        tx.send(()).unwrap();
        let served = tokio::time::timeout(Duration::from_secs(5), loops)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(served.len(), 2, "one loop per worker");
        assert_eq!(served.iter().sum::<usize>(), 20);
        // Every loop has dropped its registration: the socket is closed.
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "listener closed after shutdown"
        );
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio::task::spawn_blocking(move || workers.stop()),
        )
        .await
        .expect("worker threads exit")
        .unwrap();
    }

    #[tokio::test]
    async fn without_workers_one_loop_runs_on_the_current_runtime() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let loops = tokio::spawn(accept_loops(
            listener,
            None,
            async move {
                let _ = rx.await;
            },
            name_thread,
        ));
        let name = thread_of(addr).await;
        assert!(!name.starts_with("kedge-worker"), "{name}");
        tx.send(()).unwrap();
        let served = loops.await.unwrap().unwrap();
        assert_eq!(served, vec![1]);
    }

    #[tokio::test]
    async fn dropping_the_listener_task_ends_the_loops_on_the_workers() {
        let workers = Workers::start(1).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loops = tokio::spawn({
            let workers = workers.clone();
            async move {
                accept_loops(
                    listener,
                    Some(&workers),
                    std::future::pending::<()>(),
                    name_thread,
                )
                .await
            }
        });
        assert!(thread_of(addr).await.starts_with("kedge-worker-0"));
        loops.abort();
        let _ = loops.await;
        // The aborted loop's task on the worker is gone with its registration.
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if TcpStream::connect(addr).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            refused.is_ok(),
            "listener still open after the loops were aborted"
        );
        drop(workers);
    }

    #[test]
    fn long_lived_connections_are_spread_and_short_imbalance_is_tolerated() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _enter = rt.enter();
        let workers = Workers::start(2).unwrap();
        let set = |a: usize, b: usize| {
            workers.active[0].store(a, Ordering::Relaxed);
            workers.active[1].store(b, Ordering::Relaxed);
        };
        for (a, b, placed) in [
            (0, 0, 0),
            (1, 0, 1),
            (1, 1, 0),
            (2, 1, 1),
            (33, 31, 0),
            (40, 31, 1),
        ] {
            set(a, b);
            assert_eq!(
                workers.place(0),
                placed,
                "worker 0 with {a} open, worker 1 with {b}"
            );
        }
        set(0, 0);
        workers.stop();
    }

    #[tokio::test]
    async fn a_connection_moves_to_the_less_loaded_worker_and_is_counted_there() {
        let workers = Workers::start(2).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Worker 0 already serves one long-lived connection.
        workers.active[0].store(1, Ordering::Relaxed);
        let seat = Seat(Some((workers.clone(), 0)));
        let mut set = JoinSet::new();
        let client = tokio::spawn(thread_of(addr));
        let (stream, _) = listener.accept().await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        seat.spawn(&mut set, stream, |mut s| async move {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            let _ = rx.await;
            let _ = s.write_all(name.as_bytes()).await;
        });
        // Counted at once, on the worker it went to.
        assert_eq!(workers.active(), vec![1, 1], "counted on worker 1 while open");
        tx.send(()).unwrap();
        assert_eq!(client.await.unwrap(), "kedge-worker-1");
        while set.join_next().await.is_some() {}
        assert_eq!(workers.active(), vec![1, 0], "uncounted when it ends");
        workers.active[0].store(0, Ordering::Relaxed);
    }
}
