//! `longhaul bench --workload email`: what a poll costs.
//!
//! 1. Parse and extract: every message of the corpus (`--corpus`, default
//!    `tests/fixtures/email`) parsed with mail-parser and run through the
//!    markup extractor, `--rounds` times on one core, as the poll does with
//!    the parts it fetches. Reports messages per second.
//! 2. With `--imap HOST:PORT` (a real IMAP server that takes any user with
//!    `--imap-password`, such as the dovecot `scripts/test.sh` starts): the
//!    corpus delivered by APPEND to a fresh mailbox, one poll that reads it
//!    all, then a poll that finds nothing new. Reports the commands that
//!    idle poll sent, and the round trips after login (LOGOUT is sent
//!    without waiting for its answer, so it is not one).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use longhaul_jobs::{
    model::{NewJob, Scope},
    store::InsertOutcome,
    travel::mail::{DkimPolicy, Envelope, LocalKeys, MailSecret, MailTls, NewMailAccount},
    DynStore, Job, JobKind, Lane,
};
use longhaul_workers::{
    kinds::{email_poll::message::extract_message, EmailPoll, MailSettings},
    runtime::Services,
    Registry, Runtime, WorkerConfig,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::cli::BenchArgs;

fn corpus(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut messages = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read the corpus {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("eml") {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            messages.push((name, std::fs::read(&path)?));
        }
    }
    messages.sort();
    if messages.is_empty() {
        bail!("no .eml files in {}", dir.display());
    }
    Ok(messages)
}

/// The senders of the corpus, for the bench account's allow-list.
fn senders(messages: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut domains: Vec<String> = messages
        .iter()
        .filter_map(|(_, raw)| longhaul_workers::kinds::email_poll::message::envelope(raw).from_domain)
        .filter(|domain| domain.contains('.') && !domain.contains("phishy"))
        .collect();
    domains.sort();
    domains.dedup();
    domains
}

async fn measure(args: &BenchArgs) -> anyhow::Result<Value> {
    let dir = args.corpus.clone().unwrap_or_else(|| PathBuf::from("tests/fixtures/email"));
    let messages = corpus(&dir)?;
    let bytes: usize = messages.iter().map(|(_, raw)| raw.len()).sum();
    let rounds = args.rounds.max(1);
    // One warm-up round, then the timed ones.
    let found_per_round: usize = messages.iter().map(|(_, raw)| extract_message(raw).1.len()).sum();
    let started = Instant::now();
    let mut found = 0usize;
    for _ in 0..rounds {
        for (_, raw) in &messages {
            found += std::hint::black_box(extract_message(raw)).1.len();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let parsed = (messages.len() * rounds) as f64;
    let mut result = json!({
        "workload": "email",
        "corpus_messages": messages.len(),
        "corpus_bytes": bytes,
        "reservations_per_round": found_per_round,
        "rounds": rounds,
        "parse_extract_messages_per_s": (parsed / elapsed).round(),
        "parse_extract_mib_per_s": ((bytes * rounds) as f64 / elapsed / 1_048_576.0 * 10.0).round() / 10.0,
        "parse_extract_us_per_message": (elapsed / parsed * 1e6 * 10.0).round() / 10.0,
    });
    debug_assert_eq!(found, found_per_round * rounds);
    if let Some(addr) = &args.imap {
        result["imap"] = imap_polls(addr, &args.imap_password, &messages).await?;
    }
    Ok(result)
}

async fn imap_polls(addr: &str, password: &str, messages: &[(String, Vec<u8>)]) -> anyhow::Result<Value> {
    let (host, port) = addr.rsplit_once(':').context("--imap is HOST:PORT")?;
    let port: u16 = port.parse().context("--imap is HOST:PORT")?;
    let user = format!("bench{}", Uuid::now_v7().simple());

    // Deliver the corpus.
    let stream = tokio::net::TcpStream::connect((host, port)).await.with_context(|| format!("connecting to {addr}"))?;
    let mut client = async_imap::Client::new(stream);
    client.read_response().await.context("no greeting")?.context("reading the greeting")?;
    let mut session = client.login(&user, password).await.map_err(|(err, _)| err).context("IMAP login")?;
    for (_, raw) in messages {
        session.append("INBOX", None, None, raw).await.context("APPEND")?;
    }
    session.logout().await.context("LOGOUT")?;

    let dir = tempfile::tempdir()?;
    let store = longhaul_jobs::connect(&format!("sqlite://{}/bench.db", dir.path().display())).await?;
    store.migrate().await?;
    let secrets = Envelope::new(Arc::new(LocalKeys::parse(&LocalKeys::generate("bench"))?));
    let id = Uuid::now_v7();
    let secret = MailSecret::Password { password: password.to_owned() };
    let sealed = secret.seal(&secrets, &MailSecret::context("bench", &user, id)).await?;
    store
        .insert_mail_account(NewMailAccount {
            id,
            tenant_id: "bench".into(),
            user_id: user.clone(),
            imap_host: host.to_owned(),
            imap_port: port,
            tls: MailTls::None,
            username: user.clone(),
            auth: secret.auth(),
            allowed_senders: senders(messages),
            dkim: DkimPolicy::IfPresent,
            secret: sealed,
        })
        .await?;
    let services = Services::embedded(store.clone());
    let config = WorkerConfig {
        lanes: vec![(Lane::Email, 1)],
        poll_interval: Duration::from_millis(10),
        scheduler: false,
        ..WorkerConfig::default()
    };
    let mut registry = Registry::with_defaults();
    registry.register(EmailPoll::new(MailSettings {
        secrets: Some(secrets),
        allow_private_hosts: true,
        ..MailSettings::default()
    }));
    let runtime = Runtime::start_with(services, registry, config);
    let (first, first_s) = poll(&store, &user, id).await?;
    let (idle, idle_s) = poll(&store, &user, id).await?;
    runtime.shutdown().await;
    let first = first.result.unwrap_or_default();
    let idle = idle.result.unwrap_or_default();
    let commands: Vec<String> = serde_json::from_value(idle["imap_commands"].clone()).unwrap_or_default();
    let after_login = commands.iter().skip_while(|c| *c != "LOGIN" && *c != "AUTHENTICATE").skip(1);
    let round_trips = after_login.filter(|c| *c != "LOGOUT").count();
    Ok(json!({
        "first_poll": {
            "seconds": (first_s * 1000.0).round() / 1000.0,
            "new_messages": first["new_messages"],
            "read": first["read"],
            "reservations_found": first["reservations_found"],
            "inserted": first["inserted"],
            "skipped": first["skipped"],
            "imap_commands": first["imap_commands"].as_array().map(Vec::len),
        },
        "idle_poll": {
            "seconds": (idle_s * 1000.0).round() / 1000.0,
            "imap_commands": commands,
            "round_trips_after_login": round_trips,
        },
    }))
}

async fn poll(store: &DynStore, user: &str, account: Uuid) -> anyhow::Result<(Job, f64)> {
    let job = NewJob::new("bench", user, JobKind::EMAIL_POLL, json!({ "account_id": account.to_string() }));
    let InsertOutcome::Created(job) = store.insert_job(job).await? else { bail!("the poll job was not created") };
    let started = Instant::now();
    loop {
        let current = store.get_job(&Scope::Platform, job.id).await?.context("the poll job vanished")?;
        if current.status.is_final() {
            if current.status != longhaul_jobs::Status::Succeeded {
                bail!("the poll failed: {:?}", current.error);
            }
            // Its own measure: from claimed to finished.
            let ran = match (current.started_at, current.finished_at) {
                (Some(s), Some(f)) => (f - s).num_microseconds().unwrap_or(0) as f64 / 1e6,
                _ => started.elapsed().as_secs_f64(),
            };
            return Ok((current, ran));
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the poll did not finish in 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let result = measure(args).await?;
    eprintln!(
        "longhaul email: parse+extract {} messages/s ({} µs/message, {} MiB/s) over {} messages; idle poll: {}",
        result["parse_extract_messages_per_s"],
        result["parse_extract_us_per_message"],
        result["parse_extract_mib_per_s"],
        result["corpus_messages"],
        result["imap"]["idle_poll"]["imap_commands"],
    );
    println!("{result}");
    Ok(())
}
