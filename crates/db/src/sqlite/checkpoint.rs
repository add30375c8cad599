//! WAL checkpoints off the writers' path.
//!
//! By default SQLite checkpoints in whichever connection commits the
//! transaction that takes the WAL past 1,000 pages: that commit's caller
//! waits while about 4 MB of pages are copied into the database file and
//! the file is fsynced. Under a stream of submissions that was every tenth
//! group commit, and each one held up all the submissions queued behind it.
//! Here a thread of its own checkpoints (PASSIVE: it never blocks a writer
//! or a reader) a few times a second, while the writers keep going.
//!
//! The writers still checkpoint when the WAL reaches `WRITER_CHECKPOINT_PAGES`.
//! SQLite can only start the WAL over from its beginning once every frame
//! in it is in the database file; a writer that commits all the time can
//! keep this thread from ever being quite done. A writer's own checkpoint
//! at that size finds almost every frame already copied, and lets the WAL
//! start over.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the thread checkpoints.
const INTERVAL: Duration = Duration::from_millis(100);

/// The WAL size (pages) at which a committing writer checkpoints itself
/// (`PRAGMA wal_autocheckpoint`): 40 MB of 4 KiB pages.
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: PathBuf) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("genq-checkpoint".into())
            .spawn(move || run(&path, &stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            // A checkpoint in progress finishes first: at most one pass
            // over the WAL.
            let _ = thread.join();
        }
    }
}

fn run(path: &Path, stopped: &mpsc::Receiver<()>) {
    let mut connection = None;
    let mut failing = false;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        let done = match connection.take().map_or_else(|| open(path), Ok) {
            Ok(c) => checkpoint(&c).map(|()| c),
            Err(e) => Err(e),
        };
        match done {
            Ok(c) => {
                connection = Some(c);
                failing = false;
            }
            // Once per run of failures: the writers' own checkpoints still
            // keep the WAL bounded meanwhile.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; retrying");
            }
            Err(_) => {}
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The database file is fsynced after each checkpoint, as the writers'
    // own checkpoints do under `synchronous=FULL`.
    c.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")?;
    Ok(c)
}

fn checkpoint(c: &Connection) -> rusqlite::Result<()> {
    // (busy, frames in the WAL, frames in the database file): PASSIVE
    // copies what it can and is never "busy" in a way that needs a retry.
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
