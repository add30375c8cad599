//! Text → spoken MP3: espeak-ng synthesises a WAV, ffmpeg encodes it.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::diagnostics::{summarize_stderr, tool_error};
use crate::error::MediaError;
use crate::probe::{file_url, probe};
use crate::process::{Tool, ToolError};
use crate::still::{remove_quietly, Progress};

pub(crate) const SPEECH_FILE: &str = "speech.mp3";
/// Hidden scratch files, like the still renderer's, so a crash that skips the
/// cleanup leaves nothing that looks like an output.
const TEXT_SCRATCH: &str = ".speech-text.txt";
const WAV_SCRATCH: &str = ".speech.wav";

pub const DEFAULT_VOICE: &str = "en";
/// espeak-ng's own default rate; `speed` 1.0 means exactly this.
const BASE_WPM: f64 = 175.0;
pub const MIN_SPEED: f64 = 0.5;
pub const MAX_SPEED: f64 = 2.0;
/// The longest text one job speaks, in characters.
pub const MAX_TEXT_CHARS: u64 = 5000;
/// An espeak-ng voice name, optionally with a `+variant`: it never reaches
/// the command line looking like an option.
static VOICE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_+-]{0,39}$").expect("a valid pattern"));

const SYNTHESIZED_PCT: u8 = 10;
const ENCODED_PCT: u8 = 90;

#[derive(Debug, Clone)]
pub struct SpeechSettings {
    pub espeak: PathBuf,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// Limit for each program run.
    pub timeout: Duration,
    /// Longest accepted text, in characters.
    pub max_chars: usize,
}

impl Default for SpeechSettings {
    fn default() -> Self {
        SpeechSettings {
            espeak: PathBuf::from("espeak-ng"),
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
            timeout: Duration::from_secs(60),
            max_chars: MAX_TEXT_CHARS as usize,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    /// `out_dir/speech.mp3`.
    pub audio: PathBuf,
    pub duration_secs: f64,
}

/// A `text_to_speech` job's input. Its JSON Schema (what submissions are
/// checked against) and its limits come from these fields;
/// [`synthesize_speech`] checks the same limits for direct callers.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct SpeechInput {
    /// The text to speak.
    #[validate(length(min = 1, max = MAX_TEXT_CHARS))]
    pub text: String,
    /// An espeak-ng voice, e.g. en, en-us, de, fr (optionally `+variant`).
    #[validate(regex(path = *VOICE_NAME), custom(function = "installed_voice"))]
    pub voice: Option<String>,
    /// 1 is espeak-ng's normal rate.
    #[validate(range(min = MIN_SPEED, max = MAX_SPEED))]
    pub speed: Option<f64>,
}

/// A voice espeak-ng has here (checked after the pattern, so the name is
/// never mistaken for an option).
fn installed_voice(voice: &str) -> Result<(), validator::ValidationError> {
    if !VOICE_NAME.is_match(voice) {
        return Ok(());
    }
    crate::voices::check_installed_voice(voice)
        .map_err(|why| validator::ValidationError::new("voice").with_message(why.into()))
}

fn invalid(msg: impl Into<String>) -> MediaError {
    MediaError::InvalidInput(msg.into())
}

/// Speaks `text` into `out_dir/speech.mp3`.
///
/// `voice` is an espeak-ng voice (`en`, `en-us`, `de`, `fr`, optionally with
/// a `+variant`), default `en`; `speed` multiplies espeak-ng's normal rate
/// (0.5–2.0). `progress` receives strictly rising values in 0..=99. On error
/// no output file is left behind.
pub async fn synthesize_speech(
    text: &str,
    voice: Option<&str>,
    speed: Option<f64>,
    out_dir: &Path,
    settings: &SpeechSettings,
    progress: &(dyn Fn(u8) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<Speech, MediaError> {
    // Everything the caller got wrong is reported before any program runs.
    let text = checked_text(text, settings.max_chars)?;
    let wpm = words_per_minute(speed)?;
    let voice = voice.unwrap_or(DEFAULT_VOICE);
    check_voice_syntax(voice)?;

    let out_dir = not_an_option(out_dir);
    let text_file = out_dir.join(TEXT_SCRATCH);
    let wav = out_dir.join(WAV_SCRATCH);
    let mp3 = out_dir.join(SPEECH_FILE);
    let job = Synthesis {
        text: &text,
        voice,
        wpm,
        text_file: &text_file,
        wav: &wav,
        mp3: &mp3,
    };
    let result = job
        .run(settings, &mut Progress::new(progress), cancel)
        .await;
    remove_quietly(&text_file).await;
    remove_quietly(&wav).await;
    if result.is_err() {
        remove_quietly(&mp3).await;
    }
    result
}

struct Synthesis<'a> {
    text: &'a str,
    voice: &'a str,
    wpm: u32,
    text_file: &'a Path,
    wav: &'a Path,
    mp3: &'a Path,
}

impl Synthesis<'_> {
    async fn run(
        &self,
        settings: &SpeechSettings,
        progress: &mut Progress<'_>,
        cancel: &CancellationToken,
    ) -> Result<Speech, MediaError> {
        let voice = resolve_voice(settings, self.voice, cancel).await?;
        tokio::fs::write(self.text_file, self.text).await?;

        // The text goes in through a file, never argv, so a text such as
        // "--help" or "-w /etc/x" is spoken rather than parsed as options.
        let espeak = Tool::new(&settings.espeak)
            .args(["-b", "1", "-v", &voice, "-s", &self.wpm.to_string(), "-w"])
            .arg(self.wav)
            .arg("-f")
            .arg(self.text_file)
            .timeout(settings.timeout);
        let paths = [(self.text_file, "text"), (self.wav, "output")];
        run_tool(espeak, &settings.espeak, &paths, "speech synthesis", cancel).await?;
        progress.report(SYNTHESIZED_PCT);

        let ffmpeg = Tool::new(&settings.ffmpeg)
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(file_url(self.wav))
            // VBR ~165 kb/s at 44.1 kHz, much less for espeak's 22 kHz mono:
            // clear speech without CBR's waste on pauses.
            .args(["-map", "0:a:0", "-c:a", "libmp3lame", "-q:a", "4"])
            .args(["-map_metadata", "-1", "-f", "mp3"])
            .arg(file_url(self.mp3))
            .timeout(settings.timeout);
        let paths = [(self.wav, "speech"), (self.mp3, "output")];
        run_tool(
            ffmpeg,
            &settings.ffmpeg,
            &paths,
            "encoding the speech",
            cancel,
        )
        .await?;
        progress.report(ENCODED_PCT);

        let duration_secs = mp3_duration(settings, self.mp3, cancel).await?;
        Ok(Speech {
            audio: self.mp3.to_owned(),
            duration_secs,
        })
    }
}

/// Speaks one piece of text into `wav` with espeak-ng, without encoding it:
/// a long text's pieces are joined by the caller. `voice` as for
/// [`synthesize_speech`]; the text file goes beside `wav`.
pub(crate) async fn espeak_wav(
    text: &str,
    voice: &str,
    speed: Option<f64>,
    wav: &Path,
    settings: &SpeechSettings,
    cancel: &CancellationToken,
) -> Result<(), MediaError> {
    let text = checked_text(text, usize::MAX)?;
    let wpm = words_per_minute(speed)?;
    check_voice_syntax(voice)?;
    let voice = resolve_voice(settings, voice, cancel).await?;
    let wav = not_an_option(wav);
    let text_file = wav.with_extension("txt");
    tokio::fs::write(&text_file, &text).await?;
    let espeak = Tool::new(&settings.espeak)
        .args(["-b", "1", "-v", &voice, "-s", &wpm.to_string(), "-w"])
        .arg(&wav)
        .arg("-f")
        .arg(&text_file)
        .timeout(settings.timeout);
    let paths = [(text_file.as_path(), "text"), (wav.as_path(), "output")];
    let result = run_tool(espeak, &settings.espeak, &paths, "speech synthesis", cancel).await;
    remove_quietly(&text_file).await;
    result
}

/// Runs a step, turning its failure into an error a user can read.
async fn run_tool(
    tool: Tool,
    program: &Path,
    paths: &[(&Path, &str)],
    step: &str,
    cancel: &CancellationToken,
) -> Result<(), MediaError> {
    match tool.run(cancel, |_| {}).await {
        Ok(_) => Ok(()),
        Err(ToolError::Failed {
            stderr_tail,
            status,
            ..
        }) => {
            tracing::warn!(%status, stderr = %stderr_tail, "{step} failed");
            let reason = summarize_stderr(&stderr_tail, paths);
            Err(MediaError::Render(format!("{step} failed: {reason}")))
        }
        Err(e) => Err(tool_error(e, program)),
    }
}

async fn mp3_duration(
    settings: &SpeechSettings,
    mp3: &Path,
    cancel: &CancellationToken,
) -> Result<f64, MediaError> {
    let info = match probe(&settings.ffprobe, mp3, settings.timeout, cancel).await {
        Ok(info) => info,
        Err(ToolError::Failed { stderr_tail, .. }) => {
            let reason = summarize_stderr(&stderr_tail, &[(mp3, "speech")]);
            return Err(MediaError::Render(format!(
                "the encoded speech is unreadable: {reason}"
            )));
        }
        Err(ToolError::InvalidOutput { reason, .. }) => {
            return Err(MediaError::Render(format!(
                "the encoded speech is unreadable: {reason}"
            )))
        }
        Err(e) => return Err(tool_error(e, &settings.ffprobe)),
    };
    info.first_audio()
        .and_then(|s| s.duration)
        .or(info.duration)
        .filter(|d| *d > 0.0)
        .ok_or_else(|| MediaError::Render("the encoded speech has no length".into()))
}

/// The text to speak: trimmed, with control characters (which espeak-ng
/// would otherwise pronounce or choke on) turned into spaces.
fn checked_text(text: &str, max_chars: usize) -> Result<String, MediaError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("\"text\" is empty"));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(invalid(format!(
            "\"text\" is too long ({chars} characters; at most {max_chars})"
        )));
    }
    Ok(text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect())
}

fn words_per_minute(speed: Option<f64>) -> Result<u32, MediaError> {
    let speed = speed.unwrap_or(1.0);
    if !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
        return Err(invalid(format!(
            "\"speed\" must be between {MIN_SPEED} and {MAX_SPEED} (got {speed})"
        )));
    }
    Ok((BASE_WPM * speed).round() as u32)
}

fn check_voice_syntax(voice: &str) -> Result<(), MediaError> {
    if VOICE_NAME.is_match(voice) {
        Ok(())
    } else {
        Err(invalid(
            "\"voice\" must be an espeak-ng voice name such as \"en\" or \"de\" \
             (letters, digits, '_', '+' and '-', at most 40 characters)",
        ))
    }
}

/// The installed voice `voice` names, spelled as espeak-ng lists it.
///
/// espeak-ng silently falls back to a default for an unknown `+variant`, so
/// both halves are checked against its own lists. Listing takes ~10 ms, so
/// nothing is cached and newly installed voices work at once.
async fn resolve_voice(
    settings: &SpeechSettings,
    voice: &str,
    cancel: &CancellationToken,
) -> Result<String, MediaError> {
    let (base, variant) = match voice.split_once('+') {
        Some((b, v)) => (b, Some(v)),
        None => (voice, None),
    };
    let unknown = || invalid(format!("unknown voice \"{voice}\""));
    let voices = list_voices(settings, "--voices", cancel).await?;
    let mut resolved = parse_voice_names(&voices)
        .into_iter()
        .find(|name| name.eq_ignore_ascii_case(base))
        .ok_or_else(unknown)?;
    if let Some(variant) = variant {
        let variants = list_voices(settings, "--voices=variant", cancel).await?;
        let variant = parse_variant_names(&variants)
            .into_iter()
            .find(|name| name.eq_ignore_ascii_case(variant))
            .ok_or_else(unknown)?;
        resolved = format!("{resolved}+{variant}");
    }
    Ok(resolved)
}

async fn list_voices(
    settings: &SpeechSettings,
    flag: &str,
    cancel: &CancellationToken,
) -> Result<String, MediaError> {
    Tool::new(&settings.espeak)
        .arg(flag)
        .timeout(settings.timeout)
        .run_capture(cancel)
        .await
        .map_err(|e| match e {
            ToolError::Failed { stderr_tail, .. } => MediaError::Render(format!(
                "could not list the installed voices: {}",
                summarize_stderr(&stderr_tail, &[])
            )),
            e => tool_error(e, &settings.espeak),
        })
}

/// Names usable with `-v` from `espeak-ng --voices`: each voice's language
/// (`en-us`), its other languages (`(en 2)` → `en`) and its name (`German`).
/// Columns: Pty, Language, Age/Gender, VoiceName, File, Other Languages.
pub(crate) fn parse_voice_names(listing: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in listing.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 {
            continue;
        }
        names.push(cols[1].to_owned());
        names.push(cols[3].to_owned());
        // Only the trailing column is parsed for parentheses: voice names
        // like "English_(America)" contain them too.
        for other in cols[5..].join(" ").split('(').skip(1) {
            if let Some(lang) = other.split([' ', ')']).next().filter(|l| !l.is_empty()) {
                names.push(lang.to_owned());
            }
        }
    }
    names
}

/// Variant names from `espeak-ng --voices=variant`, whose File column reads
/// `!v/f3`.
pub(crate) fn parse_variant_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(4)?.strip_prefix("!v/"))
        .map(str::to_owned)
        .collect()
}

/// A path espeak-ng can't mistake for an option (it has no `--` and no
/// `file:` prefix like ffmpeg): relative paths get a leading `./`.
fn not_an_option(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        Path::new(".").join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOICES: &str = "\
Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  de              --/M      German             gmw/de
 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)
 5  en-gb-x-rp      --/M      English_(Received_Pronunciation) gmw/en-GB-x-rp       (en-gb 4)(en 5)
 5  fr-fr           --/M      French_(France)    roa/fr               (fr 5)
";

    #[test]
    fn voice_listing_yields_languages_names_and_aliases() {
        let names = parse_voice_names(VOICES);
        for expected in ["de", "German", "en-gb", "en", "fr-fr", "fr", "en-gb-x-rp"] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
        for unexpected in ["Great_Britain", "France", "2", "gmw/de", "Language"] {
            assert!(!names.iter().any(|n| n == unexpected), "{unexpected}");
        }
    }

    #[test]
    fn variant_listing_yields_file_names() {
        let listing = "Pty Language       Age/Gender VoiceName          File                 Other Languages\n \
                       5  variant         --/M      Adam               !v/adam\n \
                       5  variant         --/F      f3                 !v/f3\n";
        assert_eq!(parse_variant_names(listing), ["adam", "f3"]);
    }

    #[test]
    fn voice_syntax() {
        for ok in ["en", "en-us", "de", "en+f3", "zh_yue", &"a".repeat(40)] {
            assert!(check_voice_syntax(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-v", "+f3", "en us", "gmw/de", "en;rm", &"a".repeat(41)] {
            let err = check_voice_syntax(bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_INPUT", "{bad}");
        }
    }

    #[test]
    fn speed_maps_to_words_per_minute() {
        assert_eq!(words_per_minute(None).unwrap(), 175);
        assert_eq!(words_per_minute(Some(0.5)).unwrap(), 88);
        assert_eq!(words_per_minute(Some(2.0)).unwrap(), 350);
        for bad in [0.49, 2.01, 5.0, 0.0, -1.0, f64::NAN] {
            assert!(words_per_minute(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_trimmed_and_control_characters_blanked() {
        assert_eq!(checked_text("  a\tb\u{0}c\nd ", 10).unwrap(), "a b c\nd");
        assert!(checked_text(" \n\t", 10).is_err());
        assert!(checked_text("ééééé", 5).is_ok());
        assert!(checked_text("éééééé", 5).is_err());
    }

    #[test]
    fn voice_names_look_like_voices_not_options() {
        for ok in [
            "en",
            "en-us",
            "de+f3",
            "English_(x)".split('(').next().unwrap(),
        ] {
            assert!(check_voice_syntax(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-w", "+f3", "en us", "a/b", &"x".repeat(41)] {
            assert!(check_voice_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths_cannot_look_like_options() {
        assert_eq!(not_an_option(Path::new("-w/x")), Path::new("./-w/x"));
        assert_eq!(not_an_option(Path::new("/tmp/x")), Path::new("/tmp/x"));
    }
}
