//! genq's media renderers and the single wrapper through which every
//! external tool (ffmpeg, ffprobe, …) is run.

mod error;
mod frame;
mod handler;
mod probe;
mod process;
mod still;

pub use error::MediaError;
pub use handler::ImageAudioVideo;
pub use probe::{probe, MediaInfo, StreamInfo};
pub use process::{Tool, ToolError, ToolOutput};
pub use still::{render_still_video, RenderSettings, StillVideo};
