//! Inboxes users connect, so that `email_poll` can find their reservations.
//!
//! An account holds where the mailbox is (host, port, TLS), how to log in
//! (a password, or an OAuth2 refresh token for XOAUTH2), which senders are
//! trusted, and the sync position (the mailbox's UIDVALIDITY and the last
//! UID seen). The credential is stored sealed (see [`secrets`]) and never
//! leaves the store except to a poll that holds the account.
//!
//! **One poll at a time.** A poll first takes the account
//! ([`MailStore::begin_poll`]): one attempt of one job holds it until its
//! lease ends. Everything the poll writes (the reservations and the new sync
//! position, in one transaction; a rotated refresh token) is fenced on that
//! hold, so an attempt that lost it writes nothing.
//!
//! **Scheduling.** The scheduler's leader enqueues a poll for every active
//! account whose `next_poll_at` has come (see [`PollSchedule`]); a poll that
//! finds nothing makes the next one wait longer, one that finds mail resets
//! the wait. An account whose credentials were refused `needs_attention`
//! and is not polled until its owner updates it.

use crate::store::{from_row, Columns, StoreError};
pub mod secrets;
mod sql;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{string_enum, ReservationFields};
use crate::{
    model::Scope,
    store::{AttemptRef, Result},
};
pub use secrets::{Envelope, KeyWrapper, LocalKeys, Sealed, SecretError, SECRET_KEYS_VAR};

string_enum!(
    /// How the IMAP connection is protected: TLS from the first byte
    /// (`tls`, port 993), upgraded with STARTTLS, or plain (`none`, for
    /// local test servers only).
    MailTls {
        Tls = "tls",
        Starttls = "starttls",
        None = "none",
    }
);

string_enum!(
    /// How the poll logs in: IMAP LOGIN with a password, or XOAUTH2 with an
    /// access token refreshed from the provider's token endpoint.
    MailAuth {
        Password = "password",
        Oauth2 = "oauth2",
    }
);

string_enum!(
    /// What the poll makes of the DKIM verdict the receiving server wrote
    /// into `Authentication-Results`: ignore it (`off`); when there is one,
    /// require a pass for the sender's domain (`if_present`, the default);
    /// or accept only mail with such a pass (`required`).
    DkimPolicy {
        Off = "off",
        IfPresent = "if_present",
        Required = "required",
    }
);

string_enum!(
    /// `needs_attention`: the server refused the credentials, and the owner
    /// must update them.
    MailAccountStatus {
        Active = "active",
        NeedsAttention = "needs_attention",
    }
);

/// A connected inbox, as its owner sees it. Credentials never appear.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MailAccount {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: String,
    #[serde(skip)]
    pub user_id: String,
    pub imap_host: String,
    pub imap_port: u16,
    pub tls: MailTls,
    pub username: String,
    /// `password` or `oauth2`.
    pub auth: MailAuth,
    /// Sender domains whose mail is read: each matches itself and its
    /// subdomains, never a mere substring.
    pub allowed_senders: Vec<String>,
    pub dkim: DkimPolicy,
    pub status: MailAccountStatus,
    /// Why the last poll failed, if it did.
    pub last_error: Option<String>,
    /// Messages read and reservations found, over the account's life.
    pub messages_seen: i64,
    pub reservations_found: i64,
    pub last_polled_at: Option<DateTime<Utc>>,
    pub next_poll_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A credential, as sealed. Its `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MailSecret {
    Password {
        password: String,
    },
    Oauth2 {
        token_url: String,
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<String>,
        refresh_token: String,
    },
}

impl std::fmt::Debug for MailSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailSecret::Password { .. } => f.write_str("MailSecret::Password(…)"),
            MailSecret::Oauth2 { token_url, client_id, .. } => f
                .debug_struct("MailSecret::Oauth2")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

impl Drop for MailSecret {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        match self {
            MailSecret::Password { password } => password.zeroize(),
            MailSecret::Oauth2 { client_secret, refresh_token, .. } => {
                refresh_token.zeroize();
                if let Some(secret) = client_secret {
                    secret.zeroize();
                }
            }
        }
    }
}

impl MailSecret {
    pub fn auth(&self) -> MailAuth {
        match self {
            MailSecret::Password { .. } => MailAuth::Password,
            MailSecret::Oauth2 { .. } => MailAuth::Oauth2,
        }
    }

    /// The associated data that binds a sealed credential to its account.
    pub fn context(tenant_id: &str, user_id: &str, account_id: Uuid) -> Vec<u8> {
        format!("longhaul/mail-account/v1\0{tenant_id}\0{user_id}\0{account_id}").into_bytes()
    }

    pub async fn seal(&self, envelope: &Envelope, context: &[u8]) -> std::result::Result<Sealed, SecretError> {
        let plain = Zeroizing::new(serde_json::to_vec(self).map_err(|err| SecretError::Config(err.to_string()))?);
        envelope.seal(&plain, context).await
    }

    pub async fn open(
        envelope: &Envelope,
        sealed: &Sealed,
        context: &[u8],
    ) -> std::result::Result<MailSecret, SecretError> {
        let plain = envelope.open(sealed, context).await?;
        serde_json::from_slice(&plain).map_err(|_| SecretError::Tampered)
    }
}

/// A new account, its credential already sealed for its id.
#[derive(Debug, Clone)]
pub struct NewMailAccount {
    pub id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    pub imap_host: String,
    pub imap_port: u16,
    pub tls: MailTls,
    pub username: String,
    pub auth: MailAuth,
    pub allowed_senders: Vec<String>,
    pub dkim: DkimPolicy,
    pub secret: Sealed,
}

/// What an owner changes on an account; absent fields stay. New
/// credentials, or new senders, make an account that needs attention
/// active again.
#[derive(Debug, Clone, Default)]
pub struct MailAccountUpdate {
    pub secret: Option<(MailAuth, Sealed)>,
    pub allowed_senders: Option<Vec<String>>,
    pub dkim: Option<DkimPolicy>,
}

/// Where the last sync stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncPosition {
    /// The mailbox's UIDVALIDITY; none before the first sync.
    pub uid_validity: Option<u32>,
    /// The highest UID already read (0: none).
    pub last_uid: u32,
}

/// What a poll that holds its account gets: the account, its sealed
/// credential and its sync position.
#[derive(Debug, Clone)]
pub struct PollGrant {
    pub account: MailAccount,
    pub secret: Sealed,
    pub position: SyncPosition,
}

/// What [`MailStore::begin_poll`] found.
#[derive(Debug, Clone)]
pub enum PollStart {
    Granted(Box<PollGrant>),
    /// Another poll holds the account.
    Busy,
    /// No such account (it was deleted), or not the job owner's.
    Gone,
    /// Its credentials were refused; it waits for its owner.
    NeedsAttention(Option<String>),
}

/// A reservation found in a message, with its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundReservation {
    /// Provider, reservation number and item: seeing it again updates the
    /// reservation with this key.
    pub dedupe_key: String,
    pub fields: ReservationFields,
    /// The message's `Date`: when the vendor says the change happened.
    pub sent_at: Option<DateTime<Utc>>,
}

/// What one sync read, committed with its new position.
#[derive(Debug, Clone, Default)]
pub struct SyncBatch {
    pub position: SyncPosition,
    /// Messages read in this batch.
    pub messages: u32,
    /// In the order they were found; a later one for the same key wins.
    pub reservations: Vec<FoundReservation>,
}

/// What committing a batch did to the user's reservations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub inserted: u32,
    pub updated: u32,
    pub unchanged: u32,
}

/// How a poll ended, for the account's status and its next poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollEnd {
    /// It ran; `found_mail` when it read at least one new message.
    Done { found_mail: bool },
    /// It failed; `needs_attention` when only the owner can fix it.
    Failed { error: String, needs_attention: bool },
}

/// When accounts are polled: every `every` (jittered by ±10 %), doubled
/// for each poll in a row that found nothing, up to `max_backoff` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    pub every: Duration,
    pub max_backoff: u32,
}

impl Default for PollSchedule {
    fn default() -> Self {
        PollSchedule { every: Duration::from_secs(15 * 60), max_backoff: 8 }
    }
}

impl PollSchedule {
    /// How long after a poll the next one comes, before jitter, given how
    /// many polls in a row found nothing.
    pub fn interval(&self, idle_polls: u32) -> Duration {
        let factor = 1u32.checked_shl(idle_polls.min(16)).unwrap_or(u32::MAX).min(self.max_backoff.max(1));
        self.every.saturating_mul(factor)
    }

    /// [`PollSchedule::interval`] with ±10 % jitter, so that accounts
    /// connected together drift apart.
    pub fn next_delay(&self, idle_polls: u32) -> Duration {
        use rand::Rng;
        let secs = self.interval(idle_polls).as_secs_f64() * rand::rng().random_range(0.9..1.1);
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(u64::from(u32::MAX)))
    }
}

/// An account whose poll is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePoll {
    pub account_id: Uuid,
    pub tenant_id: String,
    pub user_id: String,
    pub idle_polls: u32,
}

/// Mail accounts, on both databases.
#[async_trait]
pub trait MailStore: Send + Sync {
    async fn insert_mail_account(&self, account: NewMailAccount) -> Result<MailAccount>;

    /// Accounts, oldest first.
    async fn list_mail_accounts(&self, scope: &Scope) -> Result<Vec<MailAccount>>;

    async fn get_mail_account(&self, scope: &Scope, id: Uuid) -> Result<Option<MailAccount>>;

    /// Changes an account (see [`MailAccountUpdate`]). None when `scope`
    /// does not see it.
    async fn update_mail_account(
        &self,
        scope: &Scope,
        id: Uuid,
        update: MailAccountUpdate,
    ) -> Result<Option<MailAccount>>;

    /// Deletes an account with its credential and sync state. The
    /// reservations it found stay: they are the user's.
    async fn delete_mail_account(&self, scope: &Scope, id: Uuid) -> Result<bool>;

    /// How many accounts `scope` sees. The API caps a user's.
    async fn count_mail_accounts(&self, scope: &Scope) -> Result<u64>;

    /// Takes the account for one attempt of a poll job owned by
    /// `tenant_id`/`user_id`, for `lease` (a later attempt of the same job
    /// takes over at once).
    async fn begin_poll(
        &self,
        account_id: Uuid,
        tenant_id: &str,
        user_id: &str,
        job: AttemptRef,
        lease: Duration,
    ) -> Result<PollStart>;

    /// Replaces the sealed credential (a rotated refresh token), if `job`
    /// still holds the account. Returns whether it did.
    async fn rotate_mail_secret(&self, account_id: Uuid, job: AttemptRef, secret: Sealed) -> Result<bool>;

    /// In one transaction, if `job` still holds the account: upserts the
    /// reservations by their dedupe key (recording what changed in their
    /// history), regroups the user's trips, and moves the sync position.
    /// None when the hold was lost (nothing was written).
    async fn commit_sync(&self, account_id: Uuid, job: AttemptRef, batch: SyncBatch) -> Result<Option<SyncReport>>;

    /// Releases the account and records how the poll ended. A poll that
    /// found mail also brings the next one to `now + next_if_mail`: the wait
    /// an idle inbox had built up ends at once.
    async fn end_poll(&self, account_id: Uuid, job: AttemptRef, end: PollEnd, next_if_mail: Duration) -> Result<()>;

    /// Active accounts due for a poll and not being polled, earliest first.
    async fn due_mail_polls(&self, limit: u32) -> Result<Vec<DuePoll>>;

    /// Sets each account's next poll to `now + delay`.
    async fn schedule_mail_polls(&self, next: &[(Uuid, Duration)]) -> Result<()>;
}

/// A reservation seen again: what the new message says wins, what it
/// leaves out stays (a cancellation often says little more than the
/// number), and its schema.org details are merged key by key.
pub(crate) fn merge_found(before: &ReservationFields, found: &ReservationFields) -> ReservationFields {
    let details = match (&before.details, &found.details) {
        (serde_json::Value::Object(old), serde_json::Value::Object(new)) => {
            let mut merged = old.clone();
            merged.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
            serde_json::Value::Object(merged)
        }
        (_, new) => new.clone(),
    };
    let text = |new: &String, old: &String| if new.trim().is_empty() { old.clone() } else { new.clone() };
    ReservationFields {
        kind: found.kind,
        reservation_number: text(&found.reservation_number, &before.reservation_number),
        provider: text(&found.provider, &before.provider),
        status: found.status,
        starts_at: found.starts_at,
        ends_at: found.ends_at.or(before.ends_at),
        details,
        city: found.city.clone().or_else(|| before.city.clone()),
        country: found.country.clone().or_else(|| before.country.clone()),
        origin: found.origin.clone().or_else(|| before.origin.clone()),
        destination: found.destination.clone().or_else(|| before.destination.clone()),
        start_zone: found.start_zone.or(before.start_zone),
        end_zone: found.end_zone.or(before.end_zone),
    }
}

/// The last reservation of each key, in the order keys first appear.
pub(crate) fn last_of_each_key(found: Vec<FoundReservation>) -> Vec<FoundReservation> {
    let mut order: Vec<FoundReservation> = Vec::with_capacity(found.len());
    for item in found {
        match order.iter_mut().find(|seen| seen.dedupe_key == item.dedupe_key) {
            Some(seen) => {
                let fields = merge_found(&seen.fields, &item.fields);
                *seen = FoundReservation { fields, ..item };
            }
            None => order.push(item),
        }
    }
    order
}

/// Lower-case, without a trailing dot: how sender domains are compared.
pub fn normalize_domain(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `domain` is `allowed` or one of its subdomains. A substring is
/// not enough: `evil-airline.example` and `airline.example.evil` are not
/// `airline.example`.
pub fn domain_allowed(domain: &str, allowed: &str) -> bool {
    let (domain, allowed) = (normalize_domain(domain), normalize_domain(allowed));
    !allowed.is_empty()
        && (domain == allowed || domain.strip_suffix(allowed.as_str()).is_some_and(|head| head.ends_with('.')))
}

pub(crate) fn account_from_row(row: &impl Columns) -> Result<MailAccount> {
    let port: i32 = row.get("imap_port")?;
    from_row!(row => MailAccount {
        id, tenant_id, user_id, imap_host,
        imap_port: u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("imap_port {port}")))?,
        tls, username, auth, allowed_senders: row.json_as("allowed_senders")?, dkim, status, last_error,
        messages_seen, reservations_found, last_polled_at, next_poll_at, created_at, updated_at,
    })
}

pub(crate) fn sealed_from_row(row: &impl Columns) -> Result<Sealed> {
    from_row!(row => Sealed {
        key_id = "secret_key_id", data_key = "secret_data_key", nonce = "secret_nonce", ciphertext = "secret",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_senders_match_a_domain_and_its_subdomains_only() {
        assert!(domain_allowed("airline.example", "airline.example"));
        assert!(domain_allowed("Mail.Airline.Example.", "airline.example"));
        assert!(domain_allowed("a.b.airline.example", "AIRLINE.example"));
        for other in ["evil-airline.example", "airline.example.evil", "xairline.example", "example", ""] {
            assert!(!domain_allowed(other, "airline.example"), "{other}");
        }
        assert!(!domain_allowed("airline.example", ""));
    }

    #[test]
    fn idle_accounts_back_off_up_to_the_cap() {
        let schedule = PollSchedule::default();
        let minutes = |idle| schedule.interval(idle).as_secs() / 60;
        assert_eq!(
            [minutes(0), minutes(1), minutes(2), minutes(3), minutes(4), minutes(99)],
            [15, 30, 60, 120, 120, 120]
        );
        for _ in 0..100 {
            let delay = schedule.next_delay(0).as_secs_f64();
            assert!((810.0..=990.0).contains(&delay), "{delay}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = MailSecret::Oauth2 {
            token_url: "https://oauth.example/token".into(),
            client_id: "client".into(),
            client_secret: Some("client-secret-value".into()),
            refresh_token: "refresh-token-value".into(),
        };
        let shown = format!("{secret:?}");
        assert!(!shown.contains("secret-value") && !shown.contains("refresh-token-value"), "{shown}");
        assert!(!format!("{:?}", MailSecret::Password { password: "hunter2".into() }).contains("hunter2"));
    }
}
