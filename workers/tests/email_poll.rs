//! `email_poll` against a real IMAP server: the dovecot that
//! `scripts/test.sh` starts on a loopback port (`LONGHAUL_TEST_IMAP_ADDR`),
//! which takes any user name with `LONGHAUL_TEST_IMAP_PASSWORD`, so each
//! test gets an empty mailbox of its own. Messages arrive by IMAP APPEND,
//! as a mail server delivers them; the fixtures are the corpus under
//! `tests/fixtures/email`.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use longhaul_jobs::{
    model::{NewJob, Scope, Status},
    store::{AttemptRef, InsertOutcome, JobFilter},
    testing::{Backend, TestStore},
    travel::{
        mail::{
            DkimPolicy, Envelope, LocalKeys, MailAccountStatus, MailSecret, MailTls, NewMailAccount, PollEnd,
            PollSchedule, PollStart, SyncBatch, SyncPosition,
        },
        ReservationFilter, ReservationStatus,
    },
    Job, JobKind, Lane,
};
use longhaul_workers::{
    kinds::{EmailPoll, MailSettings},
    runtime::Services,
    Registry, Runtime, WorkerConfig,
};
use serde_json::{json, Value};
use uuid::Uuid;

const TENANT: &str = "acme";

fn imap_addr() -> (String, u16) {
    let addr = std::env::var("LONGHAUL_TEST_IMAP_ADDR")
        .expect("LONGHAUL_TEST_IMAP_ADDR names the test IMAP server; `bash scripts/test.sh` starts one");
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.parse().expect("a port"))
}

fn imap_password() -> String {
    std::env::var("LONGHAUL_TEST_IMAP_PASSWORD").unwrap_or_else(|_| "longhaul-test".into())
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/email").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A mailbox of its own on the test server, to deliver to.
struct Mailbox {
    user: String,
}

impl Mailbox {
    fn new() -> Mailbox {
        Mailbox { user: format!("u{}", Uuid::now_v7().simple()) }
    }

    async fn session(&self) -> async_imap::Session<tokio::net::TcpStream> {
        let (host, port) = imap_addr();
        let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.expect("connect to dovecot");
        let mut client = async_imap::Client::new(stream);
        client.read_response().await.expect("a greeting").expect("a greeting");
        client.login(&self.user, imap_password()).await.map_err(|(err, _)| err).expect("login")
    }

    async fn deliver(&self, messages: &[Vec<u8>]) {
        let mut session = self.session().await;
        for message in messages {
            session.append("INBOX", None, None, message).await.expect("APPEND");
        }
        session.logout().await.expect("logout");
    }

    async fn uid_validity(&self) -> u32 {
        let mut session = self.session().await;
        let status = session.status("INBOX", "(UIDVALIDITY)").await.expect("STATUS");
        session.logout().await.expect("logout");
        status.uid_validity.expect("a UIDVALIDITY")
    }
}

struct Setup {
    store: TestStore,
    secrets: Envelope,
    runtime: Runtime,
}

async fn setup(backend: Backend) -> Setup {
    setup_with(backend, WorkerConfig::default()).await
}

async fn setup_with(backend: Backend, base: WorkerConfig) -> Setup {
    let store = TestStore::new(backend).await.expect("a store");
    let secrets = Envelope::new(Arc::new(LocalKeys::parse(&LocalKeys::generate("test")).expect("keys")));
    let services = Services::embedded(store.store.clone());
    let config = WorkerConfig {
        lanes: vec![(Lane::Email, 4)],
        poll_interval: Duration::from_millis(50),
        scheduler: false,
        ..base
    };
    let mut registry = Registry::with_defaults();
    registry.register(EmailPoll::new(MailSettings {
        secrets: Some(secrets.clone()),
        allow_private_hosts: true,
        ..MailSettings::default()
    }));
    let runtime = Runtime::start_with(services, registry, config);
    Setup { store, secrets, runtime }
}

impl Setup {
    async fn connect(&self, mailbox: &Mailbox, password: &str, allowed: &[&str]) -> Uuid {
        let (host, port) = imap_addr();
        let id = Uuid::now_v7();
        let secret = MailSecret::Password { password: password.to_owned() };
        let sealed = secret.seal(&self.secrets, &MailSecret::context(TENANT, &mailbox.user, id)).await.expect("seal");
        self.store
            .insert_mail_account(NewMailAccount {
                id,
                tenant_id: TENANT.into(),
                user_id: mailbox.user.clone(),
                imap_host: host,
                imap_port: port,
                tls: MailTls::None,
                username: mailbox.user.clone(),
                auth: secret.auth(),
                allowed_senders: allowed.iter().map(|s| s.to_string()).collect(),
                dkim: DkimPolicy::IfPresent,
                secret: sealed,
            })
            .await
            .expect("insert account")
            .id
    }

    /// Runs one poll of `account` to its end.
    async fn poll(&self, user: &str, account: Uuid) -> Job {
        let job = NewJob::new(TENANT, user, JobKind::EMAIL_POLL, json!({ "account_id": account.to_string() }));
        let job = match self.store.insert_job(job).await.expect("insert") {
            InsertOutcome::Created(job) => job,
            other => panic!("{other:?}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let current = self.store.get_job(&Scope::Platform, job.id).await.expect("get").expect("the job");
            if current.status.is_final() {
                return current;
            }
            assert!(Instant::now() < deadline, "the poll did not end: {current:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn reservations(&self, user: &str) -> Vec<longhaul_jobs::travel::Reservation> {
        let scope = Scope::User { tenant_id: TENANT.into(), user_id: user.into() };
        self.store
            .list_reservations(&scope, &ReservationFilter { limit: 200, ..ReservationFilter::default() })
            .await
            .expect("list")
    }
}

fn result(job: &Job) -> &Value {
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    job.result.as_ref().expect("a result")
}

async fn new_mail_is_found_exactly_once(backend: Backend) {
    let setup = setup(backend).await;
    let mailbox = Mailbox::new();
    mailbox
        .deliver(&[
            fixture("jsonld-flight.eml"),
            fixture("multileg-flight-jsonld.eml"),
            fixture("sender-phishy-airline.eml"),
            fixture("nomarkup-newsletter.eml"),
        ])
        .await;
    let account = setup.connect(&mailbox, &imap_password(), &["atlantica-airways.example", "meseta-air.example"]).await;

    let first = setup.poll(&mailbox.user, account).await;
    let report = result(&first);
    assert_eq!(report["new_messages"], 4, "{report}");
    assert_eq!(report["read"], 3, "the phishing look-alike is not read: {report}");
    assert_eq!(report["skipped"]["not_allowed"], 1, "{report}");
    assert_eq!(report["inserted"], 5, "one flight and four legs: {report}");
    let found = setup.reservations(&mailbox.user).await;
    assert_eq!(found.len(), 5);
    assert!(found.iter().any(|r| r.reservation_number == "K7QX2P" && r.origin.as_deref() == Some("LIS")));
    assert!(found.iter().all(|r| r.trip_id.is_some() || r.status == ReservationStatus::Cancelled));

    // Nothing new: one round trip after login, and no writes.
    let idle = setup.poll(&mailbox.user, account).await;
    let report = result(&idle);
    assert_eq!(report["new_messages"], 0, "{report}");
    assert_eq!(report["imap_commands"], json!(["LOGIN", "STATUS", "LOGOUT"]), "{report}");
    assert_eq!(setup.reservations(&mailbox.user).await.len(), 5);

    // A booking arrives, then its schedule change.
    mailbox.deliver(&[fixture("update-flight-original.eml")]).await;
    let third = setup.poll(&mailbox.user, account).await;
    assert_eq!(result(&third)["inserted"], 1, "{third:?}");
    // One message that updates one reservation of the six: MZ5JR7, with
    // `changes` history rows by then.
    let update = |name: &'static str, changes: usize| {
        let (setup, mailbox) = (&setup, &mailbox);
        async move {
            mailbox.deliver(&[fixture(name)]).await;
            let job = setup.poll(&mailbox.user, account).await;
            let report = result(&job);
            let counts = [&report["new_messages"], &report["inserted"], &report["updated"]];
            assert_eq!(counts, [&json!(1), &json!(0), &json!(1)], "{name}: {report}");
            let found = setup.reservations(&mailbox.user).await;
            assert_eq!(found.len(), 6, "{name} updates the booking: {found:#?}");
            let flight = found.into_iter().find(|r| r.reservation_number == "MZ5JR7").expect("the flight");
            let scope = Scope::User { tenant_id: TENANT.into(), user_id: mailbox.user.clone() };
            let history = setup.store.reservation_changes(&scope, flight.id).await.expect("history").expect("yours");
            assert_eq!(history.len(), changes, "{history:?}");
            (flight, history)
        }
    };
    let (changed, history) = update("update-flight-schedule-change.eml", 1).await;
    assert!(history[0].changes.get("starts_at").is_some(), "{history:?}");

    // Then it is rebooked onto the next day's flight: a new date in its
    // key, but the same booking and route, so the same reservation changed.
    let (rebooked, _) = update("update-flight-rebooked-next-day.eml", 2).await;
    assert_eq!((rebooked.id, rebooked.starts_at.to_rfc3339()), (changed.id, "2027-02-12T06:10:00+00:00".into()));
    assert_eq!(rebooked.starts_local.as_deref(), Some("2027-02-12T07:10:00+01:00"), "Madrid's clock");

    let scope = Scope::User { tenant_id: TENANT.into(), user_id: mailbox.user.clone() };
    let account = setup.store.get_mail_account(&scope, account).await.expect("get").expect("the account");
    assert_eq!(account.status, MailAccountStatus::Active);
    assert_eq!(account.messages_seen, 7);
    assert_eq!(account.reservations_found, 6, "found, not updated");
    setup.runtime.shutdown().await;
}

#[tokio::test]
async fn new_mail_is_found_exactly_once_on_postgres() {
    new_mail_is_found_exactly_once(Backend::Postgres).await;
}

#[tokio::test]
async fn new_mail_is_found_exactly_once_on_sqlite() {
    new_mail_is_found_exactly_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_renumbered_mailbox_is_synced_again_without_duplicates() {
    let setup = setup(Backend::Postgres).await;
    let mailbox = Mailbox::new();
    mailbox.deliver(&[fixture("jsonld-flight.eml"), fixture("multileg-flight-jsonld.eml")]).await;
    let account = setup.connect(&mailbox, &imap_password(), &["atlantica-airways.example"]).await;
    result(&setup.poll(&mailbox.user, account).await);
    assert_eq!(setup.reservations(&mailbox.user).await.len(), 5);

    // Dovecot cannot renumber an INBOX on request (RENAME INBOX is refused),
    // so the renumbering is played from our side: the account's position is
    // recorded under another UIDVALIDITY, through the store's own fenced
    // commit, exactly as if the server had reset it since the last poll.
    let server = mailbox.uid_validity().await;
    let hold = AttemptRef { id: Uuid::now_v7(), generation: 1 };
    let started =
        setup.store.begin_poll(account, TENANT, &mailbox.user, hold, Duration::from_secs(60)).await.expect("begin");
    assert!(matches!(started, PollStart::Granted(_)));
    let position = SyncPosition { uid_validity: Some(server.wrapping_add(1)), last_uid: 2 };
    setup.store.commit_sync(account, hold, SyncBatch { position, ..SyncBatch::default() }).await.expect("commit");
    setup.store.end_poll(account, hold, PollEnd::Done { found_mail: false }, Duration::ZERO).await.expect("end");
    let again = setup.poll(&mailbox.user, account).await;
    let report = result(&again);
    assert_eq!(report["uid_validity_reset"], true, "{report}");
    assert_eq!(report["new_messages"], 2, "{report}");
    assert_eq!(report["inserted"], 0, "{report}");
    assert_eq!(setup.reservations(&mailbox.user).await.len(), 5);
    // And the poll after that is idle again.
    assert_eq!(result(&setup.poll(&mailbox.user, account).await)["new_messages"], 0);
    setup.runtime.shutdown().await;
}

#[tokio::test]
async fn one_account_is_never_polled_twice_at_once() {
    let setup = setup(Backend::Postgres).await;
    let mailbox = Mailbox::new();
    let account = setup.connect(&mailbox, &imap_password(), &["atlantica-airways.example"]).await;
    let lease = Duration::from_secs(60);
    let first = AttemptRef { id: Uuid::now_v7(), generation: 1 };
    let second = AttemptRef { id: Uuid::now_v7(), generation: 1 };
    let begin = |hold| setup.store.begin_poll(account, TENANT, &mailbox.user, hold, lease);
    assert!(matches!(begin(first).await.expect("begin"), PollStart::Granted(_)));
    // Another poll job, while the first holds the account: busy, and its
    // writes are refused.
    assert!(matches!(begin(second).await.expect("begin"), PollStart::Busy));
    let position = SyncPosition { uid_validity: Some(7), last_uid: 99 };
    let refused = setup.store.commit_sync(account, second, SyncBatch { position, ..SyncBatch::default() }).await;
    assert!(refused.expect("commit").is_none(), "a poll without the hold writes nothing");
    // A later attempt of the same job takes over at once (its earlier
    // attempt lost its lease); once the poll ends, another job may begin.
    let retry = AttemptRef { id: first.id, generation: 2 };
    assert!(matches!(begin(retry).await.expect("begin"), PollStart::Granted(_)));
    setup.store.end_poll(account, retry, PollEnd::Done { found_mail: false }, Duration::ZERO).await.expect("end");
    assert!(matches!(begin(second).await.expect("begin"), PollStart::Granted(_)));
    setup.runtime.shutdown().await;
}

/// A multipart nested `depth` deep, with a booking at the bottom.
fn mime_bomb(depth: usize) -> Vec<u8> {
    let mut message = String::from(
        "From: Atlantica Airways <noreply@atlantica-airways.example>\r\nTo: t@inbox.example\r\n\
         Subject: nested\r\nDate: Tue, 3 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n",
    );
    for level in 0..depth {
        message.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n"));
    }
    message.push_str("Content-Type: text/html\r\n\r\n<p>deep</p>\r\n");
    for level in (0..depth).rev() {
        message.push_str(&format!("--b{level}--\r\n"));
    }
    message.into_bytes()
}

/// A message of about `bytes` with a big attachment.
fn huge(bytes: usize) -> Vec<u8> {
    let mut message = String::from(
        "From: Atlantica Airways <noreply@atlantica-airways.example>\r\nTo: t@inbox.example\r\n\
         Subject: huge\r\nDate: Tue, 3 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n\
         --x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while message.len() < bytes {
        message.push_str(line);
    }
    message.push_str("--x--\r\n");
    message.into_bytes()
}

#[tokio::test]
async fn malformed_huge_and_nested_messages_do_not_stop_the_poll() {
    let setup = setup(Backend::Sqlite).await;
    let mailbox = Mailbox::new();
    let mut garbage = b"From: noreply@atlantica-airways.example\r\nContent-Type: multipart/mixed; boundary=".to_vec();
    garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    mailbox
        .deliver(&[
            fixture("malformed-broken-boundary.eml"),
            fixture("malformed-garbage-bytes.eml"),
            fixture("malformed-truncated-base64.eml"),
            garbage,
            mime_bomb(500),
            huge(30 * 1024 * 1024),
            fixture("jsonld-flight.eml"),
        ])
        .await;
    let account = setup.connect(&mailbox, &imap_password(), &["atlantica-airways.example"]).await;
    let job = setup.poll(&mailbox.user, account).await;
    let report = result(&job);
    assert_eq!(report["new_messages"], 7, "{report}");
    assert_eq!(report["skipped"]["too_large"], 1, "{report}");
    // The good booking after them all is found.
    assert!(setup.reservations(&mailbox.user).await.iter().any(|r| r.reservation_number == "K7QX2P"));
    setup.runtime.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_fails_the_job_and_marks_the_account() {
    let setup = setup(Backend::Postgres).await;
    let mailbox = Mailbox::new();
    let account = setup.connect(&mailbox, "not-the-password", &["atlantica-airways.example"]).await;
    let job = setup.poll(&mailbox.user, account).await;
    assert_eq!(job.status, Status::Dead, "a refused password is permanent: {job:?}");
    assert_eq!(job.attempts, 1, "and not retried");
    let error = job.error.as_deref().unwrap_or_default();
    assert!(error.contains("refused the credentials"), "{error}");
    assert!(!error.contains("not-the-password"), "the password never shows: {error}");
    let scope = Scope::User { tenant_id: TENANT.into(), user_id: mailbox.user.clone() };
    let account_now = setup.store.get_mail_account(&scope, account).await.expect("get").expect("the account");
    assert_eq!(account_now.status, MailAccountStatus::NeedsAttention);
    assert!(account_now.last_error.as_deref().is_some_and(|e| e.contains("credentials")));
    // The scheduler leaves it alone until its owner fixes it.
    assert!(setup.store.due_mail_polls(100).await.expect("due").iter().all(|d| d.account_id != account));
    let again = setup.poll(&mailbox.user, account).await;
    assert_eq!(again.status, Status::Dead);
    assert!(again.error.as_deref().unwrap_or_default().contains("needs its owner's attention"));
    setup.runtime.shutdown().await;
}

#[tokio::test]
async fn the_scheduler_polls_each_inbox_and_backs_off_while_it_stays_idle() {
    let schedule = PollSchedule { every: Duration::from_millis(700), max_backoff: 8 };
    let base =
        WorkerConfig { mail_poll: schedule, reap_interval: Duration::from_millis(50), ..WorkerConfig::default() };
    let mut setup = setup_with(Backend::Sqlite, base).await;
    setup.runtime.shutdown().await;
    // The same runtime, with the scheduler on.
    let services = Services::embedded(setup.store.store.clone());
    let config = WorkerConfig {
        lanes: vec![(Lane::Email, 2)],
        poll_interval: Duration::from_millis(20),
        reap_interval: Duration::from_millis(50),
        mail_poll: schedule,
        ..WorkerConfig::default()
    };
    let mut registry = Registry::with_defaults();
    registry.register(EmailPoll::new(MailSettings {
        secrets: Some(setup.secrets.clone()),
        allow_private_hosts: true,
        schedule,
        ..MailSettings::default()
    }));
    setup.runtime = Runtime::start_with(services, registry, config);

    let mailbox = Mailbox::new();
    let account = setup.connect(&mailbox, &imap_password(), &["atlantica-airways.example"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let polls = loop {
        let filter = JobFilter { kind: Some(JobKind::EMAIL_POLL), limit: 50, ..JobFilter::default() };
        let polls = setup.store.list_jobs(&Scope::Platform, &filter).await.expect("list");
        if polls.len() >= 4 {
            break polls;
        }
        assert!(Instant::now() < deadline, "the scheduler enqueued only {} polls", polls.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    setup.runtime.shutdown().await;
    let mut created: Vec<_> = polls.iter().map(|job| job.created_at).collect();
    created.sort();
    let gaps: Vec<f64> = created.windows(2).map(|w| (w[1] - w[0]).num_milliseconds() as f64 / 1000.0).collect();
    // 0.7 s, then 1.4 s, then 2.8 s (±10 %, plus a tick): an idle inbox
    // is polled less and less often.
    assert!(gaps[0] >= 0.6 && gaps[0] < 1.2, "{gaps:?}");
    assert!(gaps[1] > gaps[0] * 1.4 && gaps[2] > gaps[1] * 1.4, "{gaps:?}");
    for poll in &polls {
        assert_eq!(poll.user_id, mailbox.user, "a poll runs as the inbox's owner");
        assert_eq!(poll.payload["account_id"], account.to_string());
    }
    let scope = Scope::User { tenant_id: TENANT.into(), user_id: mailbox.user.clone() };
    let account = setup.store.get_mail_account(&scope, account).await.expect("get").expect("the account");
    assert!(account.last_polled_at.is_some());
}
