//! Image analysis for genq's Provider job types: faces, a photo's quality
//! check, and the pixels of the built-in talking-head animation. Plain CPU
//! work, synchronous: callers run it on a blocking thread.

mod decode;
pub mod faces;
mod grey;
pub mod qc;
pub mod talking;

pub use decode::MAX_PIXELS;
pub use faces::{detect_faces, FaceBox};
pub use qc::{check_photo, check_photo_with, decode, PhotoReport, QcThresholds};
pub use talking::{openness_envelope, Rect, TalkingHead};
