//! genq's media renderers and the single wrapper through which every
//! external tool (ffmpeg, ffprobe, espeak-ng, …) is run.

mod diagnostics;
mod error;
mod frame;
mod h264;
mod handler;
mod mp4;
mod probe;
mod process;
pub mod sniff;
mod speech;
mod still;
mod title_card;

pub use error::MediaError;
pub use handler::{ImageAudioVideo, TextToSpeech, TitleCardVideo};
pub use probe::{probe, MediaInfo, StreamInfo};
pub use process::{Tool, ToolError, ToolOutput};
pub use speech::{synthesize_speech, Speech, SpeechRequest, SpeechSettings, DEFAULT_VOICE};
pub use still::{render_still_video, render_still_video_full_encode, RenderSettings, StillVideo};
pub use title_card::{render_title_card, TitleCard, COLOUR_NAMES, MAX_PROMPT_CHARS, RESOLUTIONS};
