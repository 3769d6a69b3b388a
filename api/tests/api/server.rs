//! The API on a real socket (`longhaul_api::server::serve`): slow clients
//! are cut off, the peer's address reaches the audit log, and a stop ends
//! the server. Raw TCP, since no HTTP client sends this slowly on purpose.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use longhaul_api::server::{serve, HttpTimeouts};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{tcp::OwnedWriteHalf, TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::helpers::TestApp;

/// Short limits, so that the tests take a second or two.
fn short() -> HttpTimeouts {
    HttpTimeouts {
        header_read: Some(Duration::from_secs(1)),
        body: Some(Duration::from_secs(1)),
        upload: Some(Duration::from_secs(10)),
    }
}

struct Running {
    address: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

/// Serves `app` on a free port. The router applies the body limits it was
/// built with; `timeouts` gives the server its header limit.
async fn start(app: &TestApp, timeouts: HttpTimeouts) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = listener.local_addr().expect("an address");
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, app.router.clone(), timeouts, stop.clone()));
    Running { address, stop, server }
}

/// What the server sent until it closed the connection (or reset it), and
/// how long after the start that was. `feed` writes the request, as slowly
/// as it likes, concurrently.
async fn exchange<F>(address: SocketAddr, feed: impl FnOnce(OwnedWriteHalf) -> F) -> (String, Duration)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let stream = TcpStream::connect(address).await.expect("connects");
    let (mut read, write) = stream.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(feed(write));
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection: {}", String::from_utf8_lossy(&received));
    writer.abort();
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

/// Writes `bytes` one at a time, `every` apart, until the server hangs up;
/// then keeps the connection open without a word. (Closing our side would
/// be an end of the request that hyper answers at once.)
async fn trickle(mut write: OwnedWriteHalf, head: Vec<u8>, bytes: Vec<u8>, every: Duration) {
    if write.write_all(&head).await.is_err() {
        return;
    }
    for byte in bytes {
        tokio::time::sleep(every).await;
        if write.write_all(&[byte]).await.is_err() {
            return;
        }
    }
    hold(write).await;
}

async fn hold(write: OwnedWriteHalf) {
    std::future::pending::<()>().await;
    drop(write);
}

backend_tests! {
    async fn headers_sent_byte_by_byte_are_cut_off_after_the_header_timeout(backend) {
        let app = TestApp::with_config(backend, |config| config.timeouts = short()).await;
        let running = start(&app, short()).await;
        // A request that would never end its headers: a byte every 200 ms.
        let (answer, after) = exchange(running.address, |write| {
            trickle(write, b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec(), vec![b'a'; 100], Duration::from_millis(200))
        })
        .await;
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "closed after {after:?}");

        // A client that sends its request at once is served as always.
        let healthy = reqwest::get(format!("http://{}/healthz", running.address)).await.expect("a response");
        assert_eq!(healthy.status(), StatusCode::OK);
    }

    async fn a_body_that_never_finishes_is_answered_408_and_the_connection_closed(backend) {
        let app = TestApp::with_config(backend, |config| config.timeouts = short()).await;
        let running = start(&app, short()).await;
        let token = app.user("t1", "u1");
        let head = format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"kind\""
        );
        // Ten bytes of a hundred, and then nothing.
        let (answer, after) = exchange(running.address, |write| trickle(write, head.into_bytes(), Vec::new(), Duration::ZERO)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
        assert!(answer.contains("urn:longhaul:problem:request-timeout"), "{answer}");
        assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "answered after {after:?}");
    }

    async fn a_body_that_trickles_without_pausing_still_meets_its_total_deadline(backend) {
        let app = TestApp::with_config(backend, |config| config.timeouts = short()).await;
        let running = start(&app, short()).await;
        let token = app.user("t1", "u1");
        let head = format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n"
        );
        // A byte every 300 ms never pauses for the whole second, yet the
        // body would take 30 s.
        let (answer, after) = exchange(running.address, |write| {
            trickle(write, head.into_bytes(), vec![b' '; 100], Duration::from_millis(300))
        })
        .await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "answered after {after:?}");
    }

    async fn an_upload_has_longer_than_an_ordinary_body(backend) {
        let app = TestApp::with_config(backend, |config| config.timeouts = short()).await;
        let running = start(&app, short()).await;
        let token = app.user("t1", "u1");
        let created = app.post("/v1/media", &token, &json!({"content_type": "image/png"})).await.json();
        let id = created["id"].as_str().expect("an id").to_owned();
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(40, 30, image::Rgb([200, 120, 40]))
            .write_to(&mut png, image::ImageFormat::Png)
            .expect("encodes");
        let png = png.into_inner();
        let head = format!(
            "PUT /v1/media/{id}/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            png.len()
        );
        // Five parts, 400 ms apart: 2 s in all, twice an ordinary body's time.
        let (answer, after) = exchange(running.address, move |mut write| async move {
            if write.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for part in png.chunks(png.len().div_ceil(5)) {
                tokio::time::sleep(Duration::from_millis(400)).await;
                if write.write_all(part).await.is_err() {
                    return;
                }
            }
            hold(write).await;
        })
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"status\":\"ready\""), "{answer}");
        assert!(after >= Duration::from_millis(1900), "took {after:?}");
    }

    async fn the_peer_address_reaches_the_audit_log_and_a_stop_ends_the_server(backend) {
        let app = TestApp::new(backend).await;
        let running = start(&app, HttpTimeouts::default()).await;
        let admin = app.admin("t1");
        let client = reqwest::Client::new();
        let paused = client
            .post(format!("http://{}/v1/admin/lanes/email/pause", running.address))
            .bearer_auth(&admin)
            .json(&json!({}))
            .send()
            .await
            .expect("a response");
        assert_eq!(paused.status(), StatusCode::OK);
        let log = app.get("/v1/admin/audit", &admin).await.json();
        assert_eq!(log["items"][0]["action"], "lane.pause", "{log}");
        assert_eq!(log["items"][0]["source_ip"], "127.0.0.1", "{log}");

        running.stop.cancel();
        let served = tokio::time::timeout(Duration::from_secs(5), running.server).await.expect("the server stops");
        served.expect("the task").expect("the server ran cleanly");
        assert!(TcpStream::connect(running.address).await.is_err(), "nothing listens after a stop");
    }
}
