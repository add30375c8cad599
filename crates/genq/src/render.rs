//! `genq render`: the still-image renderer without a server.

use anyhow::Context;
use clap::Args;
use genq_media::{render_still_video, RenderSettings};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// A JPEG, PNG or WebP image
    #[arg(long)]
    pub image: PathBuf,
    /// An MP3, WAV, M4A or OGG file
    #[arg(long)]
    pub audio: PathBuf,
    /// Where to write the MP4 (a poster and a thumbnail JPEG are written beside it)
    #[arg(long)]
    pub out: PathBuf,
    /// Longest side of the video, in pixels
    #[arg(long, default_value_t = 1920)]
    pub max_long_side: u32,
}

pub async fn run(args: RenderArgs) -> anyhow::Result<()> {
    let out_dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let scratch =
        tempfile::tempdir_in(out_dir).context("creating a scratch directory beside --out")?;
    let settings = RenderSettings {
        max_long_side: args.max_long_side,
        ..RenderSettings::default()
    };
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let terminal = std::io::stderr().is_terminal();
    let progress = move |pct: u8| {
        if terminal {
            eprint!("\rrendering… {pct:>3}%");
            let _ = std::io::stderr().flush();
        }
    };
    let started = std::time::Instant::now();
    let video = render_still_video(
        &args.image,
        &args.audio,
        scratch.path(),
        &settings,
        &progress,
        &cancel,
    )
    .await;
    if terminal {
        eprintln!();
    }
    let video = video?;
    let stem = args
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    std::fs::rename(&video.video, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    std::fs::rename(&video.poster, out_dir.join(format!("{stem}.poster.jpg")))?;
    std::fs::rename(
        &video.thumbnail,
        out_dir.join(format!("{stem}.thumbnail.jpg")),
    )?;
    eprintln!(
        "{}: {}×{}, {:.2} s, rendered in {:.2} s",
        args.out.display(),
        video.width,
        video.height,
        video.duration_secs,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
