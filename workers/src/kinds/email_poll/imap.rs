//! The IMAP side of a poll, on `async-imap`: connect (TLS with rustls and
//! the Mozilla roots, STARTTLS, or plain TCP for local test servers), log
//! in (LOGIN, or AUTHENTICATE XOAUTH2), and the few commands a sync needs.
//!
//! Every byte the client writes passes through [`Wire`], which notes each
//! command's name (never its arguments): the bench reports exactly what a
//! poll sends, and tests assert it. Every byte the server sends passes
//! through a [`Guard`] before async-imap parses it (see `guard.rs`).

use std::{
    fmt, io,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use async_imap::{
    error::Error as ImapError,
    types::{Fetch, Mailbox},
    Authenticator, Client, Session,
};
use futures::StreamExt;
use longhaul_jobs::travel::mail::MailTls;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{
    rustls::{self, pki_types::ServerName},
    TlsConnector,
};

use super::guard::{Guard, ImapLimits, Refusal};

/// How long connecting (TCP, TLS, greeting) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why talking to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ImapFailure {
    /// The server refused the credentials: only the owner can fix that.
    #[error("the IMAP server refused the credentials: {0}")]
    Auth(String),
    /// The server sent what no IMAP server should (see `guard.rs`): it
    /// will send it again, so retrying would only pay the same bounded
    /// cost to fail the same way.
    #[error("{0}")]
    Refused(String),
    /// Anything else (network, TLS, a server hiccup, a timeout): worth
    /// another try.
    #[error("{0}")]
    Transient(String),
}

impl ImapFailure {
    fn transient(what: &str, err: impl fmt::Display) -> ImapFailure {
        ImapFailure::Transient(format!("{what}: {err}"))
    }
}

/// The guard's refusal behind an error, if that is what it is.
pub fn refusal(err: &ImapError) -> Option<&Refusal> {
    match err {
        ImapError::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<Refusal>()),
        _ => None,
    }
}

/// At most this many characters of what a server said go into an error.
const MAX_QUOTED: usize = 300;

/// What went wrong while doing `what`, for the job's error and the logs. A
/// reply that does not parse is not quoted: async-imap would quote all of
/// it, and the server chose every byte; what else a server said is cut
/// short.
pub fn failure(what: &str, err: ImapError) -> ImapFailure {
    if let Some(refusal) = refusal(&err) {
        return if refusal.is_timeout() {
            ImapFailure::Transient(format!("{what}: {refusal}"))
        } else {
            ImapFailure::Refused(format!("{refusal}; giving up on this server ({what})"))
        };
    }
    let text = match &err {
        ImapError::Io(io) if io.to_string().contains(" during parsing of ") => {
            "the IMAP server sent a reply that does not parse".to_owned()
        }
        other => clip(&other.to_string(), MAX_QUOTED),
    };
    ImapFailure::transient(what, text)
}

/// `text`, cut to at most `max` characters.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A byte stream a client can run on: TCP, or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

/// The command names a connection sent, in order.
#[derive(Debug, Clone, Default)]
pub struct Transcript(Arc<Mutex<Vec<String>>>);

impl Transcript {
    pub fn commands(&self) -> Vec<String> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn note(&self, line: &[u8]) {
        // `<tag> <COMMAND> …`; `UID FETCH` is named with its second word.
        let text = String::from_utf8_lossy(line);
        let mut words = text.split_whitespace().skip(1);
        let Some(first) = words.next() else { return };
        let name = match first.to_ascii_uppercase().as_str() {
            "UID" => format!("UID {}", words.next().unwrap_or_default().to_ascii_uppercase()),
            other => other.to_owned(),
        };
        if let Ok(mut commands) = self.0.lock() {
            commands.push(name);
        }
    }
}

/// A stream that notes the commands written through it. Continuation
/// lines (an AUTHENTICATE response) carry no tag and are not commands.
#[derive(Debug)]
pub struct Wire<S> {
    inner: S,
    transcript: Transcript,
    line: Vec<u8>,
    in_auth: bool,
}

impl<S> Wire<S> {
    fn new(inner: S, transcript: Transcript) -> Self {
        Wire { inner, transcript, line: Vec::new(), in_auth: false }
    }

    fn observe(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                if !self.in_auth && self.line.len() < 4096 {
                    self.transcript.note(&self.line);
                    let upper = String::from_utf8_lossy(&self.line).to_ascii_uppercase();
                    self.in_auth = upper.split_whitespace().nth(1) == Some("AUTHENTICATE");
                } else {
                    self.in_auth = false;
                }
                self.line.clear();
            } else if self.line.len() < 4096 {
                self.line.push(byte);
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            let bytes = buf.get(..n).unwrap_or(buf);
            self.observe(bytes);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub type ImapSession = Session<Box<dyn Io>>;

fn tls_connector() -> Result<TlsConnector, ImapFailure> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| ImapFailure::transient("TLS setup", err))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Addresses a poll must never reach, since a user names the host: the
/// cloud's metadata services and link-local space always; loopback, private
/// and shared (CGNAT) space unless `allow_private` (local setups and tests).
pub fn forbidden(ip: IpAddr, allow_private: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let always = v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast();
            let private = v4.is_loopback() || v4.is_private() || (a == 100 && (64..128).contains(&b));
            always || (private && !allow_private)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let always = v6.is_unspecified() || v6.is_multicast() || (first & 0xffc0) == 0xfe80 || first == 0xfd00;
            let private = v6.is_loopback() || (first & 0xfe00) == 0xfc00;
            always || (private && !allow_private)
        }
    }
}

async fn tcp(host: &str, port: u16, allow_private: bool) -> Result<TcpStream, ImapFailure> {
    let addresses: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| ImapFailure::transient(&format!("cannot resolve {host}"), err))?
        .collect();
    let mut last = None;
    for address in addresses.iter().filter(|a| !forbidden(a.ip(), allow_private)) {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last = Some(err),
        }
    }
    Err(match last {
        Some(err) => ImapFailure::transient(&format!("cannot connect to {host}:{port}"), err),
        None => ImapFailure::Transient(format!("{host} resolves to no address a poll may connect to")),
    })
}

async fn tls_over(
    host: &str,
    stream: TcpStream,
    transcript: Transcript,
    limits: ImapLimits,
) -> Result<Box<dyn Io>, ImapFailure> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|err| ImapFailure::transient(&format!("`{host}` is not a TLS server name"), err))?;
    let tls = tls_connector()?
        .connect(name, stream)
        .await
        .map_err(|err| ImapFailure::transient(&format!("TLS with {host}"), err))?;
    // Recorded and checked above TLS: commands and replies, not ciphertext.
    Ok(Box::new(Guard::new(Wire::new(tls, transcript), limits)))
}

/// Reads the server's greeting.
async fn greet<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug>(
    client: &mut Client<T>,
    host: &str,
    port: u16,
) -> Result<(), ImapFailure> {
    match client.read_response().await {
        Some(Ok(_greeting)) => Ok(()),
        Some(Err(err)) => Err(failure("reading the greeting", err.into())),
        None => Err(ImapFailure::Transient(format!("{host}:{port} closed the connection at once"))),
    }
}

/// Connects and reads the greeting: a client ready to log in.
pub async fn connect(
    host: &str,
    port: u16,
    tls: MailTls,
    allow_private: bool,
    transcript: Transcript,
    limits: ImapLimits,
) -> Result<Client<Box<dyn Io>>, ImapFailure> {
    let connecting = async {
        let stream = tcp(host, port, allow_private).await?;
        match tls {
            MailTls::Tls => {
                let mut client = Client::new(tls_over(host, stream, transcript, limits).await?);
                greet(&mut client, host, port).await?;
                Ok(client)
            }
            MailTls::None => {
                let guarded = Guard::new(Wire::new(stream, transcript), limits);
                let mut client = Client::new(Box::new(guarded) as Box<dyn Io>);
                greet(&mut client, host, port).await?;
                Ok(client)
            }
            MailTls::Starttls => {
                let mut client = Client::new(Guard::new(Wire::new(stream, transcript.clone()), limits));
                greet(&mut client, host, port).await?;
                client.run_command_and_check_ok("STARTTLS", None).await.map_err(|err| failure("STARTTLS", err))?;
                // No greeting follows STARTTLS, and whatever came after its
                // OK in plain text (an injection) is dropped with the guard.
                let plain = client.into_inner().into_inner().inner;
                Ok(Client::new(tls_over(host, plain, transcript, limits).await?))
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| ImapFailure::Transient(format!("connecting to {host}:{port} took over {CONNECT_TIMEOUT:?}")))?
}

fn auth_error(err: ImapError) -> ImapFailure {
    match err {
        ImapError::No(text) => ImapFailure::Auth(clip(text.trim(), MAX_QUOTED)),
        other => failure("logging in", other),
    }
}

/// LOGIN with a password.
pub async fn login(client: Client<Box<dyn Io>>, user: &str, password: &str) -> Result<ImapSession, ImapFailure> {
    client.login(user, password).await.map_err(|(err, _)| auth_error(err))
}

/// SASL XOAUTH2 (Gmail, Outlook): the user and a bearer access token.
struct XOAuth2 {
    response: Option<String>,
}

impl Authenticator for XOAuth2 {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        // The first continuation asks for the token; a second one carries
        // the server's error, answered with an empty line so that it sends
        // its NO.
        self.response.take().unwrap_or_default()
    }
}

/// The XOAUTH2 initial response, as sent (base64, as async-imap encodes
/// it) or not.
pub fn xoauth2_response(user: &str, access_token: &str, encoded: bool) -> String {
    let response = format!("user={user}\x01auth=Bearer {access_token}\x01\x01");
    if encoded {
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, response)
    } else {
        response
    }
}

pub async fn login_xoauth2(
    client: Client<Box<dyn Io>>,
    user: &str,
    access_token: &str,
) -> Result<ImapSession, ImapFailure> {
    let response = xoauth2_response(user, access_token, false);
    client.authenticate("XOAUTH2", XOAuth2 { response: Some(response) }).await.map_err(|(err, _)| auth_error(err))
}

/// Servers may add FETCH responses nobody asked for (flags changed by
/// another client) to any command's answer; past this many more than
/// asked, the answer is not a mailbox's.
const UNASKED_FETCHES: usize = 100;

/// `UID FETCH uids query`, collected: at most `asked` answers (the UIDs
/// in `uids`) and [`UNASKED_FETCHES`] more.
pub async fn uid_fetch(
    session: &mut ImapSession,
    uids: &str,
    query: &str,
    asked: usize,
    what: &str,
) -> Result<Vec<Fetch>, ImapFailure> {
    let most = asked.saturating_add(UNASKED_FETCHES);
    let mut fetched = Vec::new();
    {
        let mut answers = session.uid_fetch(uids, query).await.map_err(|err| failure(what, err))?;
        while let Some(fetch) = answers.next().await {
            let fetch = fetch.map_err(|err| failure(what, err))?;
            if fetched.len() == most {
                let messages = if asked == 1 { "message" } else { "messages" };
                return Err(ImapFailure::Refused(format!(
                    "the IMAP server sent more than {most} FETCH responses to a UID FETCH of {asked} {messages}; \
                     giving up on this server"
                )));
            }
            fetched.push(fetch);
        }
    }
    forget_unsolicited(session);
    Ok(fetched)
}

/// `STATUS mailbox items`.
pub async fn status(session: &mut ImapSession, mailbox: &str, items: &str) -> Result<Mailbox, ImapFailure> {
    let status = session.status(mailbox, items).await.map_err(|err| failure("IMAP STATUS", err));
    forget_unsolicited(session);
    status
}

/// `EXAMINE mailbox`: selected read-only.
pub async fn examine(session: &mut ImapSession, mailbox: &str) -> Result<Mailbox, ImapFailure> {
    let examined = session.examine(mailbox).await.map_err(|err| failure("IMAP EXAMINE", err));
    forget_unsolicited(session);
    examined
}

/// Drops the replies async-imap kept aside (up to 100, some as large as a
/// whole reply): a poll has no use for them, and they would stay in memory
/// until the session ends.
fn forget_unsolicited(session: &mut ImapSession) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_never_reach_metadata_services_and_reach_private_space_only_when_allowed() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("an address");
        for always in ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "0.0.0.0", "fd00:ec2::254"] {
            assert!(forbidden(ip(always), true), "{always}");
        }
        for private in
            ["127.0.0.1", "10.0.0.8", "192.168.1.1", "172.16.0.1", "100.100.100.200", "::1", "::ffff:10.1.2.3"]
        {
            assert!(forbidden(ip(private), false), "{private}");
            assert!(!forbidden(ip(private), true), "{private}");
        }
        for public in ["93.184.216.34", "2a00:1450:4001::6d"] {
            assert!(!forbidden(ip(public), false), "{public}");
        }
    }

    #[test]
    fn a_refusal_is_for_good_a_timeout_for_another_try_and_a_bad_reply_is_not_quoted() {
        let io = |refusal: Refusal| ImapError::Io(io::Error::new(io::ErrorKind::InvalidData, refusal));
        let refused = failure("IMAP UID FETCH", io(Refusal::TooDeep(128)));
        assert_eq!(
            refused.to_string(),
            "the IMAP server sent a reply nested deeper than 128 levels; giving up on this server (IMAP UID FETCH)"
        );
        assert!(matches!(refused, ImapFailure::Refused(_)));
        let slow = failure("IMAP STATUS", io(Refusal::Stalled(Duration::from_secs(60))));
        assert!(matches!(&slow, ImapFailure::Transient(text) if text.contains("silent for 60 s")), "{slow}");

        let garbage =
            io::Error::other(format!("Error(..) during parsing of {:?}", "a1 LOGIN user hunter2 ".repeat(1000)));
        let failed = failure("IMAP STATUS", ImapError::Io(garbage));
        assert_eq!(failed.to_string(), "IMAP STATUS: the IMAP server sent a reply that does not parse");
        let chatty = failure("IMAP EXAMINE", ImapError::Bad("x".repeat(10_000)));
        assert!(chatty.to_string().chars().count() < MAX_QUOTED + 40, "{chatty}");
    }

    #[test]
    fn the_transcript_names_commands_and_never_their_arguments() {
        let transcript = Transcript::default();
        let mut wire = Wire::new(tokio::io::sink(), transcript.clone());
        wire.observe(b"a1 LOGIN user secret-password\r\na2 STATUS INBOX (UIDNEXT)\r\na3 uid fetch 1:2 (UID)\r\n");
        wire.observe(b"a4 AUTHENTICATE XOAUTH2\r\ndXNlcj1h\r\na5 LOGOUT\r\n");
        assert_eq!(transcript.commands(), ["LOGIN", "STATUS", "UID FETCH", "AUTHENTICATE", "LOGOUT"]);
    }
}
