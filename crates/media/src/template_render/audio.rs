//! A template video's soundtrack: the audio value after its effects, mixed
//! with background music — started `start` seconds in, at `volume`, looped
//! when shorter than the video, faded out over the last 1.5 s and lowered
//! under the voice where they overlap (ducking). One ffmpeg run per step,
//! each through the process wrapper; the result is a WAV the still-video
//! renderer encodes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use genq_template::Effect;
use tokio_util::sync::CancellationToken;

use crate::diagnostics::tool_error;
use crate::error::MediaError;
use crate::probe::{file_url, probe};
use crate::process::Tool;
use crate::still::RenderSettings;

/// The music fades out over the video's last seconds.
pub const MUSIC_FADE_OUT_SECS: f64 = 1.5;
/// Every step works at one rate and layout, so the mix needs no guessing.
const MIX_FORMAT: &str = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo";
/// EBU R128 integrated loudness that `normalize` aims for.
const NORMALIZE_LUFS: f64 = -16.0;

/// Background music as a job asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Music {
    pub path: PathBuf,
    /// Seconds into the music where the video starts.
    pub start: f64,
    /// Linear, 0–1.
    pub volume: f64,
    /// Lower the music under the voice.
    pub ducking: bool,
}

/// The voice (the audio value after its effects) as a WAV, and its length.
pub async fn voice_track(
    source: &Path,
    effects: &[Effect],
    out: &Path,
    settings: &RenderSettings,
    cancel: &CancellationToken,
) -> Result<f64, MediaError> {
    let chain = effect_chain(effects);
    Tool::new(&settings.ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(file_url(source))
        .args(["-vn", "-af", &chain, "-c:a", "pcm_s16le"])
        .arg(file_url(out))
        .timeout(settings.timeout)
        .run(cancel, |_| {})
        .await
        .map_err(|e| match tool_error(e, &settings.ffmpeg) {
            MediaError::Render(message) => MediaError::InvalidAudio(message),
            other => other,
        })?;
    let info = probe(&settings.ffprobe, out, settings.timeout, cancel)
        .await
        .map_err(|e| tool_error(e, &settings.ffprobe))?;
    let duration = info
        .first_audio()
        .and_then(|s| s.duration)
        .or(info.duration)
        .unwrap_or(0.0);
    if duration <= 0.0 {
        return Err(MediaError::InvalidAudio(
            "no sound is left after its effects".into(),
        ));
    }
    Ok(duration)
}

/// ffmpeg's filters for `effects`, in order, ending in the mix format.
pub fn effect_chain(effects: &[Effect]) -> String {
    let mut filters: Vec<String> = Vec::new();
    for effect in effects {
        match effect {
            Effect::Trim { start, end } => {
                let end = end.map(|e| format!(":end={e}")).unwrap_or_default();
                filters.push(format!("atrim=start={start}{end}"));
                filters.push("asetpts=PTS-STARTPTS".into());
            }
            Effect::FadeIn { duration } => filters.push(format!("afade=t=in:st=0:d={duration}")),
            // The end is not known before the earlier effects ran: fade the
            // reversed sound in, then turn it round again.
            Effect::FadeOut { duration } => {
                filters.push(format!("areverse,afade=t=in:st=0:d={duration},areverse"))
            }
            Effect::Volume { level } => filters.push(format!("volume={level}")),
            Effect::Normalize => {
                filters.push(format!("loudnorm=I={NORMALIZE_LUFS}:TP=-1.5:LRA=11"));
            }
        }
    }
    filters.push(MIX_FORMAT.into());
    filters.join(",")
}

/// The soundtrack of `duration` seconds: the voice (if any) over the music
/// (if any), else silence.
pub async fn soundtrack(
    voice: Option<&Path>,
    music: Option<&Music>,
    duration: f64,
    out: &Path,
    settings: &RenderSettings,
    cancel: &CancellationToken,
) -> Result<(), MediaError> {
    let mut tool =
        Tool::new(&settings.ffmpeg).args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]);
    let mut inputs = 0;
    let mut voice_input = None;
    if let Some(voice) = voice {
        tool = tool.arg("-i").arg(file_url(voice));
        voice_input = Some(inputs);
        inputs += 1;
    }
    let mut music_input = None;
    if let Some(music) = music {
        // Looped forever and cut to the video's length below.
        tool = tool
            .args([
                "-stream_loop",
                "-1",
                "-ss",
                &format!("{}", music.start),
                "-i",
            ])
            .arg(file_url(&music.path));
        music_input = Some(inputs);
        inputs += 1;
    }
    let graph = mix_graph(voice_input, music_input, music, duration);
    if inputs == 0 {
        tool = tool.args(["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]);
    }
    if let Some(graph) = graph {
        tool = tool.args(["-filter_complex", &graph, "-map", "[out]"]);
    }
    tool.args(["-t", &format!("{duration:.3}"), "-c:a", "pcm_s16le"])
        .arg(file_url(out))
        .timeout(settings.timeout + Duration::from_secs_f64(duration * 4.0))
        .run(cancel, |_| {})
        .await
        .map_err(|e| match tool_error(e, &settings.ffmpeg) {
            MediaError::Render(message) => {
                MediaError::InvalidAudio(format!("background_music: {message}"))
            }
            other => other,
        })?;
    Ok(())
}

/// The filter graph mixing the inputs into `[out]`, or None for silence
/// (public so that the benchmark's floor runs exactly these filters).
pub fn mix_graph(
    voice: Option<usize>,
    music_input: Option<usize>,
    music: Option<&Music>,
    duration: f64,
) -> Option<String> {
    let fade_start = (duration - MUSIC_FADE_OUT_SECS).max(0.0);
    let music_chain = |input: usize, music: &Music| {
        format!(
            "[{input}:a]{MIX_FORMAT},atrim=0:{duration:.3},asetpts=PTS-STARTPTS,\
             volume={},afade=t=out:st={fade_start:.3}:d={MUSIC_FADE_OUT_SECS}",
            music.volume
        )
    };
    match (voice, music_input.zip(music)) {
        (None, None) => None,
        (Some(v), None) => Some(format!("[{v}:a]{MIX_FORMAT},apad[out]")),
        (None, Some((m, music))) => Some(format!("{}[out]", music_chain(m, music))),
        (Some(v), Some((m, music))) => {
            let voice = format!("[{v}:a]{MIX_FORMAT},apad,atrim=0:{duration:.3}");
            Some(if music.ducking {
                // The voice keys a compressor on the music: about −12 dB
                // while someone speaks, back within a third of a second.
                format!(
                    "{voice},asplit=2[voice][key];{}[music];\
                     [music][key]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=300[ducked];\
                     [voice][ducked]amix=inputs=2:duration=first:normalize=0[out]",
                    music_chain(m, music)
                )
            } else {
                format!(
                    "{voice}[voice];{}[music];[voice][music]amix=inputs=2:duration=first:normalize=0[out]",
                    music_chain(m, music)
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_become_filters_in_their_order() {
        let chain = effect_chain(&[
            Effect::Trim {
                start: 1.0,
                end: Some(4.5),
            },
            Effect::FadeIn { duration: 0.5 },
            Effect::Volume { level: 2.0 },
            Effect::FadeOut { duration: 1.0 },
            Effect::Normalize,
        ]);
        assert_eq!(
            chain,
            format!(
                "atrim=start=1:end=4.5,asetpts=PTS-STARTPTS,afade=t=in:st=0:d=0.5,volume=2,\
                 areverse,afade=t=in:st=0:d=1,areverse,loudnorm=I=-16:TP=-1.5:LRA=11,{MIX_FORMAT}"
            )
        );
    }
}
