//! Mail accounts in SQL, once for both databases (see `store::sql`).

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    account_from_row, last_of_each_key, merge_found, sealed_from_row, DuePoll, FoundReservation, MailAccount,
    MailAccountStatus, MailAccountUpdate, MailStore, NewMailAccount, PollEnd, PollGrant, PollStart, Sealed, SyncBatch,
    SyncPosition, SyncReport,
};
use crate::{
    model::Scope,
    store::{
        from_row,
        sql::{Exec, SqlStore, Table, Tx},
        AttemptRef, Columns, Result, StoreError,
    },
    travel::{
        reservation_from_row,
        sql::{insert_reservation, record_change, regroup, NewTrips, RESERVATION_COLUMNS},
        ChangeOrigin, Reservation, ReservationSource, ReservationType,
    },
};

const ACCOUNT_COLUMNS: &str = "id, tenant_id, user_id, imap_host, imap_port, tls, username, auth, allowed_senders, \
     dkim, status, last_error, messages_seen, reservations_found, last_polled_at, next_poll_at, created_at, updated_at";

fn uid(value: Option<i64>, column: &str) -> Result<Option<u32>> {
    value.map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} {v}")))).transpose()
}

/// Upserts found reservations by their key, inside the caller's
/// transaction. Returns what it did, and whether anything changed.
///
/// A flight whose key is new may be one already held, rebooked to another
/// day or flight (the key holds the departure date): see [`rebooked`].
async fn upsert_found(tx: &mut Tx, tenant_id: &str, user_id: &str, found: Vec<FoundReservation>) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let found = last_of_each_key(found);
    let keys: Vec<String> = found.iter().map(|item| item.dedupe_key.clone()).collect();
    for item in found {
        let mut select = tx
            .sql(&format!(
                "SELECT {RESERVATION_COLUMNS} FROM reservations \
                 WHERE tenant_id = $1 AND user_id = $2 AND dedupe_key = $3"
            ))
            .bind(tenant_id)
            .bind(user_id)
            .bind(&item.dedupe_key);
        select.push_lock(" FOR UPDATE");
        let (before, rekey) = match tx.optional(select).await? {
            Some(row) => (Some(reservation_from_row(&row)?), false),
            None => (rebooked(tx, tenant_id, user_id, &item, &keys).await?, true),
        };
        let fields = &item.fields;
        let Some(before) = before else {
            insert_reservation(tx, tenant_id, user_id, ReservationSource::Email, fields, Some(&item.dedupe_key))
                .await?;
            report.inserted += 1;
            continue;
        };
        if rekey {
            let update = tx.sql("UPDATE reservations SET dedupe_key = $2 WHERE id = $1").bind(before.id);
            tx.execute(update.bind(&item.dedupe_key)).await?;
        }
        let merged = merge_found(&before.fields(), fields);
        let changes = merged.changes_from(&before.fields());
        if changes.is_empty() {
            report.unchanged += 1;
            continue;
        }
        let origin = ChangeOrigin { source: ReservationSource::Email, changed_at: item.sent_at };
        record_change(tx, tenant_id, before.id, &merged, changes, origin).await?;
        report.updated += 1;
    }
    Ok(report)
}

/// The flight a found one with a new key is a rebooking of, if any: one of
/// the user's flights from email with the same airline, booking number and
/// route, under a key this batch does not also hold (the other legs of a
/// booking that flies one route twice are not rebookings of each other);
/// of several, the one whose departure is closest. Locked.
async fn rebooked(
    tx: &mut Tx,
    tenant_id: &str,
    user_id: &str,
    item: &FoundReservation,
    batch_keys: &[String],
) -> Result<Option<Reservation>> {
    let fields = &item.fields;
    let (Some(origin), Some(destination)) = (&fields.origin, &fields.destination) else { return Ok(None) };
    if fields.kind != ReservationType::Flight || fields.reservation_number.trim().is_empty() {
        return Ok(None);
    }
    let mut select = tx
        .sql(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations \
             WHERE tenant_id = $1 AND user_id = $2 AND source = 'email' AND type = 'flight' \
             AND reservation_number = $3 AND provider = $4 AND origin = $5 AND destination = $6 \
             AND dedupe_key IS NOT NULL AND NOT ("
        ))
        .bind(tenant_id)
        .bind(user_id)
        .bind(&fields.reservation_number)
        .bind(&fields.provider)
        .bind(origin)
        .bind(destination);
    select.push_any("dedupe_key", batch_keys.to_vec()).push(")").push_lock(" FOR UPDATE");
    let candidates = tx.all(select, reservation_from_row).await?;
    Ok(candidates.into_iter().min_by_key(|r| ((r.starts_at - fields.starts_at).num_seconds().unsigned_abs(), r.id)))
}

#[async_trait]
impl<S: SqlStore> MailStore for S {
    async fn insert_mail_account(&self, account: NewMailAccount) -> Result<MailAccount> {
        let mut db = self.db();
        let insert = db
            .sql(&format!(
                "INSERT INTO mail_accounts (id, tenant_id, user_id, imap_host, imap_port, tls, username, auth, \
                 allowed_senders, dkim, secret_key_id, secret_data_key, secret_nonce, secret, next_poll_at, \
                 created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now(), now(), now()) \
                 RETURNING {ACCOUNT_COLUMNS}"
            ))
            .bind(account.id)
            .bind(&account.tenant_id)
            .bind(&account.user_id)
            .bind(&account.imap_host)
            .bind(i32::from(account.imap_port))
            .bind(account.tls.as_str())
            .bind(&account.username)
            .bind(account.auth.as_str())
            .bind(serde_json::json!(account.allowed_senders))
            .bind(account.dkim.as_str())
            .bind(&account.secret.key_id)
            .bind(account.secret.data_key.clone())
            .bind(account.secret.nonce.clone())
            .bind(account.secret.ciphertext.clone());
        account_from_row(&db.one(insert).await?)
    }

    async fn list_mail_accounts(&self, scope: &Scope) -> Result<Vec<MailAccount>> {
        let mut db = self.db();
        let mut select = db.sql(&format!("SELECT {ACCOUNT_COLUMNS} FROM mail_accounts WHERE true"));
        select.push_scope(scope).push(" ORDER BY created_at, id LIMIT 1000");
        db.all(select, account_from_row).await
    }

    async fn get_mail_account(&self, scope: &Scope, id: Uuid) -> Result<Option<MailAccount>> {
        let mut db = self.db();
        let mut select = db.sql(&format!("SELECT {ACCOUNT_COLUMNS} FROM mail_accounts WHERE id = "));
        select.push_bind(id).push_scope(scope);
        db.maybe(select, account_from_row).await
    }

    async fn update_mail_account(
        &self,
        scope: &Scope,
        id: Uuid,
        update: MailAccountUpdate,
    ) -> Result<Option<MailAccount>> {
        let mut db = self.db();
        let mut sql = db.sql("UPDATE mail_accounts SET updated_at = now()");
        let revives = update.secret.is_some() || update.allowed_senders.is_some();
        if let Some((auth, secret)) = update.secret {
            sql.push(", auth = ").push_bind(auth.as_str());
            sql.push(", secret_key_id = ").push_bind(secret.key_id);
            sql.push(", secret_data_key = ").push_bind(secret.data_key);
            sql.push(", secret_nonce = ").push_bind(secret.nonce);
            sql.push(", secret = ").push_bind(secret.ciphertext);
        }
        if let Some(senders) = update.allowed_senders {
            sql.push(", allowed_senders = ").push_bind(serde_json::json!(senders));
        }
        if let Some(dkim) = update.dkim {
            sql.push(", dkim = ").push_bind(dkim.as_str());
        }
        if revives {
            sql.push(", status = 'active', last_error = NULL, idle_polls = 0, next_poll_at = now()");
        }
        sql.push(" WHERE id = ").push_bind(id).push_scope(scope).push(&format!(" RETURNING {ACCOUNT_COLUMNS}"));
        db.maybe(sql, account_from_row).await
    }

    async fn delete_mail_account(&self, scope: &Scope, id: Uuid) -> Result<bool> {
        let mut db = self.db();
        let mut delete = db.sql("DELETE FROM mail_accounts WHERE id = ");
        delete.push_bind(id).push_scope(scope);
        Ok(db.execute(delete).await? > 0)
    }

    async fn count_mail_accounts(&self, scope: &Scope) -> Result<u64> {
        let mut db = self.db();
        let mut count = db.sql("SELECT count(*) AS n FROM mail_accounts WHERE true");
        count.push_scope(scope);
        let count: i64 = db.one(count).await?.get("n")?;
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
        let mut tx = self.db().begin().await?;
        let dialect = tx.dialect();
        let mut select = tx
            .sql(&format!(
                "SELECT {ACCOUNT_COLUMNS}, secret_key_id, secret_data_key, secret_nonce, secret, uid_validity, \
                   last_uid, poll_job_id, poll_attempt, poll_lease_until > now() AS held \
                 FROM mail_accounts WHERE id = $1 AND tenant_id = $2 AND user_id = $3"
            ))
            .bind(account_id)
            .bind(tenant_id)
            .bind(user_id);
        select.push_lock(" FOR UPDATE");
        let Some(row) = tx.optional(select).await? else { return Ok(PollStart::Gone) };
        let account = account_from_row(&row)?;
        if account.status == MailAccountStatus::NeedsAttention {
            return Ok(PollStart::NeedsAttention(account.last_error));
        }
        let holder = row.opt_uuid("poll_job_id")?;
        let holder_attempt: Option<i32> = row.get("poll_attempt")?;
        let held: Option<bool> = row.get("held")?;
        // A live hold by another job, or by a later attempt of this one.
        let ours = holder == Some(job.id) && holder_attempt.is_none_or(|a| a <= job.generation);
        if held == Some(true) && !ours {
            return Ok(PollStart::Busy);
        }
        let hold = tx
            .sql(&format!(
                "UPDATE mail_accounts SET poll_job_id = $2, poll_attempt = $3, poll_lease_until = {} WHERE id = $1",
                dialect.later("$4")
            ))
            .bind(account_id)
            .bind(job.id)
            .bind(job.generation)
            .bind(dialect.span(lease));
        tx.execute(hold).await?;
        let grant = PollGrant {
            secret: sealed_from_row(&row)?,
            position: SyncPosition {
                uid_validity: uid(row.get("uid_validity")?, "uid_validity")?,
                last_uid: uid(Some(row.get("last_uid")?), "last_uid")?.unwrap_or(0),
            },
            account,
        };
        tx.commit().await?;
        Ok(PollStart::Granted(Box::new(grant)))
    }

    async fn rotate_mail_secret(&self, account_id: Uuid, job: AttemptRef, secret: Sealed) -> Result<bool> {
        let mut db = self.db();
        let update = db
            .sql(
                "UPDATE mail_accounts SET secret_key_id = $4, secret_data_key = $5, secret_nonce = $6, secret = $7, \
                 updated_at = now() \
                 WHERE id = $1 AND poll_job_id = $2 AND poll_attempt = $3 AND poll_lease_until > now()",
            )
            .bind(account_id)
            .bind(job.id)
            .bind(job.generation)
            .bind(secret.key_id)
            .bind(secret.data_key)
            .bind(secret.nonce)
            .bind(secret.ciphertext);
        Ok(db.execute(update).await? > 0)
    }

    async fn commit_sync(&self, account_id: Uuid, job: AttemptRef, batch: SyncBatch) -> Result<Option<SyncReport>> {
        let mut tx = self.db().begin().await?;
        // The fence, first: it also locks the account until the commit.
        let fence = tx
            .sql(
                "UPDATE mail_accounts SET uid_validity = $4, last_uid = $5, messages_seen = messages_seen + $6, \
                 updated_at = now() \
                 WHERE id = $1 AND poll_job_id = $2 AND poll_attempt = $3 AND poll_lease_until > now() \
                 RETURNING tenant_id, user_id",
            )
            .bind(account_id)
            .bind(job.id)
            .bind(job.generation)
            .bind(batch.position.uid_validity.map(i64::from))
            .bind(i64::from(batch.position.last_uid))
            .bind(i64::from(batch.messages));
        let Some(row) = tx.optional(fence).await? else { return Ok(None) };
        let (tenant_id, user_id): (String, String) = (row.get("tenant_id")?, row.get("user_id")?);
        let report = upsert_found(&mut tx, &tenant_id, &user_id, batch.reservations).await?;
        if report.inserted + report.updated > 0 {
            let found = tx
                .sql("UPDATE mail_accounts SET reservations_found = reservations_found + $2 WHERE id = $1")
                .bind(account_id)
                .bind(i64::from(report.inserted));
            tx.execute(found).await?;
            let new_trips = if report.inserted > 0 { NewTrips::Announce } else { NewTrips::Quiet };
            regroup(&mut tx, &tenant_id, &user_id, new_trips).await?;
        }
        tx.commit().await?;
        Ok(Some(report))
    }

    async fn end_poll(&self, account_id: Uuid, job: AttemptRef, end: PollEnd, next_if_mail: Duration) -> Result<()> {
        let (found_mail, error, attention) = match &end {
            PollEnd::Done { found_mail } => (*found_mail, None, false),
            PollEnd::Failed { error, needs_attention } => (false, Some(error.as_str()), *needs_attention),
        };
        let mut db = self.db();
        let dialect = db.dialect();
        let update = db
            .sql(&format!(
                "UPDATE mail_accounts SET poll_job_id = NULL, poll_attempt = NULL, poll_lease_until = NULL, \
                   last_polled_at = now(), updated_at = now(), last_error = $4, \
                   idle_polls = CASE WHEN $5 THEN 0 WHEN CAST($4 AS TEXT) IS NULL THEN idle_polls + 1 \
                     ELSE idle_polls END, \
                   status = CASE WHEN $6 THEN 'needs_attention' ELSE status END, \
                   next_poll_at = CASE WHEN $5 THEN {} ELSE next_poll_at END \
                 WHERE id = $1 AND poll_job_id = $2 AND poll_attempt = $3",
                dialect.later("$7")
            ))
            .bind(account_id)
            .bind(job.id)
            .bind(job.generation)
            .bind(error)
            .bind(found_mail)
            .bind(attention)
            .bind(dialect.span(next_if_mail));
        db.execute(update).await?;
        Ok(())
    }

    async fn due_mail_polls(&self, limit: u32) -> Result<Vec<DuePoll>> {
        let mut db = self.db();
        let select = db
            .sql(
                "SELECT id, tenant_id, user_id, idle_polls FROM mail_accounts \
                 WHERE status = 'active' AND next_poll_at <= now() \
                   AND (poll_lease_until IS NULL OR poll_lease_until <= now()) \
                 ORDER BY next_poll_at LIMIT $1",
            )
            .bind(i64::from(limit));
        db.all(select, |row| {
            from_row!(row => DuePoll {
                account_id = "id", tenant_id, user_id,
                idle_polls: u32::try_from(row.get::<i32>("idle_polls")?).unwrap_or(0),
            })
        })
        .await
    }

    async fn schedule_mail_polls(&self, next: &[(Uuid, Duration)]) -> Result<()> {
        let mut db = self.db();
        let dialect = db.dialect();
        let delays = Table::new()
            .column("id", next.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .column("delay", dialect.spans(next.iter().map(|(_, delay)| *delay)));
        let mut update = db.sql(&format!("UPDATE mail_accounts SET next_poll_at = {} FROM ", dialect.later("d.delay")));
        update.push_table(delays, "d").push(" WHERE mail_accounts.id = d.id");
        db.execute(update).await?;
        Ok(())
    }
}
