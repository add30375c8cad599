//! Settings, layered: built-in defaults, then a TOML file (`--config` /
//! `GENQ_CONFIG`), then environment variables, then flags.

use anyhow::Context;
use clap::Args;
use genq_dialects::shared::rate_limit::RateLimitConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug, Clone, Default)]
pub struct DatabaseArgs {
    /// Directory for the SQLite database, uploads and outputs [default: ./data]
    #[arg(long, env = "GENQ_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL [default: sqlite://DATA_DIR/genq.db]
    #[arg(long, env = "GENQ_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A TOML file of settings; flags and environment variables override it.
    #[arg(long, env = "GENQ_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "GENQ_LISTEN")]
    pub listen: Option<String>,
    /// Jobs run at once by this process; 0 runs the API only [default: number of cores]
    #[arg(long, env = "GENQ_WORKERS")]
    pub workers: Option<usize>,
    /// Base of the links genq hands out [default: http://LISTEN_ADDRESS]
    #[arg(long, env = "GENQ_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long a worker's claim on a job lasts without a heartbeat [default: 30]
    #[arg(long, env = "GENQ_LEASE_SECONDS")]
    pub lease_seconds: Option<u64>,
    /// Times a job is claimed again after its worker was lost before it fails [default: 3]
    #[arg(long, env = "GENQ_MAX_RETRIES")]
    pub max_retries: Option<u32>,
    /// On SIGTERM/SIGINT, how long running jobs may take to finish [default: 30]
    #[arg(long, env = "GENQ_SHUTDOWN_GRACE_SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,
    /// Largest accepted upload per file, in MB [default: 50]
    #[arg(long, env = "GENQ_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Longest side of rendered videos, in pixels [default: 1920]
    #[arg(long, env = "GENQ_MAX_LONG_SIDE")]
    pub max_long_side: Option<u32>,
    /// Base time limit of one render; 4 × the audio's length is added [default: 120]
    #[arg(long, env = "GENQ_RENDER_TIMEOUT_SECONDS")]
    pub render_timeout_seconds: Option<u64>,
    /// Seconds to wait before each webhook attempt, comma-separated
    /// [default: 0,5,300,1800,7200,18000,36000,50400,72000,86400]
    #[arg(long, env = "GENQ_WEBHOOK_RETRY_SCHEDULE")]
    pub webhook_retry_schedule: Option<String>,
    /// Time limit of one webhook attempt [default: 15]
    #[arg(long, env = "GENQ_WEBHOOK_TIMEOUT_SECONDS")]
    pub webhook_timeout_seconds: Option<u64>,
    /// Allow webhooks to loopback/private/link-local addresses [default: false]
    #[arg(long, env = "GENQ_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: Option<bool>,
    /// A PEM file of extra root certificates trusted for webhook receivers
    #[arg(long, env = "GENQ_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    /// Requests per minute per client IP to /api/* (0: unlimited) [default: 600]
    #[arg(long, env = "GENQ_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<u32>,
    /// Job submissions per minute per client IP (0: unlimited) [default: 30]
    #[arg(long, env = "GENQ_SUBMIT_RATE_LIMIT_PER_MINUTE")]
    pub submit_rate_limit_per_minute: Option<u32>,
    /// The model catalog file (TOML) [default: DATA_DIR/models.toml, if present]
    #[arg(long, env = "GENQ_MODELS")]
    pub models: Option<PathBuf>,
    /// Model-gateway jobs (PENDING + PROCESSING) per account, unless the account sets its own [default: 10]
    #[arg(long, env = "GENQ_MAX_CONCURRENT_JOBS")]
    pub max_concurrent_jobs: Option<u32>,
    /// Largest input file fetched from a URL, in MB [default: 50]
    #[arg(long, env = "GENQ_MAX_INPUT_MB")]
    pub max_input_mb: Option<u64>,
    /// Allow input URLs and Cog outputs on loopback/private addresses [default: false]
    #[arg(long, env = "GENQ_INPUT_ALLOW_PRIVATE")]
    pub input_allow_private: Option<bool>,
    /// Time limit of one Cog prediction, output downloads included [default: 600]
    #[arg(long, env = "GENQ_COG_TIMEOUT_SECONDS")]
    pub cog_timeout_seconds: Option<u64>,
    /// Proxies (CIDRs, comma-separated) whose X-Forwarded-For is believed [default: none]
    #[arg(long, env = "GENQ_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Where uploads and outputs live. Every node of a cluster needs the same.
#[derive(Args, Debug, Clone, Default)]
pub struct StorageArgs {
    /// Files: s3://BUCKET/PREFIX, or file:///DIR [default: DATA_DIR/files]
    #[arg(long, env = "GENQ_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// S3-compatible endpoint, e.g. http://127.0.0.1:9000 (buckets addressed in the path) [default: AWS]
    #[arg(long, env = "GENQ_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1]
    #[arg(long, env = "GENQ_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 access key id [default: AWS_ACCESS_KEY_ID or instance credentials]
    #[arg(long, env = "GENQ_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment variable to the flag)
    #[arg(long, env = "GENQ_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Allow a plain-http S3 endpoint [default: false]
    #[arg(long, env = "GENQ_S3_ALLOW_HTTP")]
    pub s3_allow_http: Option<bool>,
}

/// The TOML file's keys are the flags' names with underscores.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    workers: Option<usize>,
    public_url: Option<String>,
    lease_seconds: Option<u64>,
    max_retries: Option<u32>,
    shutdown_grace_seconds: Option<u64>,
    max_upload_mb: Option<u64>,
    max_long_side: Option<u32>,
    render_timeout_seconds: Option<u64>,
    webhook_retry_schedule: Option<String>,
    webhook_timeout_seconds: Option<u64>,
    webhook_allow_private: Option<bool>,
    webhook_ca_file: Option<PathBuf>,
    webhook_secret_overlap_hours: Option<u64>,
    rate_limit_per_minute: Option<u32>,
    submit_rate_limit_per_minute: Option<u32>,
    trusted_proxies: Option<Vec<ipnet::IpNet>>,
    models: Option<PathBuf>,
    max_concurrent_jobs: Option<u32>,
    max_input_mb: Option<u64>,
    input_allow_private: Option<bool>,
    cog_timeout_seconds: Option<u64>,
    storage_url: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    s3_allow_http: Option<bool>,
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileSettings> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub struct DataSettings {
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Uploads and outputs; `None` is `DATA_DIR/files`. Only `serve` and
    /// `worker` read it: the admin commands touch no files.
    pub storage_url: Option<String>,
    pub s3: genq_storage::S3Settings,
}

impl DataSettings {
    fn resolve(args: &DatabaseArgs, file: &FileSettings) -> Self {
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = args
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("genq.db").display()));
        Self {
            data_dir,
            database_url,
            storage_url: None,
            s3: Default::default(),
        }
    }

    fn with_storage(mut self, args: &StorageArgs, file: &FileSettings) -> Self {
        macro_rules! layered {
            ($field:ident) => {
                args.$field.clone().or(file.$field.clone())
            };
        }
        self.storage_url = layered!(storage_url);
        self.s3 = genq_storage::S3Settings {
            endpoint: layered!(s3_endpoint),
            region: Some(layered!(s3_region).unwrap_or_else(|| "us-east-1".into())),
            access_key_id: layered!(s3_access_key_id),
            secret_access_key: layered!(s3_secret_access_key),
            allow_http: layered!(s3_allow_http).unwrap_or(false),
        };
        self
    }

    pub fn load(args: &DatabaseArgs) -> anyhow::Result<Self> {
        let file = read_file(args.config.as_deref())?;
        Ok(Self::resolve(args, &file))
    }

    /// How long a rotated-out webhook secret keeps signing (hours).
    pub fn secret_overlap_hours(args: &DatabaseArgs, flag: Option<u64>) -> anyhow::Result<u64> {
        let file = read_file(args.config.as_deref())?;
        Ok(flag.or(file.webhook_secret_overlap_hours).unwrap_or(24))
    }
}

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub data: DataSettings,
    pub listen: String,
    pub workers: usize,
    pub public_url: Option<String>,
    pub lease: Duration,
    pub max_retries: u32,
    pub shutdown_grace: Duration,
    pub max_upload_bytes: u64,
    pub max_long_side: u32,
    pub render_timeout: Duration,
    pub webhooks: WebhookSettings,
    pub rate_limits: RateLimitConfig,
    pub models_file: PathBuf,
    pub max_concurrent_jobs: u32,
    pub max_input_bytes: u64,
    pub input_allow_private: bool,
    pub cog_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub schedule: Vec<Duration>,
    pub timeout: Duration,
    pub allow_private: bool,
    pub ca_file: Option<PathBuf>,
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

impl ServeSettings {
    pub fn load(args: ServeArgs) -> anyhow::Result<Self> {
        let file = read_file(args.db.config.as_deref())?;
        // A flag or environment variable wins over the file.
        macro_rules! layered {
            ($field:ident) => {
                args.$field.clone().or(file.$field.clone())
            };
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let seconds = |value: Option<u64>, default| Duration::from_secs(value.unwrap_or(default));
        let lease = seconds(layered!(lease_seconds), 30);
        anyhow::ensure!(!lease.is_zero(), "lease_seconds must be at least 1");
        let schedule = match layered!(webhook_retry_schedule) {
            Some(text) => parse_schedule(&text)?,
            None => genq_engine::webhook::default_schedule(),
        };
        let data = DataSettings::resolve(&args.db, &file).with_storage(&args.storage, &file);
        let models_file = layered!(models).unwrap_or_else(|| data.data_dir.join("models.toml"));
        Ok(Self {
            listen: layered!(listen).unwrap_or_else(|| "127.0.0.1:8080".into()),
            workers: layered!(workers).unwrap_or(cores),
            public_url: layered!(public_url),
            lease,
            max_retries: layered!(max_retries).unwrap_or(3),
            shutdown_grace: seconds(layered!(shutdown_grace_seconds), 30),
            max_upload_bytes: layered!(max_upload_mb).unwrap_or(50) * 1_000_000,
            max_long_side: layered!(max_long_side).unwrap_or(1920),
            render_timeout: seconds(layered!(render_timeout_seconds), 120),
            data,
            webhooks: WebhookSettings {
                schedule,
                timeout: seconds(layered!(webhook_timeout_seconds), 15),
                allow_private: layered!(webhook_allow_private).unwrap_or(false),
                ca_file: layered!(webhook_ca_file),
            },
            models_file,
            max_concurrent_jobs: layered!(max_concurrent_jobs).unwrap_or(10),
            max_input_bytes: layered!(max_input_mb).unwrap_or(50) * 1_000_000,
            input_allow_private: layered!(input_allow_private).unwrap_or(false),
            cog_timeout: seconds(layered!(cog_timeout_seconds), 600),
            rate_limits: RateLimitConfig {
                api_per_minute: layered!(rate_limit_per_minute).unwrap_or(600),
                submit_per_minute: layered!(submit_rate_limit_per_minute).unwrap_or(30),
                trusted_proxies: layered!(trusted_proxies).unwrap_or_default(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genq.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nworkers = 7\nmax_upload_mb = 10\n",
        )
        .unwrap();
        let args = ServeArgs {
            db: DatabaseArgs {
                config: Some(path),
                ..Default::default()
            },
            workers: Some(2),
            ..Default::default()
        };
        let settings = ServeSettings::load(args).unwrap();
        assert_eq!(settings.listen, "0.0.0.0:9000");
        assert_eq!(settings.workers, 2);
        assert_eq!(settings.max_upload_bytes, 10_000_000);
        assert_eq!(settings.lease, Duration::from_secs(30));
        assert_eq!(settings.data.database_url, "sqlite://./data/genq.db");
    }

    #[test]
    fn webhook_schedule_parses_and_rejects_garbage() {
        assert_eq!(
            parse_schedule("0, 1,2").unwrap(),
            vec![
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(2)
            ]
        );
        assert!(parse_schedule("0,soon").is_err());
        let defaults = ServeSettings::load(ServeArgs::default()).unwrap().webhooks;
        assert_eq!(defaults.schedule.len(), 10);
        assert!(!defaults.allow_private);
    }

    #[test]
    fn storage_settings_are_layered_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genq.toml");
        std::fs::write(
            &path,
            "storage_url = \"s3://media/genq\"\ns3_endpoint = \"http://127.0.0.1:9000\"\n\
             s3_allow_http = true\ns3_access_key_id = \"from-file\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            db: DatabaseArgs {
                config: Some(path),
                ..Default::default()
            },
            storage: StorageArgs {
                s3_access_key_id: Some("from-flag".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let data = ServeSettings::load(args).unwrap().data;
        assert_eq!(data.storage_url.as_deref(), Some("s3://media/genq"));
        assert_eq!(data.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(data.s3.region.as_deref(), Some("us-east-1"));
        assert_eq!(data.s3.access_key_id.as_deref(), Some("from-flag"));
        assert!(data.s3.allow_http);
        let defaults = ServeSettings::load(ServeArgs::default()).unwrap().data;
        assert_eq!(defaults.storage_url, None);
        assert!(!defaults.s3.allow_http);
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genq.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let args = ServeArgs {
            db: DatabaseArgs {
                config: Some(path),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(ServeSettings::load(args).is_err());
    }
}
