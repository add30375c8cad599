//! render: genq's still-image renderer against the common ffmpeg recipe and
//! against the floor (the audio transcode every MP4 with AAC sound needs).

use anyhow::{bail, Context};
use genq_media::{render_still_video, RenderSettings};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::inputs::{self, ffmpeg, path_str};
use crate::stats::Summary;
use crate::table::{Row, Target};
use crate::Plan;

pub async fn run(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let work = dir.join("render");
    tokio::fs::create_dir_all(&work).await?;
    let photo = inputs::photo(&work).await?;
    let settings = RenderSettings {
        // A busy machine must not turn a slow render into a broken one.
        timeout: Duration::from_secs(3600),
        ..RenderSettings::default()
    };
    let mut rows = Vec::new();
    for &secs in &plan.render_secs {
        let audio = inputs::mp3(&work, secs).await?;
        let mut genq = Vec::new();
        let mut floor = Vec::new();
        // Interleaved, so a burst of load elsewhere hits both sides of the
        // ratio rather than one.
        for i in 0..plan.render_runs {
            let t = render_genq(
                &photo,
                &audio,
                &work.join(format!("genq-{secs}s")),
                &settings,
            )
            .await
            .with_context(|| format!("genq render of {secs} s"))?;
            eprintln!("  render {secs} s, run {}: genq {:.2} s", i + 1, t);
            genq.push(t);
            let t = audio_floor(&audio, &work, settings.audio_bitrate_kbps).await?;
            eprintln!("  render {secs} s, run {}: floor {:.2} s", i + 1, t);
            floor.push(t);
        }
        let genq = Summary::of(&genq).context("no genq runs")?;
        let floor = Summary::of(&floor).context("no floor runs")?;
        let ratio = genq.median / floor.median;
        rows.push(
            Row::new(format!("render {secs} s: genq"), genq, "s")
                .decimals(2)
                .ratio("genq/floor", ratio)
                .target(Target::at_most(ratio, 1.5, "≤ 1.5×")),
        );
        rows.push(Row::new(format!("render {secs} s: floor, audio→AAC"), floor, "s").decimals(2));
        if plan.recipe_for(secs) {
            let t = recipe(&photo, &audio, &work).await?;
            eprintln!("  render {secs} s: recipe {t:.2} s");
            let recipe = Summary::of(&[t]).expect("one sample");
            rows.push(
                Row::new(format!("render {secs} s: recipe, -loop 1"), recipe, "s")
                    .decimals(2)
                    .ratio("recipe/genq", recipe.median / genq.median),
            );
        }
    }
    Ok(rows)
}

/// Seconds for genq's renderer, called as the worker calls it; the poster
/// and thumbnail it also writes are part of its job, so part of its time.
async fn render_genq(
    photo: &Path,
    audio: &Path,
    out: &Path,
    settings: &RenderSettings,
) -> anyhow::Result<f64> {
    tokio::fs::create_dir_all(out).await?;
    let started = Instant::now();
    let video = render_still_video(
        photo,
        audio,
        out,
        settings,
        &|_| {},
        &CancellationToken::new(),
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let size = tokio::fs::metadata(&video.video).await?.len();
    if size == 0 || video.duration_secs <= 0.0 {
        bail!("the renderer produced an empty video");
    }
    tokio::fs::remove_dir_all(out).await?;
    Ok(elapsed)
}

/// The least any MP4-with-AAC render of this audio costs: transcoding the
/// sound alone, at genq's audio bitrate.
async fn audio_floor(audio: &Path, work: &Path, kbps: u32) -> anyhow::Result<f64> {
    let out = work.join("floor.m4a");
    let bitrate = format!("{kbps}k");
    let args = [
        "-i",
        path_str(audio)?,
        "-vn",
        "-c:a",
        "aac",
        "-b:a",
        &bitrate,
        path_str(&out)?,
    ];
    let t = ffmpeg(&args).await?.as_secs_f64();
    tokio::fs::remove_file(&out).await?;
    Ok(t)
}

/// The recipe most tutorials give for "image + audio → video".
async fn recipe(photo: &Path, audio: &Path, work: &Path) -> anyhow::Result<f64> {
    let out = work.join("recipe.mp4");
    let args = [
        "-loop",
        "1",
        "-i",
        path_str(photo)?,
        "-i",
        path_str(audio)?,
        "-c:v",
        "libx264",
        "-tune",
        "stillimage",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        "-pix_fmt",
        "yuv420p",
        "-shortest",
        path_str(&out)?,
    ];
    let t = ffmpeg(&args).await?.as_secs_f64();
    tokio::fs::remove_file(&out).await?;
    Ok(t)
}
