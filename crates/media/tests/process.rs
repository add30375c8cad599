//! The subprocess wrapper against real programs (`sh`, `sleep`): kills on
//! timeout and cancel, reaps, and reports failures usefully.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use genq_media::{Tool, ToolError};
use tokio_util::sync::CancellationToken;

/// `sh` prints its pid and then *becomes* `sleep` (exec), so the pid we
/// learn is the process the wrapper must kill.
fn sleeper() -> Tool {
    Tool::new("sh").args(["-c", "echo $$; exec sleep 30"])
}

fn pid_recorder() -> (Arc<Mutex<Option<u32>>>, impl FnMut(&str) + Send) {
    let pid = Arc::new(Mutex::new(None));
    let slot = pid.clone();
    (pid, move |line: &str| {
        if let Ok(p) = line.trim().parse() {
            *slot.lock().unwrap() = Some(p);
        }
    })
}

/// Gone from /proc means killed *and* reaped (a zombie would still be listed).
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn timeout_kills_and_reaps_the_child() {
    let (pid, on_line) = pid_recorder();
    let started = Instant::now();
    let err = sleeper()
        .timeout(Duration::from_millis(300))
        .run(&CancellationToken::new(), on_line)
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let pid = pid.lock().unwrap().expect("child printed its pid");
    assert!(
        !process_exists(pid),
        "sleep (pid {pid}) survived the timeout"
    );
}

#[tokio::test]
async fn cancel_kills_and_reaps_the_child() {
    let (pid, on_line) = pid_recorder();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let err = sleeper().run(&cancel, on_line).await.unwrap_err();
    assert!(matches!(err, ToolError::Cancelled { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let pid = pid.lock().unwrap().expect("child printed its pid");
    assert!(
        !process_exists(pid),
        "sleep (pid {pid}) survived cancellation"
    );
}

#[tokio::test]
async fn already_cancelled_token_never_starts_the_program() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (pid, on_line) = pid_recorder();
    let err = sleeper().run(&cancel, on_line).await.unwrap_err();
    assert!(matches!(err, ToolError::Cancelled { .. }), "{err:?}");
    assert!(pid.lock().unwrap().is_none());
}

#[tokio::test]
async fn dropping_the_future_kills_the_child() {
    let (pid, on_line) = pid_recorder();
    let cancel = CancellationToken::new();
    let run = sleeper().run(&cancel, on_line);
    let _ = tokio::time::timeout(Duration::from_millis(300), run).await;
    let pid = pid.lock().unwrap().expect("child printed its pid");
    // kill_on_drop signals immediately; tokio reaps in the background.
    let deadline = Instant::now() + Duration::from_secs(2);
    while process_exists(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!process_exists(pid), "sleep (pid {pid}) survived the drop");
}

#[tokio::test]
async fn missing_program_is_a_spawn_error_that_says_so() {
    let err = Tool::new("/nonexistent/bin/ffmpeg")
        .run_capture(&CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Spawn { .. }), "{err:?}");
    assert!(err.is_not_found());
    let msg = err.to_string();
    assert!(
        msg.contains("not found") && msg.contains("install ffmpeg"),
        "{msg}"
    );
}

#[tokio::test]
async fn failure_carries_exit_status_and_stderr_tail() {
    let err = Tool::new("sh")
        .args([
            "-c",
            "echo 'line one' >&2; echo 'fatal: no such codec' >&2; exit 3",
        ])
        .run_capture(&CancellationToken::new())
        .await
        .unwrap_err();
    let ToolError::Failed {
        status,
        stderr_tail,
        ..
    } = &err
    else {
        panic!("expected Failed, got {err:?}");
    };
    assert_eq!(status.code(), Some(3));
    assert!(
        stderr_tail.contains("line one\nfatal: no such codec"),
        "{stderr_tail}"
    );
    assert!(err.to_string().contains("fatal: no such codec"), "{err}");
}

#[tokio::test]
async fn huge_stderr_is_cut_to_its_last_16k() {
    // ~600 KiB of stderr, then the line that matters.
    let script = "i=0; while [ $i -lt 20000 ]; do echo \"noise line number $i\" >&2; \
                  i=$((i+1)); done; echo 'the real error' >&2; exit 1";
    let err = Tool::new("sh")
        .args(["-c", script])
        .run_capture(&CancellationToken::new())
        .await
        .unwrap_err();
    let ToolError::Failed { stderr_tail, .. } = err else {
        panic!("expected Failed, got {err:?}");
    };
    assert!(stderr_tail.len() <= 16 * 1024, "{}", stderr_tail.len());
    assert!(stderr_tail.len() > 8 * 1024, "{}", stderr_tail.len());
    assert!(
        stderr_tail.starts_with("noise line number "),
        "tail starts mid-line"
    );
    assert!(stderr_tail.ends_with("the real error\n"));
}

#[tokio::test]
async fn stdout_lines_reach_the_callback_in_order() {
    let mut lines = Vec::new();
    Tool::new("printf")
        .arg("a=1\nb=2\r\nlast-without-newline")
        .run(&CancellationToken::new(), |l| lines.push(l.to_owned()))
        .await
        .unwrap();
    assert_eq!(lines, ["a=1", "b=2", "last-without-newline"]);
}

#[tokio::test]
async fn arguments_are_passed_verbatim_without_a_shell() {
    let tricky = "$(echo pwned); `id` | rm -rf / * 'quoted' \"dq\"";
    let out = Tool::new("printf")
        .args(["%s", tricky])
        .run_capture(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out, format!("{tricky}\n"));
}
