//! Turning a failed tool run into a job's error: short, free of server
//! paths, and naming what the user can act on.

use std::path::Path;

use crate::error::MediaError;
use crate::process::{ToolError, ToolOutput};

/// The `Result` of an ffmpeg run as a job sees it: warnings logged, a
/// failure summarised with `paths` named by their labels.
pub(crate) fn ffmpeg_outcome(
    run: Result<ToolOutput, ToolError>,
    ffmpeg: &Path,
    paths: &[(&Path, &str)],
) -> Result<(), MediaError> {
    match run {
        Ok(out) => {
            if !out.stderr_tail.trim().is_empty() {
                tracing::debug!(stderr = %out.stderr_tail, "ffmpeg warnings");
            }
            Ok(())
        }
        Err(ToolError::Failed {
            stderr_tail,
            status,
            ..
        }) => {
            tracing::warn!(%status, stderr = %stderr_tail, "ffmpeg failed");
            Err(MediaError::Render(summarize_stderr(&stderr_tail, paths)))
        }
        Err(e) => Err(tool_error(e, ffmpeg)),
    }
}

pub(crate) fn tool_error(e: ToolError, program: &Path) -> MediaError {
    if e.is_not_found() {
        return MediaError::ToolMissing(
            program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| program.display().to_string()),
        );
    }
    match e {
        ToolError::Timeout { after, .. } => MediaError::Timeout(after),
        ToolError::Cancelled { .. } => MediaError::Cancelled,
        ToolError::Spawn { source, .. } | ToolError::Io { source, .. } => MediaError::Io(source),
        other @ (ToolError::Failed { .. } | ToolError::InvalidOutput { .. }) => {
            MediaError::Render(other.to_string())
        }
    }
}

/// The last few stderr lines, with server paths replaced by what they are,
/// short enough for a job's error message.
pub(crate) fn summarize_stderr(stderr: &str, paths: &[(&Path, &str)]) -> String {
    let mut text = stderr.to_owned();
    for (path, label) in paths {
        let p = path.to_string_lossy();
        text = text
            .replace(&format!("file:{p}"), label)
            .replace(p.as_ref(), label);
    }
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            let l = strip_log_context(l.trim());
            match paths {
                // "audio: Invalid data…" reads badly after "audio could not
                // be decoded:", so drop a lone label prefix.
                [(_, label)] => l
                    .strip_prefix(label)
                    .and_then(|r| r.strip_prefix(": "))
                    .unwrap_or(l),
                _ => l,
            }
        })
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("; ");
    if tail.is_empty() {
        return "no error output".into();
    }
    truncate_chars(&tail, 500)
}

/// Drops ffmpeg's "[mp3 @ 0x55d…] " prefix: a pointer means nothing to a
/// user and makes identical errors look different.
fn strip_log_context(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((ctx, after)) = rest.split_once("] ") {
            if ctx.contains(" @ 0x") {
                return after.trim_start();
            }
        }
    }
    line
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_summary_hides_paths() {
        let p = Path::new("/srv/jobs/42/in.mp3");
        let s = summarize_stderr(
            "junk\nfile:/srv/jobs/42/in.mp3: Invalid data found when processing input\n",
            &[(p, "audio")],
        );
        assert!(!s.contains("/srv"), "{s}");
        assert!(
            s.ends_with("Invalid data found when processing input"),
            "{s}"
        );
    }

    #[test]
    fn stderr_summary_drops_ffmpeg_log_context() {
        let p = Path::new("/x/a.mp3");
        let s = summarize_stderr(
            "[mp3 @ 0x559f76b45180] Failed to read frame size\nfile:/x/a.mp3: Invalid argument\n",
            &[(p, "audio")],
        );
        assert_eq!(s, "Failed to read frame size; Invalid argument");
    }
}
