//! `tts`: a text spoken to MP3 by espeak-ng or by a TTS model. A long text
//! is split at sentence boundaries into pieces each voice handles well; the
//! pieces are decoded to one sample format and joined with a few
//! milliseconds' fade at each seam, so no join clicks.

use genq_engine::{JobContext, JobFailure, OutputKind, OutputRole, ProducedOutput};
use serde_json::{json, Map, Value};
use unicode_segmentation::UnicodeSegmentation;

use super::{TemplateRenderInput, TemplateRenderer};
use crate::handler::{failure, output as output_file};
use crate::probe::file_url;
use crate::process::Tool;
use crate::speech::{espeak_wav, DEFAULT_VOICE};

/// The longest piece sent to a voice at once, in characters.
const PIECE_CHARS: usize = 600;
/// The joined speech's sample rate: every voice's pieces are resampled to it.
const SAMPLE_RATE: u32 = 24_000;
/// Each piece fades in and out over this long, so seams cannot click.
const SEAM_SECS: f32 = 0.005;
const SPEECH_FILE: &str = "speech.mp3";

impl TemplateRenderer {
    pub(super) async fn speak(
        &self,
        input: &TemplateRenderInput,
        ctx: &JobContext,
    ) -> Result<Vec<ProducedOutput>, JobFailure> {
        let request = input
            .speech
            .as_ref()
            .ok_or_else(|| JobFailure::new("INVALID_INPUT", "input.speech: is required"))?;
        let dir = ctx.workdir().await?.to_owned();
        let pieces = pieces(&request.text, PIECE_CHARS);
        // What speaks: the model, else espeak-ng's voice for the request.
        let voice = input
            .model
            .clone()
            .unwrap_or_else(|| espeak_voice(request.voice.as_deref(), request.language.as_deref()));
        let mut samples: Vec<f32> = Vec::new();
        ctx.set_progress(2);
        for (i, piece) in pieces.iter().enumerate() {
            let audio = match &input.model {
                Some(slug) => {
                    let mut model_input = Map::new();
                    model_input.insert("text".into(), json!(piece));
                    for (key, value) in [
                        ("voice", request.voice.as_ref().map(|v| json!(v))),
                        ("language", request.language.as_ref().map(|l| json!(l))),
                        ("speed", request.speed.map(|s| json!(s))),
                    ] {
                        if let Some(value) = value {
                            model_input.insert(key.into(), value);
                        }
                    }
                    let files = self
                        .run_model(slug, &Value::Object(model_input), ctx, &format!("tts-{i}"))
                        .await?;
                    files
                        .into_iter()
                        .find(|f| f.content_type.starts_with("audio/"))
                        .ok_or_else(|| {
                            JobFailure::new(
                                "GENERATION_FAILED",
                                format!("{slug}: the model returned no audio"),
                            )
                        })?
                        .path
                }
                None => {
                    let wav = dir.join(format!("piece-{i}.wav"));
                    espeak_wav(
                        piece,
                        &voice,
                        request.speed,
                        &wav,
                        &self.speech,
                        &ctx.cancel,
                    )
                    .await
                    .map_err(failure)?;
                    wav
                }
            };
            let mut piece_samples = self
                .mono_samples(&audio, &dir.join("piece.f32"), SAMPLE_RATE, ctx)
                .await?;
            fade_edges(&mut piece_samples);
            samples.extend_from_slice(&piece_samples);
            ctx.set_progress((5 + 85 * (i + 1) / pieces.len()) as u8);
        }
        if samples.is_empty() {
            return Err(JobFailure::new(
                "RENDER_FAILED",
                "the voice produced no sound",
            ));
        }
        let raw = dir.join("speech.f32");
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        tokio::fs::write(&raw, bytes)
            .await
            .map_err(|e| JobFailure::new("IO_ERROR", format!("could not write the speech: {e}")))?;
        let mp3 = dir.join(SPEECH_FILE);
        let rate = SAMPLE_RATE.to_string();
        let encode = Tool::new(&self.settings.ffmpeg)
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "f32le", "-ar", &rate, "-ac", "1", "-i"])
            .arg(file_url(&raw))
            .args([
                "-c:a",
                "libmp3lame",
                "-q:a",
                "4",
                "-map_metadata",
                "-1",
                "-f",
                "mp3",
            ])
            .arg(file_url(&mp3))
            .timeout(self.settings.timeout);
        self.ffmpeg(encode, &[(&raw, "speech"), (&mp3, "output")], ctx)
            .await?;
        let duration = samples.len() as f64 / f64::from(SAMPLE_RATE);
        let mut output = output_file(
            SPEECH_FILE,
            OutputRole::Main,
            OutputKind::Audio,
            "audio/mpeg",
            mp3,
        );
        output.details = Some(json!({
            "duration_seconds": (duration * 1000.0).round() / 1000.0,
            "voice": voice,
        }));
        Ok(vec![output])
    }
}

/// The espeak-ng voice for a request: `language+voice` when both are given
/// (the voice then being a variant such as `f3`), else whichever is.
pub(crate) fn espeak_voice(voice: Option<&str>, language: Option<&str>) -> String {
    match (voice, language) {
        (Some(voice), Some(language)) if !voice.contains('+') => {
            format!("{}+{voice}", language.to_ascii_lowercase())
        }
        (Some(voice), _) => voice.to_owned(),
        (None, Some(language)) => language.to_ascii_lowercase(),
        (None, None) => DEFAULT_VOICE.to_owned(),
    }
}

/// The text in pieces of at most `max_chars` characters, cut between
/// sentences (a sentence longer than that, between words).
pub(super) fn pieces(text: &str, max_chars: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_chars = 0;
    let mut push = |current: &mut String, current_chars: &mut usize| {
        let piece = current.trim();
        if !piece.is_empty() {
            pieces.push(piece.to_owned());
        }
        current.clear();
        *current_chars = 0;
    };
    for sentence in text.split_sentence_bounds() {
        let chars = sentence.chars().count();
        if current_chars + chars > max_chars {
            push(&mut current, &mut current_chars);
        }
        if chars <= max_chars {
            current.push_str(sentence);
            current_chars += chars;
            continue;
        }
        for word in sentence.split_word_bounds() {
            let chars = word.chars().count();
            if current_chars + chars > max_chars {
                push(&mut current, &mut current_chars);
            }
            // A "word" longer than a piece (no spaces at all) is cut anywhere.
            for c in word.chars() {
                if current_chars == max_chars {
                    push(&mut current, &mut current_chars);
                }
                current.push(c);
                current_chars += 1;
            }
        }
    }
    push(&mut current, &mut current_chars);
    pieces
}

/// Fades a piece in and out over [`SEAM_SECS`].
fn fade_edges(samples: &mut [f32]) {
    let n = ((SAMPLE_RATE as f32 * SEAM_SECS) as usize).min(samples.len() / 2);
    let len = samples.len();
    for i in 0..n {
        let gain = i as f32 / n as f32;
        samples[i] *= gain;
        samples[len - 1 - i] *= gain;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cut_between_sentences_and_keep_every_character() {
        let text = "One two three. Four five six! Seven eight nine? Ten.";
        let got = pieces(text, 30);
        assert_eq!(
            got,
            ["One two three. Four five six!", "Seven eight nine? Ten."]
        );
        let long = "word ".repeat(300);
        let got = pieces(&long, 100);
        assert!(got.iter().all(|p| p.chars().count() <= 100), "{got:?}");
        assert_eq!(got.join(" ").split_whitespace().count(), 300);
        let unbroken = "x".repeat(250);
        assert_eq!(pieces(&unbroken, 100).concat(), unbroken);
    }

    #[test]
    fn voices_from_voice_and_language() {
        assert_eq!(espeak_voice(None, None), "en");
        assert_eq!(espeak_voice(None, Some("de")), "de");
        assert_eq!(espeak_voice(None, Some("pt-BR")), "pt-br");
        assert_eq!(espeak_voice(Some("f3"), Some("de")), "de+f3");
        assert_eq!(espeak_voice(Some("en+f3"), Some("de")), "en+f3");
        assert_eq!(espeak_voice(Some("fr"), None), "fr");
    }

    #[test]
    fn seams_start_and_end_silent() {
        let mut samples = vec![1.0; 1000];
        fade_edges(&mut samples);
        assert_eq!(samples[0], 0.0);
        assert_eq!(samples[999], 0.0);
        assert_eq!(samples[500], 1.0);
    }
}
