//! `events_retention`: what is older than a tenant's retention leaves the
//! lake and the database. The cut-off is the start of the hour
//! `retention_days` ago (the catalogue's; two years at most): every
//! partition of an earlier hour is deleted, files first and its record last
//! (a run that fails midway is retried and finds it still listed), then
//! every raw event received before it, exported or not. The counts are the
//! job's result, the `longhaul_lake_partitions_expired_total` and
//! `longhaul_events_expired_total` counters, and an `events.retention`
//! entry in the tenant's audit log.

use async_trait::async_trait;
use chrono::Utc;
use longhaul_jobs::{
    admin::NewAudit,
    events::{hour_of, Catalogue},
    kind::{self, EventsRetentionPayload},
};
use serde_json::json;

use crate::{
    context::JobContext,
    error::JobError,
    handler::Handler,
    lake::{part_names, TenantLake},
    JobResult,
};

pub struct EventsRetention;

#[async_trait]
impl Handler for EventsRetention {
    type Kind = kind::EventsRetention;

    async fn run(&self, ctx: &JobContext, payload: EventsRetentionPayload) -> JobResult {
        let ttl = <kind::EventsRetention as longhaul_jobs::kind::Kind>::TIMEOUT + std::time::Duration::from_secs(60);
        crate::lake::exclusive(ctx, ttl, self.work(ctx, payload)).await
    }
}

impl EventsRetention {
    async fn work(&self, ctx: &JobContext, _payload: EventsRetentionPayload) -> JobResult {
        let tenant = ctx.job.tenant_id.clone();
        let catalogue = ctx.store.event_catalogue(&tenant).await?.unwrap_or_else(Catalogue::default_catalogue);
        let days = i64::from(catalogue.retention_days);
        let cutoff = hour_of(Utc::now() - chrono::Duration::days(days));
        let lake = TenantLake::new(ctx.objects()?.clone(), &tenant);

        let expired = ctx.store.lake_partitions(&tenant, Some(cutoff)).await?;
        let mut lake_events = 0i64;
        for partition in &expired {
            if ctx.cancel.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            for name in part_names(&partition.manifest) {
                lake.delete(&lake.key(partition.hour, &name)?).await?;
            }
            lake.delete(&lake.key(partition.hour, "_manifest.json")?).await?;
            lake_events += partition.events;
        }
        let hours: Vec<_> = expired.iter().map(|partition| partition.hour).collect();
        let partitions = ctx.store.delete_lake_partitions(&tenant, &hours).await?;
        let raw = ctx.store.delete_events_before(&tenant, cutoff).await?;

        let detail = json!({
            "retention_days": days,
            "cutoff": cutoff,
            "partitions": partitions,
            "lake_events": lake_events,
            "raw_events": raw,
        });
        if partitions > 0 || raw > 0 {
            let entry = NewAudit {
                tenant_id: tenant.clone(),
                actor: ctx.job.user_id.clone(),
                role: "platform".into(),
                action: "events.retention".into(),
                target: format!("lake/events/tenant={tenant}/"),
                subject_tenant: Some(tenant.clone()),
                detail: detail.clone(),
                source_ip: None,
                user_agent: None,
            };
            ctx.store.record_audit(&entry).await?;
        }
        metrics::counter!("longhaul_lake_partitions_expired_total").increment(partitions);
        metrics::counter!("longhaul_events_expired_total").increment(raw + u64::try_from(lake_events).unwrap_or(0));
        tracing::info!(partitions, lake_events, raw, %cutoff, "expired events past the tenant's retention");
        Ok(Some(detail))
    }
}
