use super::*;

/// `genq serve ARGS`' settings, as `load` layers them.
fn serve(args: &[&str]) -> anyhow::Result<Settings> {
    let matches = SettingsCommand::command()
        .try_get_matches_from(std::iter::once("genq").chain(args.iter().copied()))?;
    load(&matches)
}

fn file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genq.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

#[test]
fn flags_override_the_environment_which_overrides_the_file_which_overrides_defaults() {
    let (_dir, path) = file(
        "listen = \"0.0.0.0:9000\"\nworkers = 7\nmax_upload_mb = 10\nmax_retries = 9\n\
         shutdown_grace_seconds = 5\n",
    );
    // Only this test sets these variables.
    std::env::set_var("GENQ_MAX_RETRIES", "4");
    std::env::set_var("GENQ_SHUTDOWN_GRACE_SECONDS", "6");
    let settings = serve(&[
        "--config",
        &path,
        "--workers",
        "2",
        "--shutdown-grace-seconds",
        "8",
    ])
    .unwrap();
    std::env::remove_var("GENQ_MAX_RETRIES");
    std::env::remove_var("GENQ_SHUTDOWN_GRACE_SECONDS");
    assert_eq!(
        settings.server.listen, "0.0.0.0:9000",
        "the file over the default"
    );
    assert_eq!(settings.server.workers, Some(2), "a flag over the file");
    assert_eq!(settings.limits.max_upload_bytes(), 10_000_000);
    assert_eq!(
        settings.queue.max_retries, 4,
        "the environment over the file"
    );
    assert_eq!(
        settings.queue.shutdown_grace_seconds, 8,
        "a flag over the environment"
    );
    assert_eq!(settings.queue.lease(), Duration::from_secs(30), "a default");
    assert_eq!(settings.data.database_url(), "sqlite://./data/genq.db");
    assert_eq!(settings.data.config.as_deref(), Some(Path::new(&path)));
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
    let defaults = serve(&[]).unwrap().webhooks;
    assert_eq!(defaults.schedule().unwrap().len(), 10);
    assert!(!defaults.webhook_allow_private);
    let (_dir, path) = file("webhook_retry_schedule = \"0,soon\"\n");
    assert!(serve(&["--config", &path])
        .unwrap()
        .webhooks
        .schedule()
        .is_err());
}

#[test]
fn storage_settings_are_layered_too() {
    let (_dir, path) = file(
        "storage_url = \"s3://media/genq\"\ns3_endpoint = \"http://127.0.0.1:9000\"\n\
         s3_allow_http = true\ns3_access_key_id = \"from-file\"\n\
         trusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    let settings = serve(&["--config", &path, "--s3-access-key-id", "from-flag"]).unwrap();
    let storage = &settings.storage;
    assert_eq!(storage.storage_url.as_deref(), Some("s3://media/genq"));
    let s3 = storage.s3();
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(s3.region.as_deref(), Some("us-east-1"));
    assert_eq!(s3.access_key_id.as_deref(), Some("from-flag"));
    assert!(s3.allow_http);
    assert_eq!(
        settings.limits.rate_limits().trusted_proxies,
        vec!["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
    );
    let defaults = serve(&[]).unwrap().storage;
    assert_eq!(defaults.storage_url, None);
    assert!(!defaults.s3_allow_http);
}

#[test]
fn unknown_file_keys_and_missing_files_are_errors() {
    let (_dir, path) = file("lisen = \"x\"\n");
    let error = serve(&["--config", &path]).unwrap_err();
    assert!(
        format!("{error:#}").contains("unknown setting \"lisen\""),
        "{error:#}"
    );
    // The admin command's own key is known.
    let (_dir, path) = file("webhook_secret_overlap_hours = 2\n");
    assert!(serve(&["--config", &path]).is_ok());
    assert!(serve(&["--config", "/nonexistent/genq.toml"]).is_err());
    let (_dir, path) = file("workers = \"many\"\n");
    assert!(serve(&["--config", &path]).is_err());
}

/// The README's configuration table, as (flag, env, default) rows.
fn readme_rows() -> Vec<(String, String, String)> {
    let readme = include_str!("../../../../README.md");
    let table = readme
        .split("## Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    table
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let unquote = |cell: &str| cell.trim_matches('`').to_owned();
            (unquote(cells[1]), unquote(cells[2]), cells[3].to_owned())
        })
        .collect()
}

#[test]
fn every_setting_is_in_the_readme_with_its_variable_and_default() {
    let rows = readme_rows();
    let command = SettingsCommand::command();
    let mut flags = Vec::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" {
            continue;
        }
        let flag = format!("--{long}");
        let env = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        let row = rows
            .iter()
            .find(|(f, _, _)| *f == flag)
            .unwrap_or_else(|| panic!("README's configuration table has no row for {flag}"));
        assert_eq!(row.1, env, "{flag}'s variable in the README");
        for default in arg.get_default_values() {
            let default = default.to_string_lossy();
            assert!(
                row.2.contains(&format!("`{default}`")),
                "{flag}'s default is {default:?}; the README says {:?}",
                row.2
            );
        }
        flags.push(flag);
    }
    for (flag, _, _) in &rows {
        assert!(
            flags.contains(flag),
            "README's configuration table lists {flag}, which is no setting"
        );
    }
}
