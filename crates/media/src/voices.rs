//! The espeak-ng voices installed on this machine, for checking a voice name
//! at submission: a name espeak-ng lacks is refused there (400 naming the
//! field) rather than failing the job later.
//!
//! Submission checks are synchronous (validator's custom functions), so the
//! listing runs through [`Tool::run_capture_blocking`] while the calling
//! thread waits: ~10 ms, once at first use and again at most every
//! [`RELIST_AFTER`] when a name is not found (a voice installed since then
//! works within seconds). An API node without espeak-ng accepts any
//! well-formed name: the worker's own check at run time still applies.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::process::{Tool, ToolError};
use crate::speech::{parse_variant_names, parse_voice_names};

/// A name not found is looked up afresh at most this often.
const RELIST_AFTER: Duration = Duration::from_secs(10);
/// espeak-ng lists its voices in milliseconds; past this it is stuck.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

struct Listing {
    listed_at: Instant,
    voices: Vec<String>,
    variants: Vec<String>,
}

static INSTALLED: Mutex<Option<Listing>> = Mutex::new(None);

/// Whether espeak-ng here speaks `voice`: a voice (`en`, `en-us`,
/// `German`) or a voice with a variant (`en+f3`). `Err` says why not; `Ok`
/// also when espeak-ng cannot be listed here.
pub fn check_installed_voice(voice: &str) -> Result<(), String> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    let stale = installed
        .as_ref()
        .is_none_or(|l| l.listed_at.elapsed() >= RELIST_AFTER);
    if installed.is_none() || (stale && !knows(installed.as_ref(), voice)) {
        match list() {
            Some(listing) => *installed = Some(listing),
            None => return Ok(()),
        }
    }
    if knows(installed.as_ref(), voice) {
        Ok(())
    } else {
        Err(format!(
            "espeak-ng has no voice {voice:?} here (`espeak-ng --voices` lists them; a variant follows a '+', as in \"en+f3\")"
        ))
    }
}

fn knows(listing: Option<&Listing>, voice: &str) -> bool {
    let Some(listing) = listing else {
        return false;
    };
    let has = |names: &[String], name: &str| names.iter().any(|n| n.eq_ignore_ascii_case(name));
    match voice.split_once('+') {
        Some((base, variant)) => has(&listing.voices, base) && has(&listing.variants, variant),
        None => has(&listing.voices, voice),
    }
}

fn list() -> Option<Listing> {
    let voices = run_espeak("--voices")?;
    let variants = run_espeak("--voices=variant")?;
    Some(Listing {
        listed_at: Instant::now(),
        voices: parse_voice_names(&voices),
        variants: parse_variant_names(&variants),
    })
}

/// `espeak-ng FLAG`'s output, or None when it cannot run or fails.
fn run_espeak(flag: &str) -> Option<String> {
    let listed = Tool::new("espeak-ng")
        .arg(flag)
        .timeout(LIST_TIMEOUT)
        .run_capture_blocking();
    if let Err(ToolError::Timeout { .. }) = &listed {
        tracing::warn!("espeak-ng {flag} did not answer within {LIST_TIMEOUT:?}");
    }
    listed.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_voices_and_variants_are_known_and_others_are_not() {
        if list().is_none() {
            panic!("espeak-ng is not installed (scripts/deps installs it)");
        }
        for voice in ["en", "EN-us", "de", "en+f3", "German"] {
            assert_eq!(check_installed_voice(voice), Ok(()), "{voice}");
        }
        for voice in ["nosuchvoice", "f3", "en+nosuchvariant", "xx-yy"] {
            let error = check_installed_voice(voice).unwrap_err();
            assert!(error.contains(voice), "{error}");
        }
    }
}
