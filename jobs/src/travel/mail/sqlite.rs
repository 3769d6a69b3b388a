//! Mail accounts on SQLite (times in milliseconds, as in the jobs table).
//! Writes run in `BEGIN IMMEDIATE` transactions: SQLite has one writer, so
//! the account's row needs no lock of its own.

use super::{account_from_row, sealed_from_row};
use crate::travel::reservation_from_row;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, SqliteConnection};
use uuid::Uuid;

use super::{
    last_of_each_key, merge_found, DuePoll, FoundReservation, MailAccount, MailAccountStatus, MailAccountUpdate,
    MailStore, NewMailAccount, PollEnd, PollGrant, PollStart, Sealed, SyncBatch, SyncPosition, SyncReport,
};
use crate::{
    model::Scope,
    store::{
        sqlite::{now_ms, push_scope},
        AttemptRef, Result, SqliteStore, StoreError,
    },
    travel::{
        sqlite::{record_change, regroup, RESERVATION_COLUMNS},
        ChangeOrigin, ReservationSource,
    },
};

const ACCOUNT_COLUMNS: &str = "id, tenant_id, user_id, imap_host, imap_port, tls, username, auth, allowed_senders, \
     dkim, status, last_error, messages_seen, reservations_found, last_polled_at, next_poll_at, created_at, updated_at";

fn uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|err| StoreError::Corrupt(format!("id `{text}`: {err}")))
}

fn uid(value: Option<i64>, column: &str) -> Result<Option<u32>> {
    value.map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} {v}")))).transpose()
}

fn ms_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Upserts found reservations by their key, inside the caller's write
/// transaction.
async fn upsert_found(
    conn: &mut SqliteConnection,
    tenant_id: &str,
    user_id: &str,
    found: Vec<FoundReservation>,
) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    for item in last_of_each_key(found) {
        let row = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE tenant_id = ?1 AND user_id = ?2 AND dedupe_key = ?3"
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(&item.dedupe_key)
        .fetch_optional(&mut *conn)
        .await?;
        let fields = &item.fields;
        let now = now_ms();
        let Some(row) = row else {
            sqlx::query(
                "INSERT INTO reservations (id, tenant_id, user_id, type, reservation_number, provider, status, \
                 starts_at, ends_at, source, details, city, country, origin, destination, dedupe_key, created_at, \
                 updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17)",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(tenant_id)
            .bind(user_id)
            .bind(fields.kind.as_str())
            .bind(&fields.reservation_number)
            .bind(&fields.provider)
            .bind(fields.status.as_str())
            .bind(fields.starts_at.timestamp_millis())
            .bind(fields.ends_at.map(|t| t.timestamp_millis()))
            .bind(ReservationSource::Email.as_str())
            .bind(fields.details.to_string())
            .bind(&fields.city)
            .bind(&fields.country)
            .bind(&fields.origin)
            .bind(&fields.destination)
            .bind(&item.dedupe_key)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            report.inserted += 1;
            continue;
        };
        let before = reservation_from_row(&row)?;
        let merged = merge_found(&before.fields(), fields);
        let changes = merged.changes_from(&before.fields());
        if changes.is_empty() {
            report.unchanged += 1;
            continue;
        }
        let origin = ChangeOrigin { source: ReservationSource::Email, changed_at: item.sent_at };
        record_change(conn, tenant_id, before.id, &merged, changes, origin).await?;
        report.updated += 1;
    }
    Ok(report)
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn insert_mail_account(&self, account: NewMailAccount) -> Result<MailAccount> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO mail_accounts (id, tenant_id, user_id, imap_host, imap_port, tls, username, auth, \
             allowed_senders, dkim, secret_key_id, secret_data_key, secret_nonce, secret, next_poll_at, created_at, \
             updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?15) \
             RETURNING {ACCOUNT_COLUMNS}"
        ))
        .bind(account.id.to_string())
        .bind(&account.tenant_id)
        .bind(&account.user_id)
        .bind(&account.imap_host)
        .bind(i64::from(account.imap_port))
        .bind(account.tls.as_str())
        .bind(&account.username)
        .bind(account.auth.as_str())
        .bind(serde_json::json!(account.allowed_senders).to_string())
        .bind(account.dkim.as_str())
        .bind(&account.secret.key_id)
        .bind(&account.secret.data_key)
        .bind(&account.secret.nonce)
        .bind(&account.secret.ciphertext)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        account_from_row(&row)
    }

    async fn list_mail_accounts(&self, scope: &Scope) -> Result<Vec<MailAccount>> {
        let mut query = QueryBuilder::new(format!("SELECT {ACCOUNT_COLUMNS} FROM mail_accounts WHERE 1"));
        push_scope(&mut query, scope);
        query.push(" ORDER BY created_at, id LIMIT 1000");
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(account_from_row).collect()
    }

    async fn get_mail_account(&self, scope: &Scope, id: Uuid) -> Result<Option<MailAccount>> {
        let mut query = QueryBuilder::new(format!("SELECT {ACCOUNT_COLUMNS} FROM mail_accounts WHERE id = "));
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        let row = query.build().fetch_optional(self.pool()).await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn update_mail_account(
        &self,
        scope: &Scope,
        id: Uuid,
        update: MailAccountUpdate,
    ) -> Result<Option<MailAccount>> {
        let now = now_ms();
        let mut query = QueryBuilder::new("UPDATE mail_accounts SET updated_at = ");
        query.push_bind(now);
        let revives = update.secret.is_some() || update.allowed_senders.is_some();
        if let Some((auth, secret)) = update.secret {
            query.push(", auth = ").push_bind(auth.as_str());
            query.push(", secret_key_id = ").push_bind(secret.key_id);
            query.push(", secret_data_key = ").push_bind(secret.data_key);
            query.push(", secret_nonce = ").push_bind(secret.nonce);
            query.push(", secret = ").push_bind(secret.ciphertext);
        }
        if let Some(senders) = update.allowed_senders {
            query.push(", allowed_senders = ").push_bind(serde_json::json!(senders).to_string());
        }
        if let Some(dkim) = update.dkim {
            query.push(", dkim = ").push_bind(dkim.as_str());
        }
        if revives {
            query.push(", status = 'active', last_error = NULL, idle_polls = 0, next_poll_at = ").push_bind(now);
        }
        query.push(" WHERE id = ").push_bind(id.to_string());
        push_scope(&mut query, scope);
        query.push(format!(" RETURNING {ACCOUNT_COLUMNS}"));
        let row = query.build().fetch_optional(self.pool()).await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn delete_mail_account(&self, scope: &Scope, id: Uuid) -> Result<bool> {
        let mut query = QueryBuilder::new("DELETE FROM mail_accounts WHERE id = ");
        query.push_bind(id.to_string());
        push_scope(&mut query, scope);
        Ok(query.build().execute(self.pool()).await?.rows_affected() > 0)
    }

    async fn count_mail_accounts(&self, scope: &Scope) -> Result<u64> {
        let mut query = QueryBuilder::new("SELECT count(*) FROM mail_accounts WHERE 1");
        push_scope(&mut query, scope);
        let count: i64 = query.build_query_scalar().fetch_one(self.pool()).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn begin_poll(
        &self,
        account_id: Uuid,
        tenant_id: &str,
        user_id: &str,
        job: AttemptRef,
        lease: Duration,
    ) -> Result<PollStart> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS}, secret_key_id, secret_data_key, secret_nonce, secret, uid_validity, last_uid, \
               poll_job_id, poll_attempt, poll_lease_until > ?4 AS held \
             FROM mail_accounts WHERE id = ?1 AND tenant_id = ?2 AND user_id = ?3"
        ))
        .bind(account_id.to_string())
        .bind(tenant_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(PollStart::Gone) };
        let account = account_from_row(&row)?;
        if account.status == MailAccountStatus::NeedsAttention {
            return Ok(PollStart::NeedsAttention(account.last_error));
        }
        let holder = row.try_get::<Option<&str>, _>("poll_job_id")?.map(uuid).transpose()?;
        let holder_attempt: Option<i32> = row.try_get("poll_attempt")?;
        let held: Option<bool> = row.try_get("held")?;
        let ours = holder == Some(job.id) && holder_attempt.is_none_or(|a| a <= job.generation);
        if held == Some(true) && !ours {
            return Ok(PollStart::Busy);
        }
        sqlx::query(
            "UPDATE mail_accounts SET poll_job_id = ?2, poll_attempt = ?3, poll_lease_until = ?4 WHERE id = ?1",
        )
        .bind(account_id.to_string())
        .bind(job.id.to_string())
        .bind(job.generation)
        .bind(now.saturating_add(ms_of(lease)))
        .execute(&mut *tx)
        .await?;
        let grant = PollGrant {
            secret: sealed_from_row(&row)?,
            position: SyncPosition {
                uid_validity: uid(row.try_get("uid_validity")?, "uid_validity")?,
                last_uid: uid(Some(row.try_get("last_uid")?), "last_uid")?.unwrap_or(0),
            },
            account,
        };
        tx.commit().await?;
        Ok(PollStart::Granted(Box::new(grant)))
    }

    async fn rotate_mail_secret(&self, account_id: Uuid, job: AttemptRef, secret: Sealed) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE mail_accounts SET secret_key_id = ?4, secret_data_key = ?5, secret_nonce = ?6, secret = ?7, \
             updated_at = ?8 \
             WHERE id = ?1 AND poll_job_id = ?2 AND poll_attempt = ?3 AND poll_lease_until > ?8",
        )
        .bind(account_id.to_string())
        .bind(job.id.to_string())
        .bind(job.generation)
        .bind(&secret.key_id)
        .bind(&secret.data_key)
        .bind(&secret.nonce)
        .bind(&secret.ciphertext)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn commit_sync(&self, account_id: Uuid, job: AttemptRef, batch: SyncBatch) -> Result<Option<SyncReport>> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE mail_accounts SET uid_validity = ?4, last_uid = ?5, messages_seen = messages_seen + ?6, \
             updated_at = ?7 \
             WHERE id = ?1 AND poll_job_id = ?2 AND poll_attempt = ?3 AND poll_lease_until > ?7 \
             RETURNING tenant_id, user_id",
        )
        .bind(account_id.to_string())
        .bind(job.id.to_string())
        .bind(job.generation)
        .bind(batch.position.uid_validity.map(i64::from))
        .bind(i64::from(batch.position.last_uid))
        .bind(i64::from(batch.messages))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (tenant_id, user_id): (String, String) = (row.try_get("tenant_id")?, row.try_get("user_id")?);
        let report = upsert_found(&mut tx, &tenant_id, &user_id, batch.reservations).await?;
        if report.inserted + report.updated > 0 {
            sqlx::query("UPDATE mail_accounts SET reservations_found = reservations_found + ?2 WHERE id = ?1")
                .bind(account_id.to_string())
                .bind(i64::from(report.inserted))
                .execute(&mut *tx)
                .await?;
            regroup(&mut tx, &tenant_id, &user_id).await?;
        }
        tx.commit().await?;
        Ok(Some(report))
    }

    async fn end_poll(&self, account_id: Uuid, job: AttemptRef, end: PollEnd, next_if_mail: Duration) -> Result<()> {
        let (found_mail, error, attention) = match &end {
            PollEnd::Done { found_mail } => (*found_mail, None, false),
            PollEnd::Failed { error, needs_attention } => (false, Some(error.as_str()), *needs_attention),
        };
        sqlx::query(
            "UPDATE mail_accounts SET poll_job_id = NULL, poll_attempt = NULL, poll_lease_until = NULL, \
               last_polled_at = ?7, updated_at = ?7, last_error = ?4, \
               idle_polls = CASE WHEN ?5 THEN 0 WHEN ?4 IS NULL THEN idle_polls + 1 ELSE idle_polls END, \
               status = CASE WHEN ?6 THEN 'needs_attention' ELSE status END, \
               next_poll_at = CASE WHEN ?5 THEN ?7 + ?8 ELSE next_poll_at END \
             WHERE id = ?1 AND poll_job_id = ?2 AND poll_attempt = ?3",
        )
        .bind(account_id.to_string())
        .bind(job.id.to_string())
        .bind(job.generation)
        .bind(error)
        .bind(found_mail)
        .bind(attention)
        .bind(now_ms())
        .bind(ms_of(next_if_mail))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn due_mail_polls(&self, limit: u32) -> Result<Vec<DuePoll>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, user_id, idle_polls FROM mail_accounts \
             WHERE status = 'active' AND next_poll_at <= ?1 \
               AND (poll_lease_until IS NULL OR poll_lease_until <= ?1) \
             ORDER BY next_poll_at LIMIT ?2",
        )
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DuePoll {
                    account_id: uuid(row.try_get("id")?)?,
                    tenant_id: row.try_get("tenant_id")?,
                    user_id: row.try_get("user_id")?,
                    idle_polls: u32::try_from(row.try_get::<i64, _>("idle_polls")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn schedule_mail_polls(&self, next: &[(Uuid, Duration)]) -> Result<()> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        for (id, delay) in next {
            sqlx::query("UPDATE mail_accounts SET next_poll_at = ?2 WHERE id = ?1")
                .bind(id.to_string())
                .bind(now.saturating_add(ms_of(*delay)))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
