//! `email_poll`: an incremental sync of one connected inbox, turning
//! confirmation emails from allowed senders into reservations.
//!
//! A poll:
//! 1. takes the account (one poll per account at a time; see
//!    `MailStore::begin_poll`), and opens its sealed credential;
//! 2. connects (TLS, STARTTLS, or plain for local test servers) and logs in
//!    with LOGIN, or with XOAUTH2 after refreshing the access token (a
//!    rotated refresh token is stored before the login);
//! 3. asks `STATUS INBOX (UIDNEXT UIDVALIDITY)`. When UIDVALIDITY is the one
//!    we synced and UIDNEXT is past the last UID seen, nothing is new: one
//!    round trip after login, then LOGOUT;
//! 4. otherwise `EXAMINE`s the inbox (read-only: no flag changes) and walks
//!    the new UIDs in batches: first the headers, size and body structure
//!    only; the allow-list, DKIM policy and size caps are checked on those;
//!    only then are the HTML (and JSON-LD) parts of the admitted messages
//!    fetched, decoded and handed to the extractor;
//! 5. commits each batch's reservations with the new sync position in one
//!    transaction, fenced on its hold of the account.
//!
//! The server is the user's choice, so it is not trusted: every reply goes
//! through the guard (`guard.rs`) before it is parsed, and a poll's
//! collections are bounded. A server that breaks the guard's limits fails
//! the poll for good, with the reason; one that is too slow fails it for
//! another try. No reply can take the worker down.
//!
//! A UIDVALIDITY change means the server renumbered the mailbox: the sync
//! starts over from UID 1, and the reservations' dedupe keys keep what is
//! found again from being duplicated. A message that cannot be parsed is
//! skipped and counted, never fatal. A refused credential fails the job
//! permanently and marks the account `needs_attention`.

mod guard;
mod imap;
pub mod message;
mod oauth;

use std::{sync::Arc, time::Duration};

use async_imap::imap_proto::{BodyStructure, ContentEncoding, SectionPath};
use async_trait::async_trait;
use longhaul_jobs::{
    kind::{self, EmailPollPayload},
    travel::mail::{
        Envelope, FoundReservation, MailSecret, PollEnd, PollGrant, PollSchedule, PollStart, SyncBatch, SyncPosition,
        SECRET_KEYS_VAR,
    },
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

pub use guard::ImapLimits;
pub use imap::Transcript;

use crate::runtime::JobContext;
use crate::{Handler, JobError, JobResult};

/// How long a poll holds its account: longer than the kind's timeout, so
/// that a hold only outlives its poll when the worker died.
const POLL_HOLD: Duration = Duration::from_secs(15 * 60);

/// What a poll needs besides the account.
#[derive(Clone)]
pub struct MailSettings {
    /// Opens the sealed credentials; without it every poll fails and says why.
    pub secrets: Option<Envelope>,
    /// New UIDs fetched per round (headers), and committed together.
    pub batch: u32,
    /// At most this many new UIDs per poll; the next poll goes on.
    pub max_per_poll: u32,
    /// Lets polls reach loopback and private addresses (IMAP hosts and token
    /// endpoints): for `up` and tests. Production workers leave it off, so a
    /// user cannot point a poll at the cluster's own services.
    pub allow_private_hosts: bool,
    /// When an inbox that just had mail is polled next.
    pub schedule: PollSchedule,
    /// What an IMAP server may send, and how slowly.
    pub imap: ImapLimits,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            secrets: None,
            batch: 200,
            max_per_poll: 5_000,
            allow_private_hosts: false,
            schedule: PollSchedule::default(),
            imap: ImapLimits::default(),
        }
    }
}

pub struct EmailPoll {
    settings: Arc<MailSettings>,
}

impl EmailPoll {
    pub fn new(settings: MailSettings) -> EmailPoll {
        EmailPoll { settings: Arc::new(settings) }
    }
}

/// Why a poll stopped early.
#[derive(Debug)]
enum PollError {
    /// Only the account's owner can fix it (refused credentials).
    Attention(String),
    /// Only an operator can fix it (the credential's key is not configured).
    Permanent(String),
    Transient(String),
    /// The account's hold was lost: another attempt has it.
    Lost,
    Cancelled,
}

impl From<imap::ImapFailure> for PollError {
    fn from(failure: imap::ImapFailure) -> Self {
        match failure {
            imap::ImapFailure::Auth(_) => PollError::Attention(failure.to_string()),
            // Permanent for this job, but the account stays active: its next
            // scheduled poll tries again, so a server that is fixed (or a
            // message deleted) recovers without anyone's help.
            imap::ImapFailure::Refused(text) => PollError::Permanent(text),
            imap::ImapFailure::Transient(text) => PollError::Transient(text),
        }
    }
}

impl From<longhaul_jobs::store::StoreError> for PollError {
    fn from(err: longhaul_jobs::store::StoreError) -> Self {
        PollError::Transient(format!("the database failed: {err}"))
    }
}

impl PollError {
    /// The same error with every secret of the poll taken out of its text:
    /// a hostile server may quote back what we sent it.
    fn redacted(self, secrets: &[String]) -> PollError {
        let clean = |text: String| {
            // Shorter strings would take words out of the text, and hide
            // little of a secret anyway.
            secrets
                .iter()
                .filter(|secret| secret.len() >= 4)
                .fold(text, |text, secret| text.replace(secret.as_str(), "[redacted]"))
        };
        match self {
            PollError::Attention(text) => PollError::Attention(clean(text)),
            PollError::Permanent(text) => PollError::Permanent(clean(text)),
            PollError::Transient(text) => PollError::Transient(clean(text)),
            other => other,
        }
    }
}

/// Messages skipped, by reason.
#[derive(Debug, Default, Serialize)]
struct Skipped {
    not_allowed: u32,
    dkim: u32,
    too_large: u32,
    no_sender: u32,
    unreadable: u32,
}

/// The job's result.
#[derive(Debug, Default, Serialize)]
struct PollReport {
    /// New messages in the inbox since the last poll.
    new_messages: u32,
    /// Of those, the ones whose HTML was read (allowed, under the caps).
    read: u32,
    /// Reservations found in them (a reservation seen again counts again).
    reservations_found: u32,
    inserted: u32,
    updated: u32,
    unchanged: u32,
    skipped: Skipped,
    /// The server renumbered the mailbox, and the sync started over.
    uid_validity_reset: bool,
    /// The poll stopped at its per-poll cap; the next one goes on.
    more: bool,
    /// The IMAP commands sent, in order (names only).
    imap_commands: Vec<String>,
}

#[async_trait]
impl Handler for EmailPoll {
    type Kind = kind::EmailPoll;

    async fn run(&self, ctx: &JobContext, payload: EmailPollPayload) -> JobResult {
        let account_id = payload.account_id;
        let secrets = self.settings.secrets.as_ref().ok_or_else(|| {
            JobError::permanent(format!(
                "this worker has no key to open mail credentials with: set {SECRET_KEYS_VAR} as on the API"
            ))
        })?;
        let attempt = ctx.attempt();
        let job = &ctx.job;
        let start = ctx
            .store
            .begin_poll(account_id, &job.tenant_id, &job.user_id, attempt, POLL_HOLD)
            .await
            .map_err(|err| JobError::retryable(format!("the database failed: {err}")))?;
        let grant = match start {
            PollStart::Granted(grant) => grant,
            PollStart::Busy => {
                tracing::info!(%account_id, "another poll of this account is running; nothing to do");
                return Ok(Some(json!({ "new_messages": 0, "reservations_found": 0, "busy": true })));
            }
            PollStart::Gone => return Err(JobError::permanent(format!("no mail account `{account_id}`"))),
            PollStart::NeedsAttention(why) => {
                return Err(JobError::permanent(format!(
                    "the mail account needs its owner's attention ({}); update its credentials first",
                    why.unwrap_or_else(|| "its credentials were refused".into())
                )))
            }
        };
        let transcript = Transcript::default();
        let outcome = tokio::select! {
            outcome = self.sync(ctx, &grant, secrets, transcript.clone()) => outcome,
            () = ctx.cancel.cancelled() => Err(PollError::Cancelled),
        };
        let end = match &outcome {
            Ok(report) => PollEnd::Done { found_mail: report.new_messages > 0 || report.more },
            Err(PollError::Attention(why)) => PollEnd::Failed { error: why.clone(), needs_attention: true },
            Err(PollError::Transient(why) | PollError::Permanent(why)) => {
                PollEnd::Failed { error: why.clone(), needs_attention: false }
            }
            Err(PollError::Cancelled) => PollEnd::Failed { error: "cancelled".into(), needs_attention: false },
            Err(PollError::Lost) => PollEnd::Failed { error: "the poll lost its hold".into(), needs_attention: false },
        };
        let next_if_mail = self.settings.schedule.next_delay(0);
        if let Err(err) = ctx.store.end_poll(account_id, attempt, end, next_if_mail).await {
            tracing::warn!(%account_id, error = %err, "could not release the mail account; its hold will expire");
        }
        match outcome {
            Ok(mut report) => {
                report.imap_commands = transcript.commands();
                tracing::info!(
                    %account_id,
                    new_messages = report.new_messages,
                    read = report.read,
                    reservations = report.reservations_found,
                    "inbox polled"
                );
                Ok(Some(serde_json::to_value(report).map_err(|err| JobError::permanent(err.to_string()))?))
            }
            Err(PollError::Attention(why) | PollError::Permanent(why)) => Err(JobError::permanent(why)),
            Err(PollError::Transient(why)) => Err(JobError::retryable(why)),
            Err(PollError::Lost) => Err(JobError::retryable("another attempt took over the mail account")),
            Err(PollError::Cancelled) => Err(JobError::Cancelled),
        }
    }
}

impl EmailPoll {
    async fn sync(
        &self,
        ctx: &JobContext,
        grant: &PollGrant,
        secrets: &Envelope,
        transcript: Transcript,
    ) -> Result<PollReport, PollError> {
        let account = &grant.account;
        let context = MailSecret::context(&account.tenant_id, &account.user_id, account.id);
        let secret = MailSecret::open(secrets, &grant.secret, &context)
            .await
            .map_err(|err| PollError::Permanent(format!("the stored credential cannot be opened: {err}")))?;
        let mut known = match &secret {
            MailSecret::Password { password } => vec![password.clone()],
            MailSecret::Oauth2 { client_secret, refresh_token, .. } => {
                let mut known = vec![refresh_token.clone()];
                known.extend(client_secret.clone());
                known
            }
        };
        let result = self.sync_as(ctx, grant, secrets, &secret, transcript, &mut known).await;
        result.map_err(|err| err.redacted(&known))
    }

    /// Logs in with `secret` and reads the inbox. Every secret it sends
    /// goes into `known`, to be kept out of any error.
    async fn sync_as(
        &self,
        ctx: &JobContext,
        grant: &PollGrant,
        secrets: &Envelope,
        secret: &MailSecret,
        transcript: Transcript,
        known: &mut Vec<String>,
    ) -> Result<PollReport, PollError> {
        let account = &grant.account;
        let allow_private = self.settings.allow_private_hosts;
        let client = imap::connect(
            &account.imap_host,
            account.imap_port,
            account.tls,
            allow_private,
            transcript,
            self.settings.imap,
        )
        .await?;
        let mut session = match secret {
            MailSecret::Password { password } => imap::login(client, &account.username, password).await?,
            MailSecret::Oauth2 { token_url, client_id, client_secret, refresh_token } => {
                let token_error = |err: oauth::TokenError| match err {
                    oauth::TokenError::Refused(_) => PollError::Attention(err.to_string()),
                    oauth::TokenError::Forbidden(_) => PollError::Permanent(err.to_string()),
                    oauth::TokenError::Transient(_) => PollError::Transient(err.to_string()),
                };
                let endpoint = oauth::check_endpoint(token_url, allow_private).await.map_err(token_error)?;
                let tokens = oauth::refresh(&endpoint, client_id, client_secret.as_deref(), refresh_token)
                    .await
                    .map_err(token_error)?;
                known.push(tokens.access_token.clone());
                known.push(imap::xoauth2_response(&account.username, &tokens.access_token, true));
                if let Some(rotated) = tokens.rotated_refresh_token {
                    known.push(rotated.clone());
                    // Stored before anything else: the old token may be dead already.
                    let renewed = MailSecret::Oauth2 {
                        token_url: token_url.clone(),
                        client_id: client_id.clone(),
                        client_secret: client_secret.clone(),
                        refresh_token: rotated,
                    };
                    let context = MailSecret::context(&account.tenant_id, &account.user_id, account.id);
                    let sealed = renewed
                        .seal(secrets, &context)
                        .await
                        .map_err(|err| PollError::Transient(format!("sealing the rotated token: {err}")))?;
                    if !ctx.store.rotate_mail_secret(account.id, ctx.attempt(), sealed).await? {
                        return Err(PollError::Lost);
                    }
                    tracing::info!(account_id = %account.id, "stored the provider's rotated refresh token");
                }
                imap::login_xoauth2(client, &account.username, &tokens.access_token).await?
            }
        };
        let result = self.read_inbox(ctx, &mut session, grant).await;
        // LOGOUT without waiting for its answer: the poll is done.
        if let Err(err) = session.run_command("LOGOUT").await {
            tracing::debug!(error = %imap::failure("LOGOUT", err), "LOGOUT failed");
        }
        result
    }

    async fn read_inbox(
        &self,
        ctx: &JobContext,
        session: &mut imap::ImapSession,
        grant: &PollGrant,
    ) -> Result<PollReport, PollError> {
        let account = &grant.account;
        let mut report = PollReport::default();
        let status = imap::status(session, "INBOX", "(UIDNEXT UIDVALIDITY)").await?;
        let validity =
            status.uid_validity.ok_or_else(|| PollError::Transient("the server reported no UIDVALIDITY".into()))?;
        let uid_next = status.uid_next.ok_or_else(|| PollError::Transient("the server reported no UIDNEXT".into()))?;
        let mut last = match grant.position.uid_validity {
            Some(known) if known == validity => grant.position.last_uid,
            Some(_) => {
                report.uid_validity_reset = true;
                tracing::warn!(account_id = %account.id, "UIDVALIDITY changed; syncing the inbox again from the start");
                0
            }
            None => 0,
        };
        if uid_next <= last.saturating_add(1) && !report.uid_validity_reset {
            if grant.position.uid_validity.is_none() {
                // An empty inbox, seen for the first time: remember its UIDVALIDITY.
                self.commit(
                    ctx,
                    account.id,
                    SyncBatch {
                        position: SyncPosition { uid_validity: Some(validity), last_uid: last },
                        ..SyncBatch::default()
                    },
                )
                .await?;
            }
            return Ok(report);
        }
        let examined = imap::examine(session, "INBOX").await?;
        if examined.uid_validity.is_some_and(|v| v != validity) {
            return Err(PollError::Transient("the mailbox was renumbered during the poll".into()));
        }
        let end = uid_next.saturating_sub(1);
        let cap = last.saturating_add(self.settings.max_per_poll);
        while last < end {
            if last >= cap {
                report.more = true;
                break;
            }
            let from = last.saturating_add(1);
            let to = from.saturating_add(self.settings.batch.max(1) - 1).min(end);
            let mut batch = SyncBatch {
                position: SyncPosition { uid_validity: Some(validity), last_uid: to },
                ..SyncBatch::default()
            };
            // The header is fetched in part, as the parts are: the server
            // cannot send more, whatever the message holds.
            let query = format!("(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER]<0.{}>)", message::MAX_HEADER_BYTES);
            let asked = usize::try_from(to - from + 1).unwrap_or(usize::MAX);
            let heads = imap::uid_fetch(session, &format!("{from}:{to}"), &query, asked, "IMAP UID FETCH").await?;
            let mut heads: Vec<_> =
                heads.into_iter().filter(|f| f.uid.is_some_and(|uid| uid >= from && uid <= to)).collect();
            heads.sort_by_key(|f| f.uid);
            for head in &heads {
                if ctx.cancel.is_cancelled() {
                    return Err(PollError::Cancelled);
                }
                report.new_messages += 1;
                batch.messages += 1;
                let Some(uid) = head.uid else { continue };
                let envelope = message::envelope(head.header().unwrap_or_default());
                if let Err(skip) = message::admit(&envelope, head.size, &account.allowed_senders, account.dkim) {
                    tracing::debug!(uid, reason = %skip, "message skipped");
                    match skip {
                        message::Skip::NotAllowed(_) => report.skipped.not_allowed += 1,
                        message::Skip::Dkim(_) => report.skipped.dkim += 1,
                        message::Skip::TooLarge(_) => report.skipped.too_large += 1,
                        message::Skip::NoSender => report.skipped.no_sender += 1,
                    }
                    continue;
                }
                let parts = head.bodystructure().map(wanted_parts).unwrap_or_default();
                if parts.is_empty() {
                    report.read += 1;
                    continue;
                }
                match self.read_parts(session, uid, &parts, &envelope).await? {
                    Ok(found) => {
                        report.read += 1;
                        report.reservations_found += u32::try_from(found.len()).unwrap_or(u32::MAX);
                        batch.reservations.extend(found);
                    }
                    Err(why) => {
                        tracing::warn!(uid, reason = %why, "message unreadable; skipped");
                        report.skipped.unreadable += 1;
                    }
                }
            }
            let committed = self.commit(ctx, account.id, batch).await?;
            report.inserted += committed.inserted;
            report.updated += committed.updated;
            report.unchanged += committed.unchanged;
            last = to;
        }
        if grant.position.uid_validity != Some(validity) && report.new_messages == 0 {
            // A new or renumbered mailbox with nothing in it: remember it.
            let position = SyncPosition { uid_validity: Some(validity), last_uid: last };
            self.commit(ctx, account.id, SyncBatch { position, ..SyncBatch::default() }).await?;
        }
        Ok(report)
    }

    async fn commit(
        &self,
        ctx: &JobContext,
        account_id: Uuid,
        batch: SyncBatch,
    ) -> Result<longhaul_jobs::travel::mail::SyncReport, PollError> {
        ctx.store.commit_sync(account_id, ctx.attempt(), batch).await?.ok_or(PollError::Lost)
    }

    /// Fetches the wanted parts of one message and extracts from them.
    async fn read_parts(
        &self,
        session: &mut imap::ImapSession,
        uid: u32,
        parts: &[Part],
        envelope: &message::Envelope,
    ) -> Result<Result<Vec<FoundReservation>, String>, PollError> {
        // Partial fetches: the server cannot send more than the cap, whatever
        // size its body structure claimed.
        let sections: Vec<String> =
            parts.iter().map(|p| format!("BODY.PEEK[{}]<0.{}>", p.section(), message::MAX_PART_BYTES)).collect();
        // A failed fetch is the connection's problem, not the message's: the
        // poll stops before its position moves past the message.
        let query = format!("({})", sections.join(" "));
        let fetched = imap::uid_fetch(session, &uid.to_string(), &query, 1, "IMAP UID FETCH of parts").await?;
        let Some(fetch) = fetched.iter().find(|f| f.uid == Some(uid)) else {
            return Ok(Err("the server returned none of its parts".into()));
        };
        let mut found = Vec::new();
        for part in parts {
            let Some(bytes) = fetch.section(&SectionPath::Part(part.path.clone(), None)) else { continue };
            let Some(text) = message::decode_part(bytes, &part.content_type, part.charset.as_deref(), &part.encoding)
            else {
                continue;
            };
            found.extend(message::extract(&text, part.is_json, envelope.date));
        }
        Ok(Ok(found))
    }
}

/// A part worth fetching: HTML, or standalone JSON-LD.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    path: Vec<u32>,
    content_type: String,
    charset: Option<String>,
    encoding: String,
    is_json: bool,
}

impl Part {
    fn section(&self) -> String {
        self.path.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
    }
}

/// The parts of a body structure to fetch, in document order: at most
/// [`message::MAX_PARTS`], each under [`message::MAX_PART_BYTES`], and no
/// deeper than 32 levels (what is deeper is a MIME bomb, not a booking).
fn wanted_parts(structure: &BodyStructure<'_>) -> Vec<Part> {
    let mut wanted = Vec::new();
    let mut stack: Vec<(&BodyStructure<'_>, Vec<u32>)> = vec![(structure, Vec::new())];
    while let Some((node, path)) = stack.pop() {
        if wanted.len() >= message::MAX_PARTS {
            break;
        }
        let (common, other) = match node {
            BodyStructure::Multipart { bodies, .. } => {
                if path.len() < 32 {
                    for (index, body) in bodies.iter().enumerate().rev().take(1_000) {
                        let mut child = path.clone();
                        child.push(u32::try_from(index).unwrap_or(u32::MAX).saturating_add(1));
                        stack.push((body, child));
                    }
                }
                continue;
            }
            BodyStructure::Text { common, other, .. } | BodyStructure::Basic { common, other, .. } => (common, other),
            // A forwarded message is someone else's mail.
            BodyStructure::Message { .. } => continue,
        };
        let (ty, subtype) = (common.ty.ty.to_ascii_lowercase(), common.ty.subtype.to_ascii_lowercase());
        let is_json = ty == "application" && subtype == "ld+json";
        if !(is_json || (ty == "text" && subtype == "html")) || other.octets > message::MAX_PART_BYTES {
            continue;
        }
        let charset = common
            .ty
            .params
            .as_ref()
            .and_then(|params| params.iter().find(|(k, _)| k.eq_ignore_ascii_case("charset")))
            .map(|(_, v)| v.to_string());
        let encoding = match &other.transfer_encoding {
            ContentEncoding::Base64 => "base64".to_owned(),
            ContentEncoding::QuotedPrintable => "quoted-printable".to_owned(),
            ContentEncoding::SevenBit => "7bit".to_owned(),
            ContentEncoding::EightBit => "8bit".to_owned(),
            ContentEncoding::Binary => "binary".to_owned(),
            ContentEncoding::Other(other) => other.to_ascii_lowercase(),
        };
        // A single-part message's body is its part 1.
        let path = if path.is_empty() { vec![1] } else { path };
        wanted.push(Part { path, content_type: format!("{ty}/{subtype}"), charset, encoding, is_json });
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_a_server_quotes_back_are_taken_out_of_errors() {
        let secrets = ["hunter2-password".to_owned(), "abc".to_owned()];
        let quoted = PollError::Transient("BAD: `a1 LOGIN u hunter2-password` is not abc".into());
        match quoted.redacted(&secrets) {
            PollError::Transient(text) => assert_eq!(text, "BAD: `a1 LOGIN u [redacted]` is not abc"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_deepest_body_structure_allowed_is_walked_to_its_first_32_levels() {
        let mut reply = b"* 1 FETCH (UID 1 BODYSTRUCTURE ".to_vec();
        let depth = ImapLimits::default().max_depth as usize - 1;
        reply.extend(std::iter::repeat_n(b'(', depth - 1));
        reply.extend(b"(\"text\" \"html\" NIL NIL NIL \"7bit\" 10 1)");
        reply.extend(b" \"mixed\")".repeat(depth - 1));
        reply.extend(b")\r\n");
        let (_, parsed) = async_imap::imap_proto::parser::parse_response(&reply).expect("parses");
        let async_imap::imap_proto::Response::Fetch(_, attributes) = parsed else { panic!("{parsed:?}") };
        let Some(async_imap::imap_proto::AttributeValue::BodyStructure(structure)) = attributes.get(1) else {
            panic!("{attributes:?}")
        };
        assert!(wanted_parts(structure).is_empty(), "the text part is deeper than a booking's");
    }
}
