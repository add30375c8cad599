//! Work directories (`SCRATCH/{job}-{attempt}`) that a run could not remove
//! itself: its process was killed, or the machine went down. A run removes
//! its own when it ends; these sweeps catch the rest.

use std::io;
use std::path::Path;

use crate::engine::Engine;
use crate::ids::JobId;
use crate::job::JobState;

/// The job and attempt a work directory belongs to.
fn owner_of(name: &str) -> Option<(JobId, i64)> {
    let (job, attempt) = name.rsplit_once('-')?;
    Some((job.parse().ok()?, attempt.parse().ok()?))
}

/// At start-up: removes the work directories of jobs that no run can be
/// using — finished, queued again, or gone. A PROCESSING job's directory
/// may belong to another worker process on this machine sharing the data
/// directory, so it stays (its next claim removes it, see
/// [`remove_earlier_attempts`]).
pub(super) async fn sweep_at_start(engine: &Engine, scratch: &Path) -> usize {
    let Ok(mut entries) = tokio::fs::read_dir(scratch).await else {
        return 0;
    };
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let Some((job, _)) = name.to_str().and_then(owner_of) else {
            continue;
        };
        let in_use = match engine.db().job_by_id(job).await {
            Ok(found) => found.is_some_and(|j| j.state == JobState::Processing),
            // Unknown: leave it for the next start.
            Err(_) => true,
        };
        if !in_use && remove(&entry.path()).await {
            removed += 1;
        }
    }
    removed
}

/// When a job is claimed again: the directories of its earlier attempts on
/// this machine (a run that was lost) go.
pub(super) async fn remove_earlier_attempts(scratch: &Path, job: JobId, attempt: i64) {
    let Ok(mut entries) = tokio::fs::read_dir(scratch).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        if let Some((owner, earlier)) = name.to_str().and_then(owner_of) {
            if owner == job && earlier < attempt {
                remove(&entry.path()).await;
            }
        }
    }
}

async fn remove(dir: &Path) -> bool {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a work directory");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_job_and_attempt() {
        let job = JobId::new();
        assert_eq!(owner_of(&format!("{job}-3")), Some((job, 3)));
        assert_eq!(owner_of("notes.txt"), None);
        assert_eq!(owner_of(&format!("{job}-x")), None);
    }
}
