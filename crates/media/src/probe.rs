//! ffprobe, reduced to the facts the renderers and tests need.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::process::{Tool, ToolError};

#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "mp3".
    pub format_name: Option<String>,
    /// Container duration in seconds.
    pub duration: Option<f64>,
    pub streams: Vec<StreamInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub index: u32,
    /// "video", "audio", "subtitle", "data", ...
    pub codec_type: String,
    pub codec_name: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub pix_fmt: Option<String>,
    pub duration: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    pub nb_frames: Option<u64>,
    /// As ffprobe prints it, e.g. "25/1"; see [`StreamInfo::frame_rate`].
    pub r_frame_rate: Option<String>,
    pub avg_frame_rate: Option<String>,
    /// Cover art in an MP3/M4A shows up as a one-frame "video" stream; this
    /// tells it apart from real video.
    pub attached_pic: bool,
}

impl MediaInfo {
    pub fn first_audio(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.codec_type == "audio")
    }

    /// Skips cover art.
    pub fn first_video(&self) -> Option<&StreamInfo> {
        self.streams
            .iter()
            .find(|s| s.codec_type == "video" && !s.attached_pic)
    }
}

impl StreamInfo {
    /// `r_frame_rate` as a number; `None` for "0/0" (audio) or garbage.
    pub fn frame_rate(&self) -> Option<f64> {
        parse_rational(self.r_frame_rate.as_deref()?)
    }
}

fn parse_rational(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/')?;
    let n: f64 = n.trim().parse().ok()?;
    let d: f64 = d.trim().parse().ok()?;
    (d != 0.0 && n.is_finite()).then(|| n / d)
}

/// Runs `ffprobe -show_format -show_streams` on `path`.
pub async fn probe(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<MediaInfo, ToolError> {
    let json = Tool::new(ffprobe)
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(file_url(path))
        .timeout(timeout)
        .run_capture(cancel)
        .await?;
    parse_probe_json(&json).map_err(|reason| ToolError::InvalidOutput {
        program: ffprobe.display().to_string(),
        reason,
    })
}

/// Prefixes `file:` so ffmpeg never reads a name like `http:x` or `concat:a|b`
/// (or one starting with `-`) as anything but a local file.
pub(crate) fn file_url(path: &Path) -> OsString {
    let mut s = OsString::from("file:");
    s.push(path.as_os_str());
    s
}

fn parse_probe_json(json: &str) -> Result<MediaInfo, String> {
    let root: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let format = root.get("format");
    let streams = root
        .get("streams")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(parse_stream).collect())
        .unwrap_or_default();
    Ok(MediaInfo {
        format_name: format.and_then(|f| text(f, "format_name")),
        duration: format.and_then(|f| number(f, "duration")),
        streams,
    })
}

fn parse_stream(s: &Value) -> StreamInfo {
    let uint = |key| number(s, key).filter(|v| *v >= 0.0).map(|v| v as u64);
    StreamInfo {
        index: uint("index").unwrap_or(0) as u32,
        codec_type: text(s, "codec_type").unwrap_or_default(),
        codec_name: text(s, "codec_name"),
        width: uint("width").map(|v| v as u32),
        height: uint("height").map(|v| v as u32),
        pix_fmt: text(s, "pix_fmt"),
        duration: number(s, "duration"),
        sample_rate: uint("sample_rate").map(|v| v as u32),
        channels: uint("channels").map(|v| v as u32),
        nb_frames: uint("nb_frames"),
        r_frame_rate: text(s, "r_frame_rate"),
        avg_frame_rate: text(s, "avg_frame_rate"),
        attached_pic: s
            .get("disposition")
            .and_then(|d| number(d, "attached_pic"))
            .is_some_and(|v| v != 0.0),
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_owned)
}

/// ffprobe prints some numbers as JSON strings ("2.500000", "44100") and
/// others as numbers, and "N/A" when unknown; accept all, reject junk.
fn number(v: &Value, key: &str) -> Option<f64> {
    let n = match v.get(key)? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffprobe_shapes() {
        let json = r#"{
          "streams": [
            {"index": 0, "codec_name": "h264", "codec_type": "video", "width": 320,
             "height": 240, "pix_fmt": "yuv420p", "r_frame_rate": "25/1",
             "duration": "2.560000", "nb_frames": "64", "disposition": {"attached_pic": 0}},
            {"index": 1, "codec_name": "aac", "codec_type": "audio", "sample_rate": "44100",
             "channels": 2, "r_frame_rate": "0/0", "duration": "N/A"}
          ],
          "format": {"format_name": "mov,mp4", "duration": "2.560000"}
        }"#;
        let info = parse_probe_json(json).unwrap();
        assert_eq!(info.duration, Some(2.56));
        let v = info.first_video().unwrap();
        assert_eq!(
            (v.width, v.height, v.nb_frames),
            (Some(320), Some(240), Some(64))
        );
        assert_eq!(v.frame_rate(), Some(25.0));
        let a = info.first_audio().unwrap();
        assert_eq!((a.sample_rate, a.channels), (Some(44100), Some(2)));
        assert_eq!(a.duration, None);
        assert_eq!(a.frame_rate(), None);
    }

    #[test]
    fn cover_art_is_not_video() {
        let json = r#"{"streams": [{"codec_type": "video", "disposition": {"attached_pic": 1}}],
                       "format": {}}"#;
        assert!(parse_probe_json(json).unwrap().first_video().is_none());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_probe_json("not json").is_err());
    }
}
