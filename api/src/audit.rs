//! The audit log: every admin action, with who did it, when and from where.
//!
//! Entries go to the store, where admins read them (`GET /v1/admin/audit`
//! and the dashboard), and to the `longhaul::audit` tracing target. The
//! action has already happened when its entry is written, so an entry that
//! cannot be stored does not undo it: the failure is logged at error level,
//! with the entry, and the log keeps it.

use std::{convert::Infallible, net::SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use longhaul_jobs::{admin::NewAudit, DynStore};
use serde_json::Value;

use crate::auth::Principal;

/// Where a request came from: the client's address and user agent. Behind a
/// load balancer the address is the first of `X-Forwarded-For`, followed by
/// the peer that said so (`203.0.113.7 via 10.0.1.12`), since only the peer
/// is certain.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Header values are client input: keep them short and printable.
fn clean(value: &str, max: usize) -> String {
    value.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(|first| clean(first.trim(), 64))
            .filter(|first| !first.is_empty());
        let source_ip = match (forwarded, peer) {
            (Some(forwarded), Some(peer)) if forwarded != peer => Some(format!("{forwarded} via {peer}")),
            (Some(forwarded), None) => Some(format!("{forwarded} (forwarded)")),
            (_, peer) => peer,
        };
        let user_agent =
            parts.headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok()).map(|value| clean(value, 256));
        Ok(Client { source_ip, user_agent })
    }
}

/// An admin action, described.
pub struct Action<'a> {
    /// Such as `job.retry`.
    pub name: &'a str,
    /// A job id, a lane, a session.
    pub target: String,
    /// The tenant of what was acted on, when it is one tenant's.
    pub subject_tenant: Option<String>,
    pub detail: Value,
}

impl<'a> Action<'a> {
    pub fn new(name: &'a str, target: impl Into<String>) -> Self {
        Action { name, target: target.into(), subject_tenant: None, detail: Value::Object(Default::default()) }
    }

    pub fn on_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.subject_tenant = Some(tenant.into());
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Records an action that has happened.
pub async fn record(store: &DynStore, principal: &Principal, client: &Client, action: Action<'_>) {
    let entry = NewAudit {
        tenant_id: principal.tenant_id.clone(),
        actor: principal.user_id.clone(),
        role: principal.role.as_str().to_owned(),
        action: action.name.to_owned(),
        target: action.target,
        subject_tenant: action.subject_tenant,
        detail: action.detail,
        source_ip: client.source_ip.clone(),
        user_agent: client.user_agent.clone(),
    };
    tracing::info!(
        target: "longhaul::audit",
        tenant_id = %entry.tenant_id,
        actor = %entry.actor,
        role = %entry.role,
        action = %entry.action,
        target = %entry.target,
        subject_tenant = entry.subject_tenant.as_deref().unwrap_or(""),
        detail = %entry.detail,
        source_ip = entry.source_ip.as_deref().unwrap_or(""),
        "admin action"
    );
    if let Err(err) = store.record_audit(&entry).await {
        tracing::error!(
            target: "longhaul::audit",
            error = %err,
            action = %entry.action,
            target = %entry.target,
            actor = %entry.actor,
            "cannot store this audit entry; the log line above is its record"
        );
    }
}
