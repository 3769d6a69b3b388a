//! The admin dashboard in a real browser: headless Chromium, driven over
//! WebDriver (chromedriver) with fantoccini, against `longhaul api` and
//! `longhaul worker` as separate processes on PostgreSQL. An admin signs in,
//! retries a dead job and watches it succeed; pauses and resumes their
//! tenant's jobs in a lane by clicking; a user's token is refused. Screenshots of the overview and of a
//! job's page land in `<target dir>/browser-screenshots/`.
//!
//! Chromium and chromedriver are required: a missing one fails the tests
//! (`scripts/test.sh` installs both). `CHROMEDRIVER` and `CHROMIUM` name other
//! binaries than `chromedriver` on the PATH and `/usr/bin/chromium`.

mod support;

use std::{
    fs::File,
    future::Future,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use longhaul_jobs::{
    store::{AttemptRef, Completion, Outcome},
    testing::{Backend, TestStore},
    Lane,
};
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use serde_json::{json, Value};
use support::{free_port, wait_ready, Launcher, Process};

/// How long a wait for the page (an element, a text, a navigation) lasts
/// before the test fails.
const UI_TIMEOUT: Duration = Duration::from_secs(15);

/// How often those waits look again.
const UI_POLL: Duration = Duration::from_millis(100);

/// The tenant of both tokens.
const TENANT: &str = "acme";

/// Where screenshots go: `browser-screenshots/` in the target directory
/// (`CARGO_TARGET_DIR` when set), next to cargo's `tmp/`.
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
    dir
}

// ---------------------------------------------------------------------------
// The deployment

/// `longhaul api` on a fresh PostgreSQL database, and a worker on the default
/// lane once [`Deployment::start_worker`] starts it. The test process reaches
/// the same database through the Store API.
struct Deployment {
    // Fields drop in order: the processes stop before the database goes.
    worker: Option<Process>,
    _api: Process,
    launcher: Launcher,
    env: Vec<(&'static str, String)>,
    store: TestStore,
    url: String,
    /// An admin's token and a user's, both of tenant `acme`.
    admin: String,
    user: String,
    http: reqwest::Client,
}

async fn deploy() -> Deployment {
    let store = TestStore::new(Backend::Postgres).await.expect("a PostgreSQL test database");
    let mut launcher = Launcher::new(&store.url);
    let admin = launcher.token(TENANT, "ops", "admin").await;
    let user = launcher.token(TENANT, "ana", "user").await;
    let env = vec![
        ("LONGHAUL_DEV_SIGNING_KEY_FILE", launcher.signing_key_file()),
        ("LONGHAUL_SWEEP_INTERVAL_SECS", "0".to_owned()),
        ("LONGHAUL_POLL_INTERVAL_MS", "200".to_owned()),
    ];
    let listen = format!("127.0.0.1:{}", free_port());
    let api_env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
    let mut api = launcher.spawn(&["api", "--listen", &listen], &api_env);
    let url = format!("http://{listen}");
    wait_ready(&format!("{url}/readyz"), &mut api).await;
    Deployment { worker: None, _api: api, launcher, env, store, url, admin, user, http: reqwest::Client::new() }
}

impl Deployment {
    /// Starts `longhaul worker` on the default lane, and waits until it is
    /// ready.
    async fn start_worker(&mut self) {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(key, value)| (*key, value.as_str())).collect();
        env.push(("LONGHAUL_WORKER_LISTEN", &listen));
        let mut worker = self.launcher.spawn(&["worker", "--lanes", "default", "--concurrency", "2"], &env);
        wait_ready(&format!("http://{listen}/readyz"), &mut worker).await;
        self.worker = Some(worker);
    }

    /// Submits a job as the admin; returns its id.
    async fn submit(&self, body: Value) -> String {
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .expect("submit a job");
        let status = response.status();
        let job: Value = response.json().await.expect("a job");
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{job}");
        job["id"].as_str().expect("a job id").to_owned()
    }

    /// `GET path` as the admin, as JSON.
    async fn get(&self, path: &str) -> Value {
        let response =
            self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.admin).send().await.expect("a request");
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.expect("JSON")
    }

    async fn job(&self, id: &str) -> Value {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    /// Whether `GET /v1/admin/queues` says the admin's tenant paused its
    /// jobs in `lane` (and that the lane itself runs for everyone else).
    async fn tenant_paused(&self, lane: &str) -> bool {
        let queues = self.get("/v1/admin/queues").await;
        let lanes = queues["lanes"].as_array().unwrap_or_else(|| panic!("no lanes in {queues}"));
        let entry = lanes.iter().find(|entry| entry["lane"] == lane).unwrap_or_else(|| panic!("no {lane} in {queues}"));
        assert_eq!(entry["paused"], false, "a tenant admin paused the whole lane: {entry}");
        entry["tenant_paused"].as_bool().unwrap_or_else(|| panic!("no tenant_paused flag in {entry}"))
    }

    /// Waits until the API says job `id` is `status`.
    async fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        support::eventually(timeout, &format!("job {id} to be {status}"), || async {
            let job = self.job(id).await;
            if job["status"] == status {
                Ok(job)
            } else {
                Err(job.to_string())
            }
        })
        .await
    }

    /// Makes the queued job `id` dead, as a worker would after its last
    /// attempt: claimed and completed through the store. Only while no worker
    /// runs, so that nothing else takes it.
    async fn bury(&self, id: &str, error: &str) {
        assert!(self.worker.is_none(), "bury a job before the worker starts");
        let claimed = self.store.claim(Lane::Default, 1, Duration::from_secs(60), "browser-test").await.expect("claim");
        assert_eq!(claimed.len(), 1, "the test's job was not there to claim");
        assert_eq!(claimed[0].id.to_string(), id, "claimed another job than the test's");
        let completion =
            Completion { attempt: AttemptRef::of(&claimed[0]), outcome: Outcome::Dead { error: error.to_owned() } };
        let done = self.store.complete(&[completion]).await.expect("complete");
        assert_eq!(done.len(), 1, "the job was not marked dead");
    }
}

// ---------------------------------------------------------------------------
// The browser

/// The binary `variable` names, or `default`; a missing one fails the test
/// with what to install.
fn required_binary(variable: &str, default: &str, package: &str) -> PathBuf {
    let install =
        format!("install Debian's `{package}` (`apt-get install chromium chromium-driver`; scripts/test.sh does)");
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "the browser tests need ${variable} = {}, which is missing; {install}", path.display());
        return path;
    }
    let found = if default.contains('/') {
        Some(PathBuf::from(default)).filter(|path| path.is_file())
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(default)).find(|path| path.is_file()))
    };
    found.unwrap_or_else(|| {
        panic!("the browser tests need {default} (or ${variable} naming it), which is missing; {install}")
    })
}

/// chromedriver on a port of its own, in a process group of its own with
/// the Chromium it starts. Dropping it SIGKILLs the whole group and reaps
/// chromedriver, whether the test passed or panicked; the browser's profile
/// and scratch files are in a temporary directory, removed after.
struct ChromeDriver {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let binary = required_binary("CHROMEDRIVER", "chromedriver", "chromium-driver");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("chromedriver.log");
        let output = File::create(&log).expect("a log file");
        let port = free_port();
        let mut command = Command::new(&binary);
        command
            .arg(format!("--port={port}"))
            // Chromium's scratch directories, in ours.
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone a file handle"))
            .stderr(output)
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec, and
        // only makes the prctl system call, which is async-signal-safe.
        unsafe {
            // If the test process dies without running its guards, take
            // chromedriver with it.
            command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let child = command.spawn().unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let mut driver = ChromeDriver { child, port, log, dir };
        // Ready when its status says so.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let status = http.get(format!("{}/status", driver.url())).send().await;
            if let Ok(response) = status {
                if response.json::<Value>().await.is_ok_and(|status| status["value"]["ready"] == true) {
                    return driver;
                }
            }
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!("chromedriver exited with {exit}:\n{}", support::tail(&driver.log, 30));
            }
            assert!(Instant::now() < deadline, "chromedriver was not ready within {UI_TIMEOUT:?}");
            tokio::time::sleep(UI_POLL).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        // An error means the group is gone already.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        // Chromium's processes are in the group too; give them a moment to
        // go before their profile directory is removed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while killpg(group, None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::thread::panicking() {
            eprintln!("\n---- last lines of {} ----\n{}", self.log.display(), support::tail(&self.log, 30));
        }
    }
}

/// Headless Chromium on a dashboard, with waits that fail with what the page
/// showed (its URL, its text and a screenshot) instead of hanging.
struct Browser {
    // The session goes before chromedriver.
    client: Client,
    base: String,
    test: &'static str,
    _driver: ChromeDriver,
}

impl Browser {
    async fn start(base: &str, test: &'static str) -> Browser {
        let chromium = required_binary("CHROMIUM", "/usr/bin/chromium", "chromium");
        let driver = ChromeDriver::start().await;
        let profile = driver.profile();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|err| {
                panic!("cannot start headless Chromium through chromedriver: {err}\n{}", support::tail(&driver.log, 30))
            });
        Browser { client, base: base.to_owned(), test, _driver: driver }
    }

    /// Ends the session, which closes Chromium. The guard kills whatever is
    /// left.
    async fn close(self) {
        let Browser { client, _driver, .. } = self;
        client.close().await.expect("end the WebDriver session");
    }

    async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        if let Err(err) = self.client.goto(&url).await {
            self.fail::<()>(&format!("open {url}"), &err.to_string()).await;
        }
    }

    /// Saves a screenshot of the page as `name` in the screenshot directory;
    /// returns its path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = screenshot_dir().join(name);
        std::fs::write(&path, png).unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }

    /// Fails the test: what it waited for, what it last saw, the page's URL
    /// and text, and a screenshot.
    async fn fail<T>(&self, what: &str, last: &str) -> T {
        static FAILURES: AtomicUsize = AtomicUsize::new(0);
        let url = self.client.current_url().await.map(|url| url.to_string()).unwrap_or_else(|err| err.to_string());
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_else(|err| err.to_string()),
            Err(err) => err.to_string(),
        };
        let text: String = text.chars().take(3000).collect();
        let name = format!("failure-{}-{}.png", self.test, FAILURES.fetch_add(1, Ordering::Relaxed));
        let shot = match self.client.screenshot().await {
            Ok(png) => {
                let path = screenshot_dir().join(name);
                std::fs::write(&path, png).map(|()| path.display().to_string()).unwrap_or_else(|err| err.to_string())
            }
            Err(err) => format!("(none: {err})"),
        };
        panic!("{what}\n  last seen: {last}\n  page: {url}\n  screenshot: {shot}\n  page text:\n{text}");
    }

    /// Polls `probe` until it returns `Ok`, for at most [`UI_TIMEOUT`];
    /// `Err` describes what it saw, for the failure message.
    async fn wait<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let last = match probe(self.client.clone()).await {
                Ok(value) => return value,
                Err(last) => last,
            };
            if Instant::now() >= deadline {
                return self.fail(&format!("timed out after {UI_TIMEOUT:?} waiting for {what}"), &last).await;
            }
            tokio::time::sleep(UI_POLL).await;
        }
    }

    async fn element(&self, css: &str) -> Element {
        self.wait(&format!("an element `{css}`"), |client| async move {
            client.find(Locator::Css(css)).await.map_err(|err| err.to_string())
        })
        .await
    }

    /// Waits until no element matches `css`.
    async fn absent(&self, css: &str) {
        self.wait(&format!("`{css}` to go"), |client| async move {
            match client.find_all(Locator::Css(css)).await {
                Ok(found) if found.is_empty() => Ok(()),
                Ok(found) => Err(format!("{} element(s) still match", found.len())),
                Err(err) => Err(err.to_string()),
            }
        })
        .await
    }

    /// Waits until the text of `css` satisfies `matches`; returns it.
    async fn text_where(&self, css: &str, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let matches = &matches;
        self.wait(&format!("`{css}` to {what}"), |client| async move {
            let text = client.find(Locator::Css(css)).await.map_err(|err| err.to_string())?;
            let text = text.text().await.map_err(|err| err.to_string())?;
            if matches(text.trim()) {
                Ok(text)
            } else {
                Err(format!("its text is {text:?}"))
            }
        })
        .await
    }

    async fn text_containing(&self, css: &str, needle: &str) -> String {
        self.text_where(css, &format!("contain {needle:?}"), |text| text.contains(needle)).await
    }

    async fn text_equal(&self, css: &str, expected: &str) -> String {
        self.text_where(css, &format!("read {expected:?}"), |text| text == expected).await
    }

    /// Waits until the page's path is `path`; returns the whole URL.
    async fn path(&self, path: &str) -> reqwest::Url {
        self.wait(&format!("the page {path}"), |client| async move {
            let url = client.current_url().await.map_err(|err| err.to_string())?;
            if url.path() == path {
                Ok(url)
            } else {
                Err(format!("at {url}"))
            }
        })
        .await
    }

    /// Clicks the element `css`, once it is there.
    async fn click(&self, css: &str) {
        self.wait(&format!("to click `{css}`"), |client| async move {
            let element = client.find(Locator::Css(css)).await.map_err(|err| err.to_string())?;
            element.click().await.map_err(|err| err.to_string())
        })
        .await
    }

    /// Signs in on `/admin/login` (where the page must be, or be sent) by
    /// typing `token` and clicking the button.
    async fn sign_in(&self, token: &str) {
        self.path("/admin/login").await;
        let field = self.element("#login #token").await;
        field.send_keys(token).await.expect("type the token");
        self.click("#sign-in").await;
    }

    /// The session cookie, if the browser holds one.
    async fn session_cookie(&self) -> Option<fantoccini::cookies::Cookie<'static>> {
        let cookies = self.client.get_all_cookies().await.expect("the cookies");
        cookies.into_iter().find(|cookie| cookie.name() == "longhaul_admin")
    }
}

/// Width and height of a PNG, after checking its signature and that its
/// first chunk is the header.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}

/// Checks that `path` is a PNG of the browser's window, with something on
/// it; prints its path.
fn assert_screenshot(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let (width, height) = png_size(&bytes).unwrap_or_else(|| panic!("{} is not a PNG", path.display()));
    assert!(width >= 1000 && height >= 600, "{} is {width}×{height}, not the 1400×1000 window", path.display());
    // A blank page of that size compresses to a few KB.
    assert!(bytes.len() > 20_000, "{} has {} bytes: is the page blank?", path.display(), bytes.len());
    println!("screenshot: {} ({width}×{height}, {} bytes)", path.display(), bytes.len());
}

// ---------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_retries_a_dead_job_and_watches_it_succeed() {
    let mut deployment = deploy().await;
    // A job that died, submitted through the API and buried through the
    // store before any worker runs: a worker runs it only if the retry works.
    // It sleeps 3 s, so that its page shows it running first.
    let id = deployment.submit(json!({ "kind": "noop", "payload": { "sleep_ms": 3000 } })).await;
    deployment.bury(&id, "buried by the browser test").await;
    assert_eq!(deployment.job(&id).await["status"], "dead");
    deployment.start_worker().await;

    let browser = Browser::start(&deployment.url, "retry").await;
    // Without a session the dead jobs page sends to sign-in, and back after.
    browser.goto("/admin/dead").await;
    browser.sign_in(&deployment.admin).await;
    browser.path("/admin/dead").await;
    let row = format!("tr[data-job=\"{id}\"]");
    let badge = browser.element(&format!("{row} span.badge[data-status]")).await;
    assert_eq!(badge.attr("data-status").await.expect("an attribute").as_deref(), Some("dead"));
    browser.text_containing(&format!("{row} .error-text"), "buried by the browser test").await;

    browser.click(&format!("#retry-{id}")).await;
    browser.path("/admin/dead").await;
    browser.text_containing("#notice", "queued again").await;
    browser.absent(&row).await;

    // The job's page reloads itself while the job is queued or running: the
    // test only reads it, until it says succeeded.
    browser.goto(&format!("/admin/jobs/{id}")).await;
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + UI_TIMEOUT;
    loop {
        let status = match browser.client.find(Locator::Css(".job-head span.badge[data-status]")).await {
            Ok(badge) => badge.attr("data-status").await.ok().flatten(),
            // Between two loads of the page.
            Err(_) => None,
        };
        if let Some(status) = status {
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if status == "succeeded" {
                break;
            }
        }
        if Instant::now() >= deadline {
            let what = format!("the job page never showed `succeeded` within {UI_TIMEOUT:?}: did the retry run it?");
            browser.fail::<()>(&what, &format!("statuses seen: {seen:?}")).await;
        }
        tokio::time::sleep(UI_POLL).await;
    }
    println!("job page statuses, in order: {seen:?}");
    assert!(!seen.iter().any(|status| status == "dead"), "the page showed the job dead after the retry: {seen:?}");
    browser.text_where("#job-attempts", "show one attempt", |text| text.starts_with("1 of ")).await;
    browser.absent("#job-error").await;

    let job = deployment.job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1, "the retry started from fresh attempts: {job}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_pauses_and_resumes_their_tenants_jobs_in_a_lane_by_clicking() {
    let mut deployment = deploy().await;
    deployment.start_worker().await;
    let browser = Browser::start(&deployment.url, "pause").await;
    browser.goto("/admin/login").await;
    browser.sign_in(&deployment.admin).await;
    browser.path("/admin").await;

    let state = "tr[data-lane=\"default\"] [data-field=\"paused\"]";
    browser.text_equal(state, "running").await;
    assert!(!deployment.tenant_paused("default").await, "the default lane starts running");

    browser.click("#pause-default").await;
    browser.text_containing("#notice", "Paused your tenant's jobs in lane default").await;
    browser.text_equal(state, "paused (tenant)").await;
    browser.element("#resume-default").await;
    browser.absent("#pause-default").await;
    assert!(deployment.tenant_paused("default").await, "the API does not say the default lane is paused");
    for lane in ["video", "reports", "email", "refresh"] {
        assert!(!deployment.tenant_paused(lane).await, "pausing default paused {lane} too");
    }

    // Paused for real: a job submitted now waits, and the overview's live
    // figures (server-sent events, no reload) show it waiting.
    let id = deployment.submit(json!({ "kind": "noop", "payload": { "sleep_ms": 0 } })).await;
    browser.text_equal("tr[data-lane=\"default\"] [data-field=\"depth\"]", "1").await;
    assert_eq!(deployment.job(&id).await["status"], "queued", "a paused lane's worker took a job");

    browser.click("#resume-default").await;
    browser.text_containing("#notice", "Resumed your tenant's jobs in lane default").await;
    browser.text_equal(state, "running").await;
    browser.element("#pause-default").await;
    browser.absent("#resume-default").await;
    assert!(!deployment.tenant_paused("default").await, "the API still says the default lane is paused");
    deployment.wait_for_status(&id, "succeeded", UI_TIMEOUT).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_token_is_refused_at_sign_in_and_opens_nothing() {
    let deployment = deploy().await;
    let browser = Browser::start(&deployment.url, "user").await;
    browser.goto("/admin/login").await;
    browser.sign_in(&deployment.user).await;
    browser.text_containing("#login-error", "belongs to a user").await;
    browser.path("/admin/login").await;
    assert!(browser.session_cookie().await.is_none(), "a user's token got a session cookie");

    // Still signed out: the dashboard's pages send to sign-in.
    for path in ["/admin", "/admin/dead"] {
        browser.goto(path).await;
        let url = browser.path("/admin/login").await;
        let next = url.query_pairs().find(|(key, _)| key == "next").map(|(_, value)| value.into_owned());
        assert_eq!(next.as_deref(), Some(path), "{url}");
        browser.element("#login #token").await;
        browser.absent("#lanes").await;
        browser.absent("#login-error").await;
    }

    // The same browser and form let an admin in: the refusal was the token's.
    browser.sign_in(&deployment.admin).await;
    browser.path("/admin/dead").await;
    browser.element("#bulk").await;
    let cookie = browser.session_cookie().await.expect("an admin's session cookie");
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)", "{cookie}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_overview_and_a_job_page_are_valid_pngs() {
    let mut deployment = deploy().await;
    deployment.start_worker().await;
    let id =
        deployment.submit(json!({ "kind": "noop", "payload": { "artifact": "hello from the browser test" } })).await;
    deployment.wait_for_status(&id, "succeeded", Duration::from_secs(30)).await;

    let browser = Browser::start(&deployment.url, "screenshots").await;
    browser.goto("/admin/login").await;
    browser.sign_in(&deployment.admin).await;
    browser.path("/admin").await;
    browser.element("#lanes tr[data-lane=\"default\"]").await;
    // The script ran (the Content-Security-Policy let it) and drew the live
    // charts from the event stream.
    browser.text_containing("#live-state", "Live: updated").await;
    browser.element("#chart-depth polyline").await;
    let overview = browser.screenshot("overview.png").await;
    assert_screenshot(&overview);

    browser.goto(&format!("/admin/jobs/{id}")).await;
    let badge = browser.element(".job-head span.badge[data-status]").await;
    assert_eq!(badge.attr("data-status").await.expect("an attribute").as_deref(), Some("succeeded"));
    browser.text_containing("#job-artifacts", "noop.txt").await;
    let job = browser.screenshot("job.png").await;
    assert_screenshot(&job);
    browser.close().await;
}
