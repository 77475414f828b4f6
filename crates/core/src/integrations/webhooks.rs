//! Webhooks: subscriptions to event types (with optional filters on the record), delivered
//! through the job queue. Each delivery is signed — `X-CRM-Signature: v1=<hex>` is
//! HMAC-SHA256 with the subscription's secret over `<X-CRM-Timestamp>.<body>` — retried with
//! exponential backoff for about a day (not after a 4xx other than 408/429; `Retry-After`
//! honoured), logged attempt by attempt, and can be redelivered by hand. A subscription that
//! keeps failing is disabled and a `webhook.disabled` event tells the admins.
//!
//! Deliveries are created from the change feed after commit (`relay`, the outbox pattern):
//! every write path — API, batch, composite, import, automation — writes its event in its
//! own transaction and so fires webhooks, and a rolled back change fires none.

use super::feed::{FeedPage, FeedQuery, Position};
use crate::audit::{self, Actor, Change};
use crate::auth::{random_token, Principal};
use crate::config::Config;
use crate::db::{self, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::extract::{path_id, Json};
use crate::ids;
use crate::jobs::{self, JobFailure, JobRegistry, JobResult, RetryPolicy};
use crate::params::IdempotencyParams;
use crate::respond::{ListProblems, ReadProblems, WriteProblems};
use crate::schema::{webhook_attempts, webhook_deliveries, webhook_relay, webhooks};
use crate::sealed::Sealer;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use validator::Validate;

pub const DELIVER_JOB: &str = "webhook.deliver";

#[derive(Debug, Clone, Queryable)]
struct WebhookRow {
    id: String,
    url: String,
    description: Option<String>,
    event_types: String,
    filters: String,
    secret: String,
    active: bool,
    consecutive_failures: i32,
    disabled_at: Option<String>,
    disabled_reason: Option<String>,
    created_by: Option<String>,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    #[schema(format = "uri")]
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    /// Field of the record → value it must have, e.g. `{"owner_id": "…"}`.
    #[schema(value_type = Object)]
    pub filters: Map<String, Value>,
    /// Deliveries are made only while active; re-activate with PATCH `active: true`.
    pub active: bool,
    pub consecutive_failures: i32,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
    /// The signing secret, shown only in the response that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_by: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            url: r.url,
            description: r.description,
            event_types: serde_json::from_str(&r.event_types).unwrap_or_default(),
            filters: serde_json::from_str(&r.filters).unwrap_or_default(),
            active: r.active,
            consecutive_failures: r.consecutive_failures,
            disabled_at: r.disabled_at,
            disabled_reason: r.disabled_reason,
            secret: None,
            created_by: r.created_by,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// What a new subscription must carry.
pub const REQUIRED: &[&str] = &["url", "event_types"];

/// `WebhookCreate` and `WebhookPatch` in the spec, from the one `WebhookInput`.
pub fn split_schemas(doc: &mut serde_json::Value) {
    crate::resource::split_input(doc, "WebhookInput", "Webhook", REQUIRED, "webhook");
}

#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// An http or https URL (ASCII, no fragment).
    #[validate(length(min = 8, max = 2000))]
    #[schema(
        format = "uri",
        min_length = 8,
        max_length = 2000,
        pattern = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?](%[0-9A-Fa-f]{2}|[A-Za-z0-9._~!$&'()*+,;=:@/?-])*)?$"
    )]
    pub url: Option<String>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Patterns such as `contact.*`, `opportunity.updated` or `*`.
    #[validate(length(min = 1, max = 50))]
    #[schema(min_items = 1, max_items = 50, value_type = Option<Vec<EventTypePattern>>)]
    pub event_types: Option<Vec<String>>,
    /// Field of the record → required value.
    #[schema(value_type = Option<Object>)]
    pub filters: Option<Map<String, Value>>,
    /// The signing secret (at least 24 characters); generated when absent.
    #[validate(length(min = 24, max = 200))]
    #[schema(min_length = 24, max_length = 200)]
    pub secret: Option<String>,
    pub active: Option<bool>,
}

/// An event type (`contact.created`) or a family of them (`contact.*`, `*`).
#[derive(ToSchema)]
#[schema(pattern = r"^(\*|[a-z_]+\.(\*|[a-z_]+))$")]
pub struct EventTypePattern(pub String);

/// One delivery of one event to one subscription.
#[derive(Debug, Clone, Queryable, Serialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The exact body sent.
    pub body: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Queryable, Serialize, ToSchema)]
pub struct Attempt {
    pub id: String,
    pub delivery_id: String,
    pub attempted_at: String,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempts_log: Vec<Attempt>,
}

/// Whether an address is inside a private network, the host itself, or otherwise not a
/// public destination — where a webhook could reach services it should not (SSRF).
fn is_private(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || a == 0 // 0.0.0.0/8, "this network"
                || a >= 240 // 240.0.0.0/4 reserved, and the broadcast address
                || a == 100 && (64..128).contains(&b) // 100.64.0.0/10, carrier-grade NAT
                || a == 198 && (18..20).contains(&b) // 198.18.0.0/15, benchmarking
                || a == 192 && b == 0 && v4.octets()[2] == 0 // 192.0.0.0/24, protocol assignments
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || s[0] == 0x2002 // 6to4 embeds an IPv4 address
                || (s[0], s[1], s[2], s[3], s[4], s[5]) == (0x64, 0xff9b, 0, 0, 0, 0) // NAT64
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

const NO_PUBLIC_ADDRESS: &str = "has no public address";

/// A name lookup: `host:port` to the addresses it names.
type Lookup = dyn Fn(&str) -> std::io::Result<Vec<std::net::SocketAddr>> + Send + Sync;

/// The resolver of webhook deliveries: it looks the host up once, drops every address
/// that is not public, and hands the HTTP client only what is left, so the client connects
/// to exactly the addresses that were checked (a second lookup could answer differently:
/// DNS rebinding). No public address, or a failed lookup, fails the delivery.
#[derive(Clone)]
pub struct PinnedResolver {
    lookup: Arc<Lookup>,
    allow_private: bool,
}

impl PinnedResolver {
    pub fn system(allow_private: bool) -> Self {
        Self::with_lookup(allow_private, |netloc| {
            use std::net::ToSocketAddrs;
            netloc.to_socket_addrs().map(Iterator::collect)
        })
    }

    /// With another lookup (a test's resolver that answers what it is told).
    pub fn with_lookup(
        allow_private: bool,
        lookup: impl Fn(&str) -> std::io::Result<Vec<std::net::SocketAddr>> + Send + Sync + 'static,
    ) -> Self {
        PinnedResolver {
            lookup: Arc::new(lookup),
            allow_private,
        }
    }
}

impl ureq::Resolver for PinnedResolver {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
        let all = (self.lookup)(netloc)?;
        let public: Vec<std::net::SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| self.allow_private || !is_private(a.ip()))
            .collect();
        if public.is_empty() {
            let refused: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "refused: {netloc} {NO_PUBLIC_ADDRESS} (it resolves to {}); webhooks go to public URLs",
                    refused.join(", ")
                ),
            ));
        }
        Ok(public)
    }
}

/// The agent every delivery uses: no redirects (a redirect could point anywhere), and the
/// pinned resolver.
pub fn delivery_agent(config: &Config, resolver: PinnedResolver) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(config.webhook_timeout)
        .redirects(0)
        .resolver(resolver)
        .build()
}

/// A private address the URL names without asking DNS: an IP literal in any spelling a
/// browser or HTTP client accepts (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`, `0`,
/// `[::ffff:127.0.0.1]`), or `localhost` with or without a trailing dot. The host is read
/// the way the delivery client reads it (the WHATWG URL parser of the `url` crate, which
/// ureq uses), so what is checked here is what would be connected to. (Subscribing must not
/// wait on DNS; the delivery resolves and checks again.)
fn private_literal(url: &str) -> Option<std::net::IpAddr> {
    use std::net::IpAddr;
    let parsed = url::Url::parse(url).ok()?;
    let ip = match parsed.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            }
            return None;
        }
    };
    is_private(ip).then_some(ip)
}

fn check_destination(url: &str, allow_private: bool) -> ApiResult<()> {
    match private_literal(url).filter(|_| !allow_private) {
        Some(ip) => Err(ApiError::field(
            "url",
            "private_address",
            format!("the host is {ip}, a private address; webhooks go to public URLs (see CRM_WEBHOOK_ALLOW_PRIVATE_URLS)"),
        )),
        None => Ok(()),
    }
}

/// An http(s) URL as RFC 3986 writes one: a host, an optional port, then a path and query
/// of URI characters (no fragment: receivers never see it).
fn check_url(url: &str) -> ApiResult<()> {
    let bad = || ApiError::field("url", "url", "must be an http:// or https:// URL");
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    // An IPv6 literal is written in brackets: `[2001:db8::1]:8443`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, rest)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => match rest {
                "" => ("v6", "1"),
                _ => ("v6", rest.strip_prefix(':').unwrap_or("")),
            },
            _ => ("", "1"),
        },
        None => authority.split_once(':').unwrap_or((authority, "1")),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok = (1..=5).contains(&port.len()) && port.chars().all(|c| c.is_ascii_digit());
    let tail_ok = tail.split('%').enumerate().all(|(i, part)| {
        let hex_ok = i == 0 || part.chars().take(2).filter(char::is_ascii_hexdigit).count() == 2;
        hex_ok
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._~!$&'()*+,;=:@/?-".contains(c))
    });
    if host_ok && port_ok && tail_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn check_types(types: &[String]) -> ApiResult<()> {
    super::feed::parse_types(Some(&types.join(",")))
        .map(|_| ())
        .map_err(|_| {
            ApiError::field(
                "event_types",
                "pattern",
                "patterns look like contact.*, account.updated or *",
            )
        })
}

fn find(conn: &mut DbConn, id: &str) -> ApiResult<WebhookRow> {
    webhooks::table
        .find(id)
        .filter(webhooks::archived_at.is_null())
        .first::<WebhookRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

fn audit_change(
    conn: &mut DbConn,
    me: &Principal,
    action: &str,
    w: &Webhook,
    changes: Value,
) -> ApiResult<()> {
    audit::record(
        conn,
        Change {
            actor: &Actor::from(me),
            action,
            entity_type: "webhook",
            entity_id: &w.id,
            changes,
            record: json!(w),
        },
    )
}

fn create(
    conn: &mut DbConn,
    me: &Principal,
    input: &WebhookInput,
    allow_private: bool,
    sealer: &Sealer,
) -> ApiResult<Webhook> {
    input.validate()?;
    let url = input
        .url
        .as_deref()
        .ok_or_else(|| ApiError::field("url", "required", "is required"))?;
    check_url(url)?;
    check_destination(url, allow_private)?;
    let types = input
        .event_types
        .clone()
        .ok_or_else(|| ApiError::field("event_types", "required", "is required"))?;
    check_types(&types)?;
    let secret = match &input.secret {
        Some(s) => s.clone(),
        None => format!("whsec_{}", random_token(32).map_err(ApiError::internal)?),
    };
    db::write_tx(conn, |c| {
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(webhooks::table)
            .values((
                webhooks::id.eq(&id),
                webhooks::url.eq(url),
                webhooks::description.eq(&input.description),
                webhooks::event_types.eq(json!(types).to_string()),
                webhooks::filters.eq(json!(input.filters.clone().unwrap_or_default()).to_string()),
                webhooks::secret.eq(sealer.seal(&secret)?),
                webhooks::active.eq(input.active.unwrap_or(true)),
                webhooks::created_by.eq(&me.user_id),
                webhooks::version.eq(1),
                webhooks::created_at.eq(&now),
                webhooks::updated_at.eq(&now),
            ))
            .execute(c)?;
        let w: Webhook = find(c, &id)?.into();
        audit_change(
            c,
            me,
            "created",
            &w,
            json!({"url": w.url, "event_types": w.event_types}),
        )?;
        Ok(Webhook {
            secret: Some(secret.clone()),
            ..w
        })
    })
}

/// A PATCH of a subscription, and whether private destinations are allowed.
struct Patch<'a> {
    expected: Option<i32>,
    input: &'a WebhookInput,
    allow_private: bool,
    sealer: Sealer,
}

fn update(conn: &mut DbConn, me: &Principal, id: &str, patch: Patch<'_>) -> ApiResult<Webhook> {
    let Patch {
        expected,
        input,
        allow_private,
        sealer,
    } = patch;
    let new_secret = input
        .secret
        .as_deref()
        .map(|s| sealer.seal(s))
        .transpose()?;
    input.validate()?;
    if let Some(url) = &input.url {
        check_url(url)?;
        check_destination(url, allow_private)?;
    }
    if let Some(types) = &input.event_types {
        check_types(types)?;
    }
    db::write_tx(conn, |c| {
        // Locked first: deliveries count failures on this row concurrently.
        db::lock_row(c, "webhooks", id)?;
        let row = find(c, id)?;
        crate::etag::check(expected, row.version)?;
        let before: Webhook = row.clone().into();
        let active = input.active.unwrap_or(row.active);
        // Re-activating starts the failure count afresh.
        let reactivated = active && !row.active;
        let changed = diesel::update(
            webhooks::table
                .find(id)
                .filter(webhooks::version.eq(row.version)),
        )
        .set((
            webhooks::url.eq(input.url.as_ref().unwrap_or(&row.url)),
            webhooks::description.eq(input.description.as_ref().or(row.description.as_ref())),
            webhooks::event_types.eq(input
                .event_types
                .as_ref()
                .map(|t| json!(t).to_string())
                .unwrap_or(row.event_types.clone())),
            webhooks::filters.eq(input
                .filters
                .as_ref()
                .map(|f| json!(f).to_string())
                .unwrap_or(row.filters.clone())),
            webhooks::secret.eq(new_secret.as_ref().unwrap_or(&row.secret)),
            webhooks::active.eq(active),
            webhooks::consecutive_failures.eq(if reactivated {
                0
            } else {
                row.consecutive_failures
            }),
            webhooks::disabled_at.eq(if active {
                None
            } else {
                row.disabled_at.clone()
            }),
            webhooks::disabled_reason.eq(if active {
                None
            } else {
                row.disabled_reason.clone()
            }),
            webhooks::version.eq(row.version + 1),
            webhooks::updated_at.eq(ids::now()),
        ))
        .execute(c)?;
        crate::resource::changed_one(changed)?;
        let after: Webhook = find(c, id)?.into();
        let changes = audit::diff(&json!(before), &json!(after), &["secret"]);
        audit_change(c, me, "updated", &after, changes)?;
        Ok(after)
    })
}

fn archive(conn: &mut DbConn, me: &Principal, id: &str) -> ApiResult<()> {
    db::write_tx(conn, |c| {
        db::lock_row(c, "webhooks", id)?;
        let row = find(c, id)?;
        let changed = diesel::update(
            webhooks::table
                .find(id)
                .filter(webhooks::version.eq(row.version)),
        )
        .set((
            webhooks::archived_at.eq(ids::now()),
            webhooks::active.eq(false),
            webhooks::version.eq(row.version + 1),
            webhooks::updated_at.eq(ids::now()),
        ))
        .execute(c)?;
        crate::resource::changed_one(changed)?;
        audit_change(c, me, "archived", &row.into(), json!({}))
    })
}

/// An event as webhooks send it (the feed's shape, without the cursor).
pub struct EventMeta<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub actor_id: Option<&'a str>,
    pub occurred_at: &'a str,
}

/// The body every receiver gets.
fn event_body(e: &EventMeta<'_>, data: &Value) -> String {
    json!({
        "id": e.id,
        "type": e.event_type,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "actor_id": e.actor_id,
        "occurred_at": e.occurred_at,
        "data": data,
    })
    .to_string()
}

fn filters_match(filters: &str, data: &Value) -> bool {
    let filters: Map<String, Value> = serde_json::from_str(filters).unwrap_or_default();
    filters.iter().all(|(field, want)| &data[field] == want)
}

fn new_delivery(
    conn: &mut DbConn,
    webhook_id: &str,
    event_id: &str,
    event_type: &str,
    body: &str,
) -> ApiResult<String> {
    let (id, now) = (ids::new_id(), ids::now());
    diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::id.eq(&id),
            webhook_deliveries::webhook_id.eq(webhook_id),
            webhook_deliveries::event_id.eq(event_id),
            webhook_deliveries::event_type.eq(event_type),
            webhook_deliveries::body.eq(body),
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::created_at.eq(&now),
            webhook_deliveries::updated_at.eq(&now),
        ))
        .execute(conn)?;
    // The job's own attempt limit is a backstop; the delivery counts its attempts itself.
    jobs::enqueue(conn, DELIVER_JOB, &json!({"delivery_id": id}), 1000)?;
    Ok(id)
}

/// An active subscription: id, event type patterns, filters.
type Subscription = (String, Vec<String>, String);

fn active_subscriptions(conn: &mut DbConn) -> ApiResult<Vec<Subscription>> {
    let rows: Vec<(String, String, String)> = webhooks::table
        .filter(webhooks::active.eq(true))
        .filter(webhooks::archived_at.is_null())
        .select((webhooks::id, webhooks::event_types, webhooks::filters))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, types, filters)| {
            (
                id,
                serde_json::from_str(&types).unwrap_or_default(),
                filters,
            )
        })
        .collect())
}

/// Create a delivery for every subscription this event matches.
fn fan_out(
    conn: &mut DbConn,
    subs: &[Subscription],
    event: &EventMeta<'_>,
    data: &Value,
) -> ApiResult<()> {
    let mut body = None;
    for (id, types, filters) in subs {
        if super::feed::type_matches(types, event.event_type)
            && !types.is_empty()
            && filters_match(filters, data)
        {
            let body = body.get_or_insert_with(|| event_body(event, data));
            new_delivery(conn, id, event.id, event.event_type, body)?;
        }
    }
    Ok(())
}

/// Events the relay fans out per transaction.
const RELAY_BATCH: i64 = 200;

fn relay_position(conn: &mut DbConn) -> ApiResult<Position> {
    let (tx, seq) = webhook_relay::table
        .find(1)
        .select((webhook_relay::tx, webhook_relay::seq))
        .first::<(i64, i64)>(conn)?;
    Ok(Position { tx, seq })
}

/// The outbox relay: fan out the settled events after the relay's position and move the
/// position past them, in one transaction, so every committed event is fanned out exactly
/// once and a rolled-back change never is. Writers pay only for their event row. The
/// relay's row lock makes replicas take turns. Returns how many events it read.
pub fn relay(conn: &mut DbConn) -> ApiResult<usize> {
    // Cheap check first, so an idle server does not write every poll.
    if relay_position(conn)? >= super::feed::head(conn)? {
        return Ok(0);
    }
    db::write_tx(conn, |c| {
        diesel::update(webhook_relay::table.find(1))
            .set(webhook_relay::tx.eq(webhook_relay::tx))
            .execute(c)?;
        let query = FeedQuery {
            after: Some(relay_position(c)?),
            types: vec![],
            limit: RELAY_BATCH,
            entities: None,
        };
        let page = match super::feed::read(c, &query) {
            Err(ApiError::Gone(_)) => {
                tracing::warn!("the webhook relay fell behind event retention; skipping ahead");
                FeedPage {
                    data: vec![],
                    next_cursor: super::feed::head(c)?.to_string(),
                    has_more: false,
                }
            }
            other => other?,
        };
        let subs = if page.data.is_empty() {
            vec![]
        } else {
            active_subscriptions(c)?
        };
        for e in &page.data {
            let meta = EventMeta {
                id: &e.id,
                event_type: &e.event_type,
                entity_type: &e.entity_type,
                entity_id: &e.entity_id,
                actor_id: e.actor_id.as_deref(),
                occurred_at: &e.occurred_at,
            };
            fan_out(c, &subs, &meta, &e.data)?;
        }
        let next = super::feed::parse_cursor(&page.next_cursor)?;
        diesel::update(webhook_relay::table.find(1))
            .set((
                webhook_relay::tx.eq(next.tx),
                webhook_relay::seq.eq(next.seq),
            ))
            .execute(c)?;
        Ok(page.data.len())
    })
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| {
        // HMAC takes keys of any length; this cannot happen.
        unreachable!("HMAC key rejected")
    });
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// What one HTTP attempt came to.
struct AttemptOutcome {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    latency: Duration,
    /// Not worth retrying whatever the status (a refused destination).
    permanent: bool,
}

fn post(agent: &ureq::Agent, d: &Delivery, url: &str, secret: &str) -> AttemptOutcome {
    let timestamp = chrono::Utc::now().timestamp();
    let started = Instant::now();
    let result = agent
        .post(url)
        .set("Content-Type", "application/json")
        .set("User-Agent", "crm-webhooks/1")
        .set("X-CRM-Event-Id", &d.event_id)
        .set("X-CRM-Event-Type", &d.event_type)
        .set("X-CRM-Delivery-Id", &d.id)
        .set("X-CRM-Timestamp", &timestamp.to_string())
        .set("X-CRM-Signature", &signature(secret, timestamp, &d.body))
        .send_string(&d.body);
    let latency = started.elapsed();
    match result {
        Ok(res) => AttemptOutcome {
            status: Some(res.status()),
            error: None,
            retry_after: None,
            latency,
            permanent: false,
        },
        Err(ureq::Error::Status(code, res)) => AttemptOutcome {
            status: Some(code),
            error: Some(format!("the receiver answered {code}")),
            retry_after: res
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            latency,
            permanent: false,
        },
        Err(e) => {
            let error = e.to_string();
            AttemptOutcome {
                // The pinned resolver found no public address: retrying will not help.
                permanent: error.contains(NO_PUBLIC_ADDRESS),
                status: None,
                error: Some(error),
                retry_after: None,
                latency,
            }
        }
    }
}

/// Whether a failed attempt is worth repeating: network errors, 5xx, 408 and 429.
fn retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s >= 500 || s == 408 || s == 429,
    }
}

/// Count a failure against the subscription; disable it when they keep coming.
/// Count a delivery that failed for good against the subscription, and disable it when
/// such failures keep coming (or one delivery used up a day of retries). Attempts that
/// will be retried do not count: a short outage must not switch a webhook off.
fn note_failure(
    conn: &mut DbConn,
    w: &WebhookRow,
    config: &Config,
    delivery_dead: bool,
) -> ApiResult<()> {
    diesel::update(webhooks::table.find(&w.id))
        .set(webhooks::consecutive_failures.eq(webhooks::consecutive_failures + 1))
        .execute(conn)?;
    let failures: i32 = webhooks::table
        .find(&w.id)
        .select(webhooks::consecutive_failures)
        .first(conn)?;
    let disable = failures >= config.webhook_disable_after || delivery_dead;
    if !disable || !w.active {
        return Ok(());
    }
    let reason = if delivery_dead {
        "a delivery failed on every attempt".to_string()
    } else {
        format!("{failures} deliveries in a row failed")
    };
    diesel::update(webhooks::table.find(&w.id))
        .set((
            webhooks::active.eq(false),
            webhooks::disabled_at.eq(ids::now()),
            webhooks::disabled_reason.eq(&reason),
        ))
        .execute(conn)?;
    tracing::warn!(webhook_id = %w.id, url = %w.url, reason = %reason, "webhook disabled");
    let after: Webhook = find(conn, &w.id)?.into();
    audit::emit(
        conn,
        "webhook.disabled",
        "webhook",
        &w.id,
        &Actor::system(),
        &json!(after),
    )
}

fn deliver(conn: &mut DbConn, agent: &ureq::Agent, config: &Config, payload: &Value) -> JobResult {
    let delivery_id = payload["delivery_id"].as_str().unwrap_or_default();
    let fail = |e: ApiError| JobFailure::from(e.to_string());
    let Some(d) = webhook_deliveries::table
        .find(delivery_id)
        .first::<Delivery>(conn)
        .optional()
        .map_err(|e| fail(e.into()))?
    else {
        return Ok(());
    };
    let w: WebhookRow = webhooks::table
        .find(&d.webhook_id)
        .first(conn)
        .map_err(|e| fail(e.into()))?;
    if d.status != "pending" {
        return Ok(());
    }
    if !w.active || w.archived_at.is_some() {
        return set_delivery(
            conn,
            &d,
            "failed",
            None,
            Some("the webhook is disabled".into()),
        )
        .map_err(fail);
    }
    let secret = Sealer::from_config(config)
        .and_then(|s| s.open(&w.secret))
        .map_err(fail)?;
    let outcome = post(agent, &d, &w.url, &secret);
    let delivered = outcome.status.is_some_and(|s| (200..300).contains(&s));
    let attempts = d.attempts + 1;
    let will_retry = !delivered
        && !outcome.permanent
        && retryable(outcome.status)
        && attempts < config.webhook_max_attempts;
    db::write_tx(conn, |c| {
        record_attempt(c, &d, &outcome)?;
        if delivered {
            diesel::update(webhooks::table.find(&w.id))
                .set(webhooks::consecutive_failures.eq(0))
                .execute(c)?;
            return set_delivery(c, &d, "delivered", outcome.status, None);
        }
        if !will_retry {
            note_failure(c, &w, config, retryable(outcome.status))?;
        }
        let status = if will_retry { "pending" } else { "failed" };
        set_delivery(c, &d, status, outcome.status, outcome.error.clone())
    })
    .map_err(fail)?;
    if will_retry {
        return Err(JobFailure {
            message: outcome.error.unwrap_or_default(),
            retry_after: outcome.retry_after,
        });
    }
    Ok(())
}

fn record_attempt(conn: &mut DbConn, d: &Delivery, o: &AttemptOutcome) -> ApiResult<()> {
    diesel::insert_into(webhook_attempts::table)
        .values((
            webhook_attempts::id.eq(ids::new_id()),
            webhook_attempts::delivery_id.eq(&d.id),
            webhook_attempts::attempted_at.eq(ids::now()),
            webhook_attempts::status_code.eq(o.status.map(i32::from)),
            webhook_attempts::latency_ms.eq(o.latency.as_millis() as i64),
            webhook_attempts::error.eq(&o.error),
        ))
        .execute(conn)?;
    Ok(())
}

fn set_delivery(
    conn: &mut DbConn,
    d: &Delivery,
    status: &str,
    code: Option<u16>,
    error: Option<String>,
) -> ApiResult<()> {
    let now = ids::now();
    diesel::update(webhook_deliveries::table.find(&d.id))
        .set((
            webhook_deliveries::status.eq(status),
            webhook_deliveries::attempts
                .eq(d.attempts + i32::from(code.is_some() || error.is_some())),
            webhook_deliveries::last_status_code.eq(code.map(i32::from).or(d.last_status_code)),
            webhook_deliveries::last_error.eq(error),
            webhook_deliveries::updated_at.eq(&now),
            webhook_deliveries::delivered_at.eq((status == "delivered").then_some(now.clone())),
        ))
        .execute(conn)?;
    Ok(())
}

/// Register the delivery job with its backoff.
/// Seal the signing secrets stored before sealing existed (run at start-up; a no-op
/// once every secret is sealed).
pub fn seal_stored_secrets(conn: &mut DbConn, sealer: &Sealer) -> ApiResult<usize> {
    let rows: Vec<(String, String)> = webhooks::table
        .select((webhooks::id, webhooks::secret))
        .load(conn)?;
    let mut sealed = 0;
    for (id, secret) in rows.into_iter().filter(|(_, s)| !Sealer::is_sealed(s)) {
        diesel::update(webhooks::table.find(&id))
            .set(webhooks::secret.eq(sealer.seal(&secret)?))
            .execute(conn)?;
        sealed += 1;
    }
    Ok(sealed)
}

pub fn register_jobs(registry: &mut JobRegistry, config: Arc<Config>) {
    let agent = delivery_agent(
        &config,
        PinnedResolver::system(config.webhook_allow_private_urls),
    );
    let policy = RetryPolicy {
        base: config.webhook_retry_base,
        cap: Duration::from_secs(3600),
    };
    registry.register_with_policy(DELIVER_JOB, policy, move |conn, payload| {
        deliver(conn, &agent, &config, payload)
    });
    // Every poll of the first worker; a full batch is followed at once by the next.
    registry.register_periodic("webhook-relay", Duration::ZERO, |conn| loop {
        match relay(conn) {
            Ok(n) if n as i64 == RELAY_BATCH => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::error!(error = %e, "the webhook relay failed");
                break;
            }
        }
    });
}

// ---- HTTP handlers ----

/// Subscribe a URL to events.
///
/// Creates a subscription to `event_types` patterns (`contact.*`, `account.updated`, `*`),
/// optionally narrowed by `filters` on fields of the record, and answers 201 with `Location`,
/// `ETag` and the signing `secret` (generated unless given), which is shown only in this response.
/// Each matching event is POSTed as JSON with `X-CRM-Signature: v1=<hex>`, the HMAC-SHA256 of
/// `<X-CRM-Timestamp>.<body>` under the secret. A URL naming a private address or `localhost` is a
/// 422 unless the server allows private URLs. Admins only (`WebhooksManage`); audited as
/// `webhook.created`.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = WebhookInput,
    params(IdempotencyParams),
    responses((status = 201, description = "Subscribed; `secret` is shown this once", body = Webhook), WriteProblems))]
pub async fn create_webhook(
    state: web::Data<AppState>,
    me: Principal,
    body: Json<WebhookInput>,
) -> ApiResult<HttpResponse> {
    let allow = state.config.webhook_allow_private_urls;
    let sealer = Sealer::from_config(&state.config)?;
    let w = state
        .db(move |c| create(c, &me, &body, allow, &sealer))
        .await?;
    Ok(crate::respond::created(
        format!("/api/v1/webhooks/{}", w.id),
        w.version,
        &w,
    ))
}

/// List webhook subscriptions.
///
/// Every subscription not deleted, newest first, in one unpaged list; secrets are never included.
/// Admins only (`WebhooksManage`).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Subscriptions, newest first", body = Vec<Webhook>), ListProblems))]
pub async fn list_webhooks(state: web::Data<AppState>, _me: Principal) -> ApiResult<HttpResponse> {
    let rows: Vec<WebhookRow> = state
        .db(|c| {
            Ok(webhooks::table
                .filter(webhooks::archived_at.is_null())
                .order(webhooks::created_at.desc())
                .load(c)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(Webhook::from).collect::<Vec<_>>()))
}

/// Get a webhook subscription.
///
/// Returns the subscription with its delivery health (`active`, `consecutive_failures`,
/// `disabled_at`, `disabled_reason`) and an `ETag` to send as `If-Match` when changing it; a
/// deleted subscription is a 404. Admins only (`WebhooksManage`).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, format = "uuid", description = "Webhook id")),
    responses((status = 200, description = "The subscription", body = Webhook), ReadProblems))]
pub async fn get_webhook(
    state: web::Data<AppState>,
    _me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let w: Webhook = state.db(move |c| find(c, &id)).await?.into();
    Ok(crate::respond::with_etag(w.version, &w))
}

/// Change a webhook subscription.
///
/// Fields left out keep their values (`description` cannot be cleared), and a new `secret` signs
/// every delivery attempted from then on. `active: true` re-enables a disabled subscription and
/// resets its failure count. Send `If-Match` with the `ETag` you read to get a 412 instead of
/// overwriting someone else's change. Admins only (`WebhooksManage`); audited as `webhook.updated`,
/// without the secret.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookInput,
    params(("id" = String, Path, format = "uuid", description = "Webhook id"), crate::params::IfMatchParams),
    responses((status = 200, description = "Updated", body = Webhook), WriteProblems))]
pub async fn update_webhook(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<WebhookInput>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let expected = crate::extract::if_match(&req)?;
    let allow_private = state.config.webhook_allow_private_urls;
    let sealer = Sealer::from_config(&state.config)?;
    let w = state
        .db(move |c| {
            let patch = Patch {
                expected,
                input: &body,
                allow_private,
                sealer,
            };
            update(c, &me, &id, patch)
        })
        .await?;
    Ok(crate::respond::with_etag(w.version, &w))
}

/// Delete a webhook subscription.
///
/// Archives the subscription: it receives no more events, its pending deliveries fail without being
/// sent, and it and its delivery log answer 404 from then on. Admins only (`WebhooksManage`);
/// audited as `webhook.archived`.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, format = "uuid", description = "Webhook id")),
    responses((status = 204, description = "Deleted"), WriteProblems))]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    state.db(move |c| archive(c, &me, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Send a test ping to a webhook.
///
/// Queues a signed `webhook.ping` delivery whose `data` is `{"webhook_id": …}` and answers 202 with
/// it; follow it in the delivery log. The ping is not a change feed event, and a disabled
/// subscription's ping is logged as failed without being sent. Admins only (`WebhooksManage`).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/ping", tag = "webhooks",
    params(("id" = String, Path, format = "uuid", description = "Webhook id")),
    responses((status = 202, description = "A delivery was queued", body = Delivery), WriteProblems))]
pub async fn ping(
    state: web::Data<AppState>,
    _me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let d = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let w = find(c, &id)?;
                let event_id = ids::new_id();
                let meta = EventMeta {
                    id: &event_id,
                    event_type: "webhook.ping",
                    entity_type: "webhook",
                    entity_id: &w.id,
                    actor_id: None,
                    occurred_at: &ids::now(),
                };
                let body = event_body(&meta, &json!({"webhook_id": w.id}));
                let d = new_delivery(c, &w.id, &event_id, "webhook.ping", &body)?;
                Ok(webhook_deliveries::table.find(&d).first::<Delivery>(c)?)
            })
        })
        .await?;
    Ok(HttpResponse::Accepted().json(d))
}

/// List a webhook's deliveries.
///
/// The subscription's 200 newest deliveries, newest first and unpaged, each with the exact `body`
/// sent, its `status`, `attempts` and last status code or error; narrow with `status` (`pending`,
/// `delivered`, `failed`). Admins only (`WebhooksManage`).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, format = "uuid", description = "Webhook id"),
        ("status" = Option<String>, Query, nullable = false, pattern = "^(pending|delivered|failed)$", description = "Only deliveries in this state")),
    responses((status = 200, description = "Deliveries", body = Vec<Delivery>), ReadProblems))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    _me: Principal,
    id: web::Path<String>,
    query: web::Query<DeliveryFilter>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let status = query.into_inner().status;
    if status
        .as_deref()
        .is_some_and(|s| !["pending", "delivered", "failed"].contains(&s))
    {
        return Err(ApiError::BadRequest(
            "status is pending, delivered or failed".into(),
        ));
    }
    let rows: Vec<Delivery> = state
        .db(move |c| {
            find(c, &id)?;
            let mut q = webhook_deliveries::table
                .filter(webhook_deliveries::webhook_id.eq(&id))
                .into_boxed::<crate::db::MultiBackend>();
            if let Some(s) = status {
                q = q.filter(webhook_deliveries::status.eq(s));
            }
            Ok(q.order((
                webhook_deliveries::created_at.desc(),
                webhook_deliveries::id.desc(),
            ))
            .limit(200)
            .load(c)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFilter {
    pub status: Option<String>,
}

fn find_delivery(conn: &mut DbConn, webhook_id: &str, delivery_id: &str) -> ApiResult<Delivery> {
    webhook_deliveries::table
        .find(delivery_id)
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .first::<Delivery>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found("delivery"))
}

/// Get a webhook delivery with its attempts.
///
/// Returns the delivery and its `attempts_log`: every HTTP attempt, oldest first, with its time,
/// status code, latency and error. Network errors, 5xx, 408 and 429 are retried with exponential
/// backoff (honouring `Retry-After`); other non-2xx answers are not. Admins only
/// (`WebhooksManage`).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks",
    params(("id" = String, Path, format = "uuid", description = "Webhook id"),
        ("delivery_id" = String, Path, format = "uuid", description = "Delivery id")),
    responses((status = 200, description = "The delivery and its attempts", body = DeliveryDetail), ReadProblems))]
pub async fn get_delivery(
    state: web::Data<AppState>,
    _me: Principal,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, delivery_id) = path.into_inner();
    let (id, delivery_id) = (path_id(&id)?, path_id(&delivery_id)?);
    let detail = state
        .db(move |c| {
            // An archived subscription's deliveries are gone with it, as its list is.
            find(c, &id)?;
            let delivery = find_delivery(c, &id, &delivery_id)?;
            let attempts_log = webhook_attempts::table
                .filter(webhook_attempts::delivery_id.eq(&delivery_id))
                .order(webhook_attempts::attempted_at.asc())
                .load::<Attempt>(c)?;
            Ok(DeliveryDetail {
                delivery,
                attempts_log,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Redeliver a webhook delivery.
///
/// Queues a new delivery of the stored body with the same event id and type, signed afresh, and
/// answers 202 with it; the original stays in the log. Receivers that deduplicate on
/// `X-CRM-Event-Id` see it as the same event. Admins only (`WebhooksManage`).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, format = "uuid", description = "Webhook id"),
        ("delivery_id" = String, Path, format = "uuid", description = "Delivery id")),
    responses((status = 202, description = "A new delivery was queued", body = Delivery), WriteProblems))]
pub async fn redeliver(
    state: web::Data<AppState>,
    _me: Principal,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, delivery_id) = path.into_inner();
    let (id, delivery_id) = (path_id(&id)?, path_id(&delivery_id)?);
    let d = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let w = find(c, &id)?;
                let old = find_delivery(c, &id, &delivery_id)?;
                let new = new_delivery(c, &w.id, &old.event_id, &old.event_type, &old.body)?;
                Ok(webhook_deliveries::table.find(&new).first::<Delivery>(c)?)
            })
        })
        .await?;
    Ok(HttpResponse::Accepted().json(d))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};
    use ureq::Resolver;

    #[test]
    fn refused_ranges_cover_the_special_use_blocks() {
        for ip in [
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                is_private(ip.parse().unwrap_or(Ipv4Addr::LOCALHOST.into())),
                "{ip}"
            );
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            assert!(
                !is_private(ip.parse().unwrap_or(Ipv4Addr::LOCALHOST.into())),
                "{ip}"
            );
        }
    }

    /// A resolver that answers a public address first and loopback second: only the
    /// public one is handed to the client; loopback alone, or a failed lookup, fails.
    #[test]
    fn the_pinned_resolver_keeps_only_public_addresses() {
        let public: SocketAddr = "203.0.113.10:443"
            .parse()
            .unwrap_or(([0, 0, 0, 0], 0).into());
        let loopback: SocketAddr = "127.0.0.1:443".parse().unwrap_or(([0, 0, 0, 0], 0).into());
        let mixed = PinnedResolver::with_lookup(false, move |_| Ok(vec![public, loopback]));
        assert_eq!(mixed.resolve("rebind.example:443").ok(), Some(vec![public]));
        let inside = PinnedResolver::with_lookup(false, move |_| Ok(vec![loopback]));
        let err = inside
            .resolve("inside.example:443")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains(NO_PUBLIC_ADDRESS)));
        let failing =
            PinnedResolver::with_lookup(false, |_| Err(std::io::Error::other("lookup failed")));
        assert!(failing.resolve("gone.example:443").is_err());
    }

    #[test]
    fn a_delivery_never_connects_to_a_private_address_a_name_resolves_to() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let target = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let config = Config::for_database("sqlite://unused.db");
        let resolver = PinnedResolver::with_lookup(false, move |_| Ok(vec![target]));
        let agent = delivery_agent(&config, resolver);
        let url = format!("http://rebind.example:{}/hook", target.port());
        let err = agent
            .post(&url)
            .send_string("{}")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains(NO_PUBLIC_ADDRESS)));
        assert!(
            listener.accept().is_err(),
            "nothing connected to the loopback listener"
        );
    }
}
