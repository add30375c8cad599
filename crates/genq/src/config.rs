//! Settings, written once: each is a field of one of the structs below,
//! which clap reads as a flag and an environment variable (with its default)
//! and serde as a key of the TOML file. [`load`] layers them with figment:
//! defaults, then the TOML file (`--config` / `GENQ_CONFIG`), then
//! environment variables, then flags. The README's configuration table is
//! checked against these structs by a test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser};
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use genq_dialects::shared::rate_limit::RateLimitConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Where the data lives: every command needs it.
#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DataSettings {
    /// Directory for the SQLite database, uploads and outputs
    #[arg(long, env = "GENQ_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The job database: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://DATA_DIR/genq.db]
    #[arg(long, env = "GENQ_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A TOML file of settings; environment variables and flags override it
    #[arg(long, env = "GENQ_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl DataSettings {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("genq.db").display()))
    }
}

/// Every setting of `genq serve` (and `genq worker`), grouped by concern.
#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Settings {
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub queue: QueueSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub render: RenderSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub webhooks: WebhookSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageSettings,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// Address to listen on (`:0` picks a free port; the log says which)
    #[arg(long, env = "GENQ_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Base of the links genq hands out [default: http://LISTEN_ADDRESS]
    #[arg(long, env = "GENQ_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Jobs run at once by this process; 0 runs the API only [default: number of cores]
    #[arg(long, env = "GENQ_WORKERS")]
    pub workers: Option<usize>,
    /// Serve Prometheus metrics at http://ADDR/metrics (off when not set)
    #[arg(long, env = "GENQ_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// How long a web console sign-in lasts, in hours
    #[arg(long, env = "GENQ_CONSOLE_SESSION_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub console_session_hours: u64,
    /// Time a client has to send a request's headers, in seconds
    #[arg(long, env = "GENQ_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_seconds: u64,
    /// Time a request body may go without sending data, in seconds
    #[arg(long, env = "GENQ_BODY_IDLE_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_idle_timeout_seconds: u64,
    /// Open connections of this process; 0: three quarters of its open-file limit
    #[arg(long, env = "GENQ_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Open connections of one client IP (trusted proxies exempt); 0: no limit
    #[arg(long, env = "GENQ_MAX_CONNECTIONS_PER_IP", default_value_t = 512)]
    pub max_connections_per_ip: usize,
}

impl ServerSettings {
    pub fn max_connections(&self) -> usize {
        match self.max_connections {
            0 => crate::http::default_max_connections(),
            n => n,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// How long a worker's claim on a job lasts without a heartbeat, in seconds
    #[arg(long, env = "GENQ_LEASE_SECONDS", default_value_t = 30)]
    pub lease_seconds: u64,
    /// Times a job whose worker vanished is run again before it fails
    #[arg(long, env = "GENQ_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,
    /// On SIGTERM/SIGINT, how long running jobs may take to finish, in seconds
    #[arg(long, env = "GENQ_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
    /// How long a submission's answer is kept for retries with its Idempotency-Key, in hours
    #[arg(long, env = "GENQ_IDEMPOTENCY_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub idempotency_hours: u64,
}

impl QueueSettings {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LimitSettings {
    /// Largest accepted upload per file, in MB
    #[arg(long, env = "GENQ_MAX_UPLOAD_MB", default_value_t = 50)]
    pub max_upload_mb: u64,
    /// Largest input file fetched from a URL, in MB
    #[arg(long, env = "GENQ_MAX_INPUT_MB", default_value_t = 50)]
    pub max_input_mb: u64,
    /// Jobs of models (pending + processing) per account, unless the account sets its own
    #[arg(long, env = "GENQ_MAX_CONCURRENT_JOBS", default_value_t = 10)]
    pub max_concurrent_jobs: u32,
    /// Requests per minute per client IP to the API routes (0: unlimited)
    #[arg(long, env = "GENQ_RATE_LIMIT_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_per_minute: u32,
    /// Job submissions per minute per client IP (0: unlimited)
    #[arg(long, env = "GENQ_SUBMIT_RATE_LIMIT_PER_MINUTE", default_value_t = 30)]
    pub submit_rate_limit_per_minute: u32,
    /// Proxies (CIDRs, comma-separated) whose X-Forwarded-For is believed
    #[arg(long, env = "GENQ_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl LimitSettings {
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_mb * 1_000_000
    }

    pub fn max_input_bytes(&self) -> u64 {
        self.max_input_mb * 1_000_000
    }

    pub fn rate_limits(&self) -> RateLimitConfig {
        RateLimitConfig {
            api_per_minute: self.rate_limit_per_minute,
            submit_per_minute: self.submit_rate_limit_per_minute,
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RenderSettings {
    /// Longest side of rendered videos, in pixels
    #[arg(long, env = "GENQ_MAX_LONG_SIDE", default_value_t = 1920)]
    pub max_long_side: u32,
    /// Base time limit of one render, in seconds; 4 × the audio's length is added
    #[arg(long, env = "GENQ_RENDER_TIMEOUT_SECONDS", default_value_t = 120)]
    pub render_timeout_seconds: u64,
    /// The model catalog file (TOML) [default: DATA_DIR/models.toml, if present]
    #[arg(long, env = "GENQ_MODELS")]
    pub models: Option<PathBuf>,
    /// Allow input URLs and Cog outputs on loopback/private addresses
    #[arg(long, env = "GENQ_INPUT_ALLOW_PRIVATE", default_value_t = false, action = ArgAction::Set)]
    pub input_allow_private: bool,
    /// A PEM file of extra root certificates trusted for input URLs
    #[arg(long, env = "GENQ_INPUT_CA_FILE")]
    pub input_ca_file: Option<PathBuf>,
    /// Time limit of one Cog prediction, output downloads included, in seconds
    #[arg(long, env = "GENQ_COG_TIMEOUT_SECONDS", default_value_t = 600)]
    pub cog_timeout_seconds: u64,
    /// A directory of brand fonts templates may name, besides the system's
    #[arg(long, env = "GENQ_FONTS_DIR")]
    pub fonts_dir: Option<PathBuf>,
    /// What one Provider credit is worth, in micro-cents
    #[arg(long, env = "GENQ_CREDIT_MICRO_CENTS", default_value_t = genq_dialects::provider::DEFAULT_CREDIT_MICRO_CENTS)]
    pub credit_micro_cents: i64,
    /// What one Image+Audio Video render (POST /api/jobs) costs, in micro-cents (0: free)
    #[arg(long, env = "GENQ_VIDEO_PRICE_MICRO_CENTS", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub video_price_micro_cents: i64,
    /// Provider job prices in credits, JOB_TYPE=CREDITS comma-separated; unnamed types keep theirs
    #[arg(long, env = "GENQ_PROVIDER_PRICES", default_value = genq_dialects::provider::DEFAULT_PRICES)]
    pub provider_prices: String,
    /// How long a Provider signed download URL works, in seconds
    #[arg(long, env = "GENQ_SIGNED_URL_SECONDS", default_value_t = 86_400)]
    pub signed_url_seconds: i64,
    /// Catalog slug of the model that speaks Provider tts jobs [default: espeak-ng]
    #[arg(long, env = "GENQ_TTS_MODEL")]
    pub tts_model: Option<String>,
    /// Catalog slug of the model that animates ai_talking_video jobs [default: built-in animation]
    #[arg(long, env = "GENQ_TALKING_HEAD_MODEL")]
    pub talking_head_model: Option<String>,
    /// Catalog slug of the model that draws ai_image_generation jobs [default: none]
    #[arg(long, env = "GENQ_IMAGE_MODEL")]
    pub image_model: Option<String>,
    /// Longest text a Provider tts job speaks, in characters
    #[arg(long, env = "GENQ_TTS_MAX_CHARS", default_value_t = genq_dialects::provider::DEFAULT_TTS_MAX_CHARS)]
    pub tts_max_chars: usize,
}

#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// Seconds to wait before each webhook attempt, comma-separated
    #[arg(
        long,
        env = "GENQ_WEBHOOK_RETRY_SCHEDULE",
        default_value = "0,5,300,1800,7200,18000,36000,50400,72000,86400"
    )]
    pub webhook_retry_schedule: String,
    /// Time limit of one webhook attempt, in seconds
    #[arg(long, env = "GENQ_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 15)]
    pub webhook_timeout_seconds: u64,
    /// Allow webhooks to loopback/private/link-local addresses
    #[arg(long, env = "GENQ_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// A PEM file of extra root certificates trusted for webhook receivers
    #[arg(long, env = "GENQ_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
}

impl WebhookSettings {
    pub fn schedule(&self) -> anyhow::Result<Vec<Duration>> {
        parse_schedule(&self.webhook_retry_schedule)
    }
}

/// Where uploads and outputs live. Every node of a cluster needs the same.
#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StorageSettings {
    /// Files: s3://BUCKET/PREFIX, or file:///DIR [default: DATA_DIR/files]
    #[arg(long, env = "GENQ_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// S3-compatible endpoint, e.g. http://127.0.0.1:9000 (buckets addressed in the path) [default: AWS]
    #[arg(long, env = "GENQ_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region
    #[arg(long, env = "GENQ_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// S3 access key id [default: AWS_ACCESS_KEY_ID or instance credentials]
    #[arg(long, env = "GENQ_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment variable to the flag)
    #[arg(long, env = "GENQ_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Allow a plain-http S3 endpoint
    #[arg(long, env = "GENQ_S3_ALLOW_HTTP", default_value_t = false, action = ArgAction::Set)]
    pub s3_allow_http: bool,
    /// Delete a finished job's stored inputs this many hours after it finished (0: keep them)
    #[arg(long, env = "GENQ_INPUT_RETENTION_HOURS", default_value_t = 24.0, value_parser = non_negative)]
    pub input_retention_hours: f64,
    /// Delete a completed job's outputs this many days after it completed (0: keep them)
    #[arg(long, env = "GENQ_OUTPUT_RETENTION_DAYS", default_value_t = 0.0, value_parser = non_negative)]
    pub output_retention_days: f64,
    /// How often the retention sweep looks for files to delete, in seconds
    #[arg(long, env = "GENQ_RETENTION_SWEEP_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub retention_sweep_seconds: u64,
}

/// A retention period: a number of hours or days, 0 or more.
fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!("{text:?} is not a number of 0 or more")),
    }
}

impl StorageSettings {
    /// The retention sweep's settings; `owner` names the process.
    pub fn retention(&self, owner: String) -> genq_engine::retention::RetentionConfig {
        let after =
            |seconds: f64| (seconds > 0.0).then(|| std::time::Duration::from_secs_f64(seconds));
        genq_engine::retention::RetentionConfig {
            inputs_after: after(self.input_retention_hours * 3600.0),
            outputs_after: after(self.output_retention_days * 86_400.0),
            every: std::time::Duration::from_secs(self.retention_sweep_seconds),
            owner,
        }
    }

    pub fn s3(&self) -> genq_files::S3Settings {
        genq_files::S3Settings {
            endpoint: self.s3_endpoint.clone(),
            region: Some(self.s3_region.clone()),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            allow_http: self.s3_allow_http,
        }
    }
}

/// `genq accounts rotate-webhook-secret`'s own setting, which may also sit
/// in the TOML file.
#[derive(Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RotateSettings {
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataSettings,
    /// Hours the previous secret still signs deliveries
    #[arg(
        long = "overlap-hours",
        id = "webhook_secret_overlap_hours",
        env = "GENQ_WEBHOOK_SECRET_OVERLAP_HOURS",
        default_value_t = 24
    )]
    pub webhook_secret_overlap_hours: u64,
}

/// The settings `T` of a command whose arguments `matches` holds, layered:
/// clap's defaults, the TOML file, then what the environment and the
/// command line set (clap already puts a flag over its variable).
pub fn load<T>(matches: &ArgMatches) -> anyhow::Result<T>
where
    T: FromArgMatches + Serialize + DeserializeOwned + HasData,
{
    let parsed = T::from_arg_matches(matches)?;
    let mut figment = Figment::from(Serialized::defaults(&parsed));
    if let Some(path) = &parsed.data().config {
        figment = figment.merge(Toml::string(&read_file(path)?));
    }
    let given = serde_json::to_value(&parsed)?;
    let given: serde_json::Map<String, serde_json::Value> = given
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| {
            matches!(
                matches.value_source(key),
                Some(ValueSource::EnvVariable | ValueSource::CommandLine)
            )
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut settings: T = figment
        .merge(Serialized::defaults(given))
        .extract()
        .context("reading the settings")?;
    // Not a setting of the file's own: where the file was.
    settings.data_mut().config = parsed.data().config.clone();
    Ok(settings)
}

/// A TOML file of settings; a key that is no setting is an error, not a
/// silent typo.
fn read_file(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let known = known_keys();
    if let Some(unknown) = table
        .keys()
        .find(|key| !known.contains(&key.as_str().to_owned()))
    {
        anyhow::bail!(
            "{}: unknown setting {unknown:?} (the keys are the flags' names with underscores)",
            path.display()
        );
    }
    Ok(text)
}

/// Every key a settings file may hold.
fn known_keys() -> Vec<String> {
    let ids = |command: clap::Command| -> Vec<String> {
        command
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .collect()
    };
    let mut keys = ids(SettingsCommand::command());
    keys.extend(ids(RotateCommand::command()));
    keys.retain(|key| key != "config");
    keys
}

/// Settings as a command of their own, for their arguments' introspection.
#[derive(Parser)]
struct SettingsCommand {
    #[command(flatten)]
    settings: Settings,
}

#[derive(Parser)]
struct RotateCommand {
    #[command(flatten)]
    settings: RotateSettings,
}

/// Each settings struct knows where its data settings are.
pub trait HasData {
    fn data(&self) -> &DataSettings;
    fn data_mut(&mut self) -> &mut DataSettings;
}

impl HasData for DataSettings {
    fn data(&self) -> &DataSettings {
        self
    }
    fn data_mut(&mut self) -> &mut DataSettings {
        self
    }
}

impl HasData for Settings {
    fn data(&self) -> &DataSettings {
        &self.data
    }
    fn data_mut(&mut self) -> &mut DataSettings {
        &mut self.data
    }
}

impl HasData for RotateSettings {
    fn data(&self) -> &DataSettings {
        &self.data
    }
    fn data_mut(&mut self) -> &mut DataSettings {
        &mut self.data
    }
}

fn parse_schedule(text: &str) -> anyhow::Result<Vec<Duration>> {
    let schedule = text
        .split(',')
        .map(|part| part.trim().parse::<u64>().map(Duration::from_secs))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!("webhook retry schedule {text:?}: expected comma-separated seconds")
        })?;
    anyhow::ensure!(!schedule.is_empty(), "the webhook retry schedule is empty");
    Ok(schedule)
}

#[cfg(test)]
mod tests;
