//! Per-core connection workers (pingora's "no steal" runtime): N OS threads, each running a
//! current-thread tokio runtime. An accepted connection is handed to one of them, round robin,
//! and lives there to its end: its client socket, its pinned backend socket and its timers share
//! one thread, so a request never wakes another thread and no worker steals another's tasks.
//! Accept loops, health checks and the admin listener stay on the main runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The worker threads and their runtimes' handles.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: watch::Sender<bool>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Workers {
    /// Starts `n` worker threads (at least one), named `kedge-worker-<i>`.
    pub fn start(n: usize) -> std::io::Result<Arc<Self>> {
        let (stop, _) = watch::channel(false);
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let mut stopped = stop.subscribe();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("kedge-worker-{i}"))
                    .spawn(move || {
                        rt.block_on(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        });
                        // Whatever is still running on this worker is dropped with its runtime.
                    })?,
            );
        }
        Ok(Arc::new(Self {
            handles,
            next: AtomicUsize::new(0),
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

    fn pick(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }

    /// Stops the workers and waits for their threads (call once every connection has ended).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    /// The last owner gone (every listener has stopped): the worker threads exit on their own.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Runs `serve(stream)` as a task of `set`: on a worker when there are workers (the socket moves
/// to that worker's reactor), otherwise on the current runtime.
pub fn spawn_connection<F, Fut>(set: &mut JoinSet<()>, workers: Option<&Workers>, stream: TcpStream, serve: F)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(workers) = workers else {
        set.spawn(serve(stream));
        return;
    };
    let std_stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not hand a connection to a worker");
            return;
        }
    };
    set.spawn_on(
        async move {
            match TcpStream::from_std(std_stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => tracing::warn!(error = %e, "worker could not register a connection"),
            }
        },
        workers.pick(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Echoes one line back with the name of the thread that served it.
    async fn echo_thread(mut s: TcpStream) {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.unwrap_or(0);
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        let _ = s.write_all(&buf[..n]).await;
        let _ = s.write_all(format!(" {name}").as_bytes()).await;
    }

    async fn round_trip(addr: std::net::SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"hi").await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn connections_are_served_on_the_workers_round_robin() {
        let workers = Workers::start(2).unwrap();
        assert_eq!(workers.len(), 2);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut set = JoinSet::new();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let client = tokio::spawn(round_trip(addr));
            let (s, _) = listener.accept().await.unwrap();
            spawn_connection(&mut set, Some(&workers), s, echo_thread);
            seen.push(client.await.unwrap());
        }
        while set.join_next().await.is_some() {}
        assert_eq!(
            seen,
            [
                "hi kedge-worker-0",
                "hi kedge-worker-1",
                "hi kedge-worker-0",
                "hi kedge-worker-1"
            ]
        );
        tokio::task::spawn_blocking(move || workers.stop()).await.unwrap();
    }

    #[tokio::test]
    async fn without_workers_the_current_runtime_serves() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut set = JoinSet::new();
        let client = tokio::spawn(round_trip(addr));
        let (s, _) = listener.accept().await.unwrap();
        spawn_connection(&mut set, None, s, echo_thread);
        let out = client.await.unwrap();
        assert!(out.starts_with("hi ") && !out.contains("kedge-worker"), "{out}");
    }

    #[tokio::test]
    async fn aborting_the_set_ends_connections_on_workers_and_stop_joins_the_threads() {
        let workers = Workers::start(1).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut set = JoinSet::new();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        // A connection that would wait forever for a byte that never comes.
        spawn_connection(&mut set, Some(&workers), s, |mut s| async move {
            let mut b = [0u8; 1];
            let _ = s.read(&mut b).await;
        });
        set.abort_all();
        while set.join_next().await.is_some() {}
        // The worker dropped its socket: the client sees the close.
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut b))
            .await
            .expect("closed after abort")
            .unwrap_or(0);
        assert_eq!(n, 0);
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::task::spawn_blocking(move || workers.stop()),
        )
        .await
        .expect("worker threads exit")
        .unwrap();
    }
}
