//! genq's media renderers and the single wrapper through which every
//! external tool (ffmpeg, ffprobe, espeak-ng, …) is run.

mod diagnostics;
mod error;
mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod h264;
mod handler;
mod models;
mod mp4;
mod probe;
mod process;
mod speech;
mod still;
mod template_render;
mod title_card;
mod voices;

pub use error::MediaError;
pub use handler::{ImageAudioInput, ImageAudioVideo, TextToSpeech, TitleCardVideo, UploadedFile};
pub use models::{builtin_models, submission_checks};
pub use probe::{probe, MediaInfo, StreamInfo};
pub use process::{Tool, ToolError, ToolOutput};
pub use speech::{synthesize_speech, Speech, SpeechInput, SpeechSettings, DEFAULT_VOICE};
pub use still::{render_still_video, render_still_video_full_encode, RenderSettings, StillVideo};
pub use template_render::audio::{
    effect_chain, mix_graph, soundtrack, voice_track, Music, MUSIC_FADE_OUT_SECS,
};
pub use template_render::{
    BackgroundMusic, PictureType, TemplateOutput, TemplateRenderInput, TemplateRenderer,
};
pub use title_card::{
    render_title_card, Resolution, TitleCard, TitleCardInput, COLOUR_NAMES, MAX_PROMPT_CHARS,
};
