use std::time::Duration;

/// Why a render failed. `Display` is shown to end users as the job's error
/// message, so it never contains server paths; [`MediaError::code`] is the
/// stable machine-readable counterpart.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("image could not be decoded: {0}")]
    InvalidImage(String),
    #[error("audio could not be decoded: {0}")]
    InvalidAudio(String),
    /// Also used for speech synthesis, so the message doesn't say "video".
    #[error("rendering failed: {0}")]
    Render(String),
    #[error("the job was cancelled")]
    Cancelled,
    #[error("rendering took longer than {}s and was stopped", .0.as_secs_f64().ceil())]
    Timeout(Duration),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// Names the program (ffmpeg, ffprobe, espeak-ng) or resource (the
    /// DejaVu Sans font) that isn't installed.
    #[error(
        "{0} is not installed on the server (or not at the configured path); install {pkg}",
        pkg = package_for(.0)
    )]
    ToolMissing(String),
    /// The job's own input is unusable; the message names the field and why.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// The Debian package an operator installs to fix a `ToolMissing`.
fn package_for(missing: &str) -> &str {
    match missing {
        "ffmpeg" | "ffprobe" => "ffmpeg",
        "espeak-ng" | "espeak" => "espeak-ng",
        m if m.contains("DejaVu") => "fonts-dejavu-core",
        m => m,
    }
}

impl MediaError {
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::InvalidImage(_) => "INVALID_IMAGE",
            MediaError::InvalidAudio(_) => "INVALID_AUDIO",
            MediaError::Render(_) => "RENDER_FAILED",
            MediaError::Cancelled => "CANCELLED",
            MediaError::Timeout(_) => "TIMEOUT",
            MediaError::Io(_) => "IO_ERROR",
            MediaError::ToolMissing(_) => "TOOL_MISSING",
            MediaError::InvalidInput(_) => "INVALID_INPUT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let cases = [
            (MediaError::InvalidImage("x".into()), "INVALID_IMAGE"),
            (MediaError::InvalidAudio("x".into()), "INVALID_AUDIO"),
            (MediaError::Render("x".into()), "RENDER_FAILED"),
            (MediaError::Cancelled, "CANCELLED"),
            (MediaError::Timeout(Duration::from_secs(3)), "TIMEOUT"),
            (MediaError::Io(std::io::Error::other("x")), "IO_ERROR"),
            (MediaError::ToolMissing("ffmpeg".into()), "TOOL_MISSING"),
            (MediaError::InvalidInput("x".into()), "INVALID_INPUT"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn messages_lead_with_what_went_wrong() {
        let e = MediaError::InvalidAudio("no audio stream found".into());
        assert_eq!(
            e.to_string(),
            "audio could not be decoded: no audio stream found"
        );
        let e = MediaError::Timeout(Duration::from_millis(10_500));
        assert_eq!(
            e.to_string(),
            "rendering took longer than 11s and was stopped"
        );
    }

    #[test]
    fn missing_tools_name_the_package_to_install() {
        for (missing, package) in [
            ("ffprobe", "install ffmpeg"),
            ("espeak-ng", "install espeak-ng"),
            ("the DejaVu Sans font", "install fonts-dejavu-core"),
        ] {
            let msg = MediaError::ToolMissing(missing.into()).to_string();
            assert!(msg.starts_with(missing), "{msg}");
            assert!(msg.ends_with(package), "{msg}");
        }
    }
}
