//! `genq-bench`: measures genq and prints one table — the renderer against
//! ffmpeg, the HTTP API under load, the queue, the server's memory, live
//! events, template renders and the Provider's model job types.
//!
//! It reports; it never judges. Missing a target is printed, not an error:
//! the exit status is non-zero only when something broke (a crash, a failed
//! request, a render that produced nothing).

mod api;
mod events;
mod graphile;
mod inputs;
mod load;
mod memory;
mod models;
mod pg;
mod pg_queue;
mod queue;
mod render;
mod scaling;
mod server;
mod stats;
mod table;
mod template;

use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use table::Row;

#[derive(Parser, Debug)]
#[command(
    name = "genq-bench",
    about = "Benchmarks genq and prints a table of figures"
)]
struct Args {
    /// A smoke run: one repetition of everything, short inputs (about 2–3 minutes).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Also time the ffmpeg recipe on the 180 s input (adds several minutes).
    #[arg(long)]
    full: bool,
    /// Print the table as Markdown (for BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
    /// Measure only these figures.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Figure>,
    /// The PostgreSQL server of the pg-queue and scaling figures (each run
    /// creates and drops a database of its own on it); "off" skips them
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// Where inputs and data directories go; it should be on the disk genq
    /// would use, since fsync costs are part of the figures [default: the
    /// system temp dir]
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Figure {
    Render,
    Api,
    Queue,
    PgQueue,
    Scaling,
    Memory,
    Events,
    Template,
    Models,
}

impl Figure {
    /// As `--only` spells it ("pg-queue").
    fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_owned())
    }
}

/// How much of everything to do.
#[derive(Debug)]
pub struct Plan {
    pub render_secs: Vec<u32>,
    pub render_runs: usize,
    recipe_up_to_secs: u32,
    pub api_duration: Duration,
    pub api_reps: usize,
    pub connections: usize,
    pub queue_jobs: usize,
    pub latency_jobs: usize,
    pub queue_reps: usize,
    pub upload_runs: usize,
    /// (concurrency, jobs) of each pg-queue configuration.
    pub pg_queue: Vec<(usize, usize)>,
    pub pg_queue_reps: usize,
    /// Worker processes of each scaling configuration.
    pub scaling_workers: Vec<usize>,
    pub scaling_jobs: usize,
    pub scaling_audio_secs: u32,
    /// Changes (each a submission and a cancel) of the event latency figures.
    pub event_changes: usize,
    /// SSE subscribers of the fan-out figure.
    pub event_subscribers: usize,
    /// Seconds of voiceover and music of the template video.
    pub template_secs: u32,
    pub template_runs: usize,
    /// Renders of each template latency figure.
    pub template_latency_runs: usize,
    /// photo_qc jobs of the 12 MP figure (after one not counted).
    pub models_qc_runs: usize,
    /// tts jobs of 1,000 characters.
    pub models_tts_runs: usize,
    /// Seconds of voice of the talking-head video and its plain video.
    pub models_talking_secs: u32,
    pub models_talking_runs: usize,
}

impl Plan {
    fn new(quick: bool, full: bool) -> Plan {
        if quick {
            return Plan {
                render_secs: vec![20],
                render_runs: 1,
                recipe_up_to_secs: 20,
                api_duration: Duration::from_secs(3),
                api_reps: 1,
                connections: 64,
                queue_jobs: 300,
                latency_jobs: 50,
                queue_reps: 1,
                upload_runs: 1,
                pg_queue: vec![(8, 1000)],
                pg_queue_reps: 1,
                scaling_workers: vec![1, 2],
                scaling_jobs: 8,
                scaling_audio_secs: 5,
                event_changes: 50,
                event_subscribers: 200,
                template_secs: 10,
                template_runs: 1,
                template_latency_runs: 10,
                models_qc_runs: 3,
                models_tts_runs: 2,
                models_talking_secs: 10,
                models_talking_runs: 1,
            };
        }
        Plan {
            render_secs: vec![60, 180],
            render_runs: 3,
            // The recipe is slow: on the long input only when asked.
            recipe_up_to_secs: if full { u32::MAX } else { 60 },
            api_duration: Duration::from_secs(10),
            api_reps: 3,
            connections: 64,
            queue_jobs: 2000,
            latency_jobs: 200,
            queue_reps: 3,
            upload_runs: 3,
            // Concurrency 1 is graphile-worker's default; fewer jobs there,
            // as one slot drains slowly on both sides.
            pg_queue: vec![(8, 5000), (1, 1000)],
            pg_queue_reps: 3,
            scaling_workers: vec![1, 2, 4],
            scaling_jobs: 24,
            scaling_audio_secs: 8,
            event_changes: 250,
            event_subscribers: 1000,
            template_secs: 60,
            template_runs: 3,
            template_latency_runs: 50,
            models_qc_runs: 15,
            models_tts_runs: 7,
            models_talking_secs: 30,
            models_talking_runs: 2,
        }
    }

    pub fn recipe_for(&self, secs: u32) -> bool {
        secs <= self.recipe_up_to_secs
    }

    fn describe(&self, quick: bool, full: bool) -> String {
        let mode = match (quick, full) {
            (true, _) => "--quick",
            (false, true) => "--full",
            (false, false) => "default",
        };
        let pg_queue: Vec<String> = self
            .pg_queue
            .iter()
            .map(|(c, n)| format!("{n} jobs at c={c}"))
            .collect();
        format!(
            "mode {mode}: renders {}× each; api {}× {} s at {} connections; queue {}× {} jobs; \
             pg-queue {}× {}; scaling {} renders with {:?} worker processes; events {} changes, \
             {} subscribers; template video {} s {}×, drawings {}×; models photo_qc {}×, \
             tts {}×, talking video {} s {}×",
            self.render_runs,
            self.api_reps,
            self.api_duration.as_secs(),
            self.connections,
            self.queue_reps,
            self.queue_jobs,
            self.pg_queue_reps,
            pg_queue.join(", "),
            self.scaling_jobs,
            self.scaling_workers,
            self.event_changes,
            self.event_subscribers,
            self.template_secs,
            self.template_runs,
            self.template_latency_runs,
            self.models_qc_runs,
            self.models_tts_runs,
            self.models_talking_secs,
            self.models_talking_runs
        )
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = Plan::new(args.quick, args.full);
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    let (header, rows) = match runtime.block_on(run(&args, &plan)) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("genq-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let report = if args.markdown {
        table::render_markdown(&header, &rows)
    } else {
        table::render_text(&header, &rows)
    };
    print!("{report}");
    if rows.iter().any(|r| r.broken.is_some()) {
        eprintln!("genq-bench: some figures are BROKEN (see above); exiting with failure");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn run(args: &Args, plan: &Plan) -> anyhow::Result<(String, Vec<Row>)> {
    let base = match &args.tmp_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&base)?;
    let tmp = tempfile::Builder::new()
        .prefix("genq-bench-")
        .tempdir_in(&base)?;
    let ffmpeg = inputs::ffmpeg_version().await;
    let load_before = load_average();
    eprintln!("working in {}", tmp.path().display());

    let selected = |f: Figure| args.only.is_empty() || args.only.contains(&f);
    let postgres = pg::Server::new(&args.postgres_url);
    let postgres_off = args.postgres_url == "off";
    let mut rows = Vec::new();
    for figure in [
        Figure::Render,
        Figure::Api,
        Figure::Queue,
        Figure::PgQueue,
        Figure::Scaling,
        Figure::Memory,
        Figure::Events,
        Figure::Template,
        Figure::Models,
    ] {
        if !selected(figure) {
            continue;
        }
        let name = figure.name();
        if postgres_off && matches!(figure, Figure::PgQueue | Figure::Scaling) {
            eprintln!("{name} skipped: --postgres-url off");
            rows.push(Row::skipped(name, "--postgres-url off"));
            continue;
        }
        eprintln!("{name}…");
        let started = Instant::now();
        let dir = tmp.path();
        let result = match figure {
            Figure::Render => render::run(plan, dir).await,
            Figure::Api => api::run(plan, dir).await,
            Figure::Queue => queue::run(plan, dir).await,
            Figure::PgQueue => pg_queue::run(plan, dir, &postgres).await,
            Figure::Scaling => scaling::run(plan, dir, &postgres).await,
            Figure::Memory => memory::run(plan, dir).await,
            Figure::Events => events::run(plan, dir, &postgres, postgres_off).await,
            Figure::Template => template::run(plan, dir).await,
            Figure::Models => models::run(plan, dir).await,
        };
        eprintln!("{name} took {:.0} s", started.elapsed().as_secs_f64());
        match result {
            Ok(mut measured) => rows.append(&mut measured),
            Err(e) => {
                eprintln!("{name} BROKE: {e:#}");
                rows.push(Row::broken(name, &e));
            }
        }
    }
    // Other work on the machine moves every figure: the header says how busy
    // it was.
    let header = format!(
        "genq-bench · {}\ntemp dir on {} · load average {load_before} at start, {} at end · {}",
        table::machine_line(&ffmpeg),
        filesystem_of(tmp.path()),
        load_average(),
        plan.describe(args.quick, args.full)
    );
    Ok((header, rows))
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The type of the filesystem holding `path` ("ext4", "tmpfs", …): a
/// database on tmpfs never waits for a disk, which flatters every fsync.
fn filesystem_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "an unknown filesystem".into(), |(_, kind)| kind)
}
