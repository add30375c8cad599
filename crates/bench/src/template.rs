//! template: a Provider template video (1080×1920: a photo, a rectangle and
//! two text layers over a 60 s voiceover and a 60 s music track), rendered
//! the way the worker renders it, against (a) the floor — ffmpeg mixing the
//! same two tracks with the same volume and ducking filters into AAC alone —
//! and (b) the recipe a developer would write: one ffmpeg command with
//! `-loop 1`, `overlay`, `drawtext`, `amix` and libx264's defaults. Then the
//! same template as PNG, as PDF and as a form's preview: latency over many
//! renders, in process.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use genq_media::{mix_graph, render_still_video, soundtrack, voice_track, Music, RenderSettings};
use genq_template::{Fill, Fonts, Picture, Scene, Template};
use tokio_util::sync::CancellationToken;

use crate::inputs::{self, ffmpeg, path_str};
use crate::stats::{ms, percentile, Summary};
use crate::table::{Row, Target};
use crate::Plan;

const MUSIC_VOLUME: f64 = 0.3;
const HEADLINE: &str = "Spring savings on every bouquet, planter and garden tool";

fn template() -> anyhow::Result<Template> {
    let json = serde_json::json!({
        "type": "video",
        "canvas": {"width": 1080, "height": 1920, "background": "#101820"},
        "fields": {
            "photo": {"label": "Photo", "type": "image"},
            "headline": {"label": "Headline", "type": "text"},
            "voiceover": {"label": "Voiceover", "type": "audio"}
        },
        "layers": [
            {"kind": "image", "field": "photo", "x": 0, "y": 0, "width": 1080, "height": 1350, "fit": "cover"},
            {"kind": "rect", "x": 0, "y": 1350, "width": 1080, "height": 570, "color": "#000000cc"},
            {"kind": "text", "field": "headline", "x": 60, "y": 1400, "width": 960, "height": 300,
             "size": 72, "color": "#ffffff", "align": "center"},
            {"kind": "text", "text": "example.com", "x": 60, "y": 1800, "width": 960, "height": 60,
             "size": 32, "color": "#aaaaaa"}
        ],
        "audio": {"field": "voiceover"}
    });
    Ok(Template::from_json(json.to_string().as_bytes())?)
}

pub async fn run(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let work = dir.join("template");
    tokio::fs::create_dir_all(&work).await?;
    let photo = inputs::photo(&work).await?;
    let secs = plan.template_secs;
    let voice = inputs::mp3(&work, secs).await?;
    let music = music(&work, secs).await?;
    let fonts = Arc::new(Fonts::load(&[]));
    let template = template()?;
    let picture = Picture::from_bytes(tokio::fs::read(&photo).await?)
        .map_err(|why| anyhow::anyhow!("the photo {why}"))?;
    let fill = Fill {
        texts: [("headline".to_owned(), HEADLINE.to_owned())].into(),
        pictures: [("photo".to_owned(), picture)].into(),
        placeholders: false,
    };
    let settings = RenderSettings {
        timeout: Duration::from_secs(3600),
        ..RenderSettings::default()
    };

    let mut genq = Vec::new();
    let mut floor = Vec::new();
    for i in 0..plan.template_runs {
        let t = render_genq(&template, &fill, &fonts, &voice, &music, &work, &settings).await?;
        eprintln!("  template video {secs} s, run {}: genq {t:.2} s", i + 1);
        genq.push(t);
        let t = audio_floor(&voice, &music, secs, &work, settings.audio_bitrate_kbps).await?;
        eprintln!("  template video {secs} s, run {}: floor {t:.2} s", i + 1);
        floor.push(t);
    }
    let genq = Summary::of(&genq).context("no genq runs")?;
    let floor = Summary::of(&floor).context("no floor runs")?;
    let ratio = genq.median / floor.median;
    let mut rows = vec![
        Row::new(format!("template video {secs} s: genq"), genq, "s")
            .decimals(2)
            .ratio("genq/floor", ratio)
            .target(Target::at_most(ratio, 1.5, "≤ 1.5×"))
            .note("frame composed once, voice + ducked music mixed, still-image fast path"),
        Row::new(
            format!("template video {secs} s: floor, mix→AAC"),
            floor,
            "s",
        )
        .decimals(2)
        .note("the same mix filters, AAC only"),
    ];
    let t = recipe(&photo, &voice, &music, secs, &work).await?;
    eprintln!("  template video {secs} s: recipe {t:.2} s");
    let recipe = Summary::of(&[t]).expect("one sample");
    rows.push(
        Row::new(
            format!("template video {secs} s: recipe, overlay+drawtext"),
            recipe,
            "s",
        )
        .decimals(2)
        .ratio("recipe/genq", recipe.median / genq.median),
    );

    let runs = plan.template_latency_runs;
    for (figure, target_ms, draw) in [
        ("template PNG", 100.0, Drawing::Png),
        ("template PDF", 50.0, Drawing::Pdf),
        ("template preview", 100.0, Drawing::Preview),
    ] {
        let fonts = Arc::clone(&fonts);
        let template = template.clone();
        let fill = fill.clone();
        let samples = tokio::task::spawn_blocking(move || {
            (0..runs)
                .map(|_| draw.time(&template, &fill, &fonts))
                .collect::<anyhow::Result<Vec<Duration>>>()
        })
        .await??;
        let mut sorted = samples;
        sorted.sort();
        let p50 = percentile(&sorted, 50.0).map_or(f64::NAN, ms);
        let p99 = percentile(&sorted, 99.0).map_or(f64::NAN, ms);
        eprintln!("  {figure}: p50 {p50:.1} ms, p99 {p99:.1} ms over {runs}");
        rows.push(
            Row::new(
                format!("{figure} p50"),
                Summary::of(&[p50]).expect("one"),
                "ms",
            )
            .decimals(1)
            .note(format!("{runs} renders in process, 1080×1920")),
        );
        rows.push(
            Row::new(
                format!("{figure} p99"),
                Summary::of(&[p99]).expect("one"),
                "ms",
            )
            .decimals(1)
            .target(Target::at_most(p99, target_ms, format!("≤ {target_ms} ms"))),
        );
    }
    Ok(rows)
}

#[derive(Clone, Copy)]
enum Drawing {
    Png,
    Pdf,
    /// Text values only, pictures as placeholders: what a form's preview
    /// draws while its user types.
    Preview,
}

impl Drawing {
    fn time(self, template: &Template, fill: &Fill, fonts: &Fonts) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let bytes = match self {
            Drawing::Png => Scene::compose(template, fill, fonts)?.png()?,
            Drawing::Pdf => Scene::compose(template, fill, fonts)?.pdf()?,
            Drawing::Preview => {
                let preview = Fill {
                    texts: fill.texts.clone(),
                    placeholders: true,
                    ..Fill::default()
                };
                Scene::compose(template, &preview, fonts)?.png()?
            }
        };
        anyhow::ensure!(!bytes.is_empty(), "an empty drawing");
        Ok(started.elapsed())
    }
}

/// Music: a chord under noise, as long as the voice.
async fn music(dir: &Path, secs: u32) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("music-{secs}s.mp3"));
    let source = format!(
        "aevalsrc=0.2*sin(2*PI*523*t)+0.2*sin(2*PI*659*t)+0.03*(random(0)-0.5):s=44100:d={secs}"
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-ac",
        "2",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
        path_str(&path)?,
    ])
    .await?;
    Ok(path)
}

/// Seconds for genq's template video, step by step as the worker runs it
/// (fetching aside): the frame, the voice, the mix, the still video.
async fn render_genq(
    template: &Template,
    fill: &Fill,
    fonts: &Arc<Fonts>,
    voice: &Path,
    music: &Path,
    work: &Path,
    settings: &RenderSettings,
) -> anyhow::Result<f64> {
    let out = work.join("genq");
    tokio::fs::create_dir_all(&out).await?;
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let (template, fill, fonts) = (template.clone(), fill.clone(), Arc::clone(fonts));
    let frame = out.join("frame.png");
    let png = tokio::task::spawn_blocking(move || Scene::compose(&template, &fill, &fonts)?.png())
        .await??;
    tokio::fs::write(&frame, png).await?;
    let voice_wav = out.join("voice.wav");
    let duration = voice_track(voice, &[], &voice_wav, settings, &cancel).await?;
    let mixed = out.join("soundtrack.wav");
    let music = Music {
        path: music.to_owned(),
        start: 0.0,
        volume: MUSIC_VOLUME,
        ducking: true,
    };
    soundtrack(
        Some(&voice_wav),
        Some(&music),
        duration,
        &mixed,
        settings,
        &cancel,
    )
    .await?;
    let video_dir = out.join("video");
    tokio::fs::create_dir_all(&video_dir).await?;
    let video = render_still_video(&frame, &mixed, &video_dir, settings, &|_| {}, &cancel).await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(video.duration_secs > 0.0, "the template video is empty");
    tokio::fs::remove_dir_all(&out).await?;
    Ok(elapsed)
}

/// The least a template video with this soundtrack costs: the same mix
/// (the same filter graph genq runs), encoded to AAC, without a picture.
async fn audio_floor(
    voice: &Path,
    music: &Path,
    secs: u32,
    work: &Path,
    kbps: u32,
) -> anyhow::Result<f64> {
    let out = work.join("floor.m4a");
    let settings = Music {
        path: music.to_owned(),
        start: 0.0,
        volume: MUSIC_VOLUME,
        ducking: true,
    };
    let graph = mix_graph(Some(0), Some(1), Some(&settings), f64::from(secs)).context("a graph")?;
    let bitrate = format!("{kbps}k");
    let duration = secs.to_string();
    let args = [
        "-i",
        path_str(voice)?,
        "-stream_loop",
        "-1",
        "-i",
        path_str(music)?,
        "-filter_complex",
        &graph,
        "-map",
        "[out]",
        "-t",
        &duration,
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

/// One ffmpeg command, as a developer would write the template by hand.
async fn recipe(
    photo: &Path,
    voice: &Path,
    music: &Path,
    secs: u32,
    work: &Path,
) -> anyhow::Result<f64> {
    let out = work.join("recipe.mp4");
    // `-shortest` does not end a graph with endless sources: the length is
    // the voice's, given outright.
    let duration = secs.to_string();
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let graph = format!(
        "color=c=0x101820:s=1080x1920[bg];\
         [0:v]scale=1080:1350:force_original_aspect_ratio=increase,crop=1080:1350[photo];\
         [bg][photo]overlay=0:0:shortest=1,\
         drawbox=x=0:y=1350:w=1080:h=570:color=black@0.8:t=fill,\
         drawtext=fontfile={font}:text='{HEADLINE}':fontsize=48:fontcolor=white:x=(w-text_w)/2:y=1420,\
         drawtext=fontfile={font}:text='example.com':fontsize=32:fontcolor=0xaaaaaa:x=60:y=1800[v];\
         [2:a]volume={MUSIC_VOLUME}[m];[1:a][m]amix=inputs=2:duration=first[a]"
    );
    let args = [
        "-loop",
        "1",
        "-i",
        path_str(photo)?,
        "-i",
        path_str(voice)?,
        "-i",
        path_str(music)?,
        "-filter_complex",
        &graph,
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-t",
        &duration,
        path_str(&out)?,
    ];
    let t = ffmpeg(&args).await?.as_secs_f64();
    tokio::fs::remove_file(&out).await?;
    Ok(t)
}
