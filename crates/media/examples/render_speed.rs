//! How long `render_still_video` takes for a 1920×1080 JPEG and an MP3,
//! against the floor (the audio alone transcoded to AAC at genq's settings)
//! and the common one-command ffmpeg recipe.
//!
//! `cargo run --release -p genq-media --example render_speed [-- [--quick] SECS...]`
//! (default 60 and 180 seconds of audio; `--quick` skips the slow full
//! encode and recipe). CPU time (this process and its children, from
//! /proc) is printed too: unlike wall time it hardly depends on what else
//! the machine is doing. The machine may be busy with
//! other work, so floor and render runs alternate and the ratios are of
//! medians taken in the same run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use genq_media::{render_still_video, render_still_video_full_encode, RenderSettings};
use tokio_util::sync::CancellationToken;

const RUNS: usize = 3;

/// User + system CPU time of this process and its waited-for children.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    // Fields after the parenthesised command name; utime is the 14th field.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11..15]
        .iter()
        .map(|f| f.parse::<u64>().unwrap())
        .sum();
    // USER_HZ is 100 on every Linux that matters here.
    Duration::from_millis(ticks * 10)
}

/// Wall and CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    let out = f();
    (out, wall.elapsed(), cpu_time() - cpu)
}

fn ffmpeg(args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let lengths: Vec<f64> = args
        .iter()
        .filter(|a| *a != "--quick")
        .map(|a| a.parse().expect("audio lengths in seconds"))
        .collect();
    let lengths = if lengths.is_empty() {
        vec![60.0, 180.0]
    } else {
        lengths
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Fine detail and noise, so the one encoded picture costs what a photo
    // would rather than what a flat test card does.
    let image = dir.join("photo.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=1920x1080,noise=alls=12:allf=t",
        "-frames:v",
        "1",
        "-q:v",
        "3",
        s(&image),
    ]);
    let settings = RenderSettings::default();
    let bitrate = format!("{}k", settings.audio_bitrate_kbps);

    for secs in lengths {
        let audio = dir.join(format!("audio-{secs}.mp3"));
        let src = format!(
            "sine=f=220:d={secs}[a];anoisesrc=c=pink:a=0.08:d={secs}[b];\
             [a][b]amix=inputs=2,aformat=channel_layouts=stereo:sample_rates=44100"
        );
        ffmpeg(&[
            "-filter_complex",
            &src,
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            s(&audio),
        ]);
        let floor_out = dir.join("floor.m4a");
        let (mut floors, mut renders) = (Vec::new(), Vec::new());
        let (mut floor_cpu, mut genq_cpu) = (Vec::new(), Vec::new());
        for i in 0..RUNS {
            let ((), wall, cpu) = timed(|| {
                ffmpeg(&[
                    "-i",
                    s(&audio),
                    "-c:a",
                    "aac",
                    "-b:a",
                    &bitrate,
                    s(&floor_out),
                ]);
            });
            floors.push(wall);
            floor_cpu.push(cpu);
            let out = dir.join(format!("genq-{secs}-{i}"));
            std::fs::create_dir_all(&out).unwrap();
            let (started, cpu) = (Instant::now(), cpu_time());
            render_still_video(
                &image,
                &audio,
                &out,
                &settings,
                &|_| {},
                &CancellationToken::new(),
            )
            .await
            .expect("render");
            renders.push(started.elapsed());
            genq_cpu.push(cpu_time() - cpu);
        }
        let (floor, genq) = (median(floors.clone()), median(renders.clone()));
        let (floor_c, genq_c) = (median(floor_cpu.clone()), median(genq_cpu.clone()));
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!("{secs} s of audio, 1920×1080 JPEG");
        println!("  floor (audio → AAC)   {floor:>9.2?}  runs {floors:.2?}  cpu {floor_c:.2?}");
        println!("  genq render           {genq:>9.2?}  runs {renders:.2?}  cpu {genq_c:.2?}");
        println!(
            "  genq / floor          {:>8.2}×  cpu {:.2}×",
            ratio(genq, floor),
            ratio(genq_c, floor_c)
        );
        if quick {
            continue;
        }
        let out = dir.join(format!("full-{secs}"));
        std::fs::create_dir_all(&out).unwrap();
        let started = Instant::now();
        render_still_video_full_encode(
            &image,
            &audio,
            &out,
            &settings,
            &|_| {},
            &CancellationToken::new(),
        )
        .await
        .expect("full encode");
        let full = started.elapsed();
        let recipe_out = dir.join("recipe.mp4");
        let recipe = ffmpeg(&[
            "-loop",
            "1",
            "-i",
            s(&image),
            "-i",
            s(&audio),
            "-c:v",
            "libx264",
            "-tune",
            "stillimage",
            "-c:a",
            "aac",
            "-b:a",
            &bitrate,
            "-pix_fmt",
            "yuv420p",
            "-shortest",
            s(&recipe_out),
        ]);

        println!("  genq full encode      {full:>9.2?}");
        println!("  common recipe         {recipe:>9.2?}");
        println!("  full encode / floor   {:>8.2}×", ratio(full, floor));
        println!("  recipe / floor        {:>8.2}×", ratio(recipe, floor));
        println!("  recipe / genq         {:>8.2}×", ratio(recipe, genq));
    }
}
