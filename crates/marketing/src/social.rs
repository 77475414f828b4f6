//! Inbound social messages (`/social-messages`): a connector pushes what arrived on a social
//! network; each is stored once per network and external id, matched to a contact by the
//! handle in the contacts' social profiles (or a `contact_id` sent), logged as a
//! `social_message` activity on the contact, recorded as a touchpoint of its journey (for
//! the campaign named, in attribution), and optionally opens a ticket.
//!
//! The handles come from `social_handles`, which a listener on contact changes keeps
//! (`on_contact_change`), so a match is one indexed lookup at any number of contacts.

use crate::common::audit_change;
use crate::journeys::{self, Touch, TouchKind};
use crm_core::access::Permission;
use crm_core::audit::Actor;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::{campaigns, contacts, social_handles as sh, social_messages as smsg};
use crm_core::{etag, ids};
use crm_customers::activities::{self, ActivityInput, Direction, Kind, Link, LinkType};
use crm_customers::common::{parse_json, to_json};
use crm_service::tickets::{self, Channel, TicketInput};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use validator::Validate;

/// The handle a profile URL or a sent handle names: the last path segment (query string
/// cut, trailing slashes trimmed), lower case, without a leading `@`. The migration's
/// backfill computes the same in SQL.
pub fn handle_of(raw: &str) -> String {
    let path = raw
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    path.rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_start_matches('@')
        .to_lowercase()
}

/// The `contact` listener: the contact's handles, again, from its social profiles; none
/// once it is archived or merged.
pub fn on_contact_change(c: &mut DbConn, _entity: &str, id: &str, _action: &str) -> ApiResult<()> {
    let Some((profiles, archived, merged)) = contacts::table
        .find(id)
        .select((
            contacts::social_profiles,
            contacts::archived_at,
            contacts::merged_into,
        ))
        .first::<(String, Option<String>, Option<String>)>(c)
        .optional()?
    else {
        return Ok(());
    };
    diesel::delete(sh::table.filter(sh::contact_id.eq(id))).execute(c)?;
    if archived.is_some() || merged.is_some() {
        return Ok(());
    }
    let profiles: BTreeMap<String, String> = parse_json(&profiles);
    let mut handles: Vec<(String, String)> = profiles
        .iter()
        .map(|(network, url)| (network.to_lowercase(), handle_of(url)))
        .filter(|(_, h)| !h.is_empty())
        .collect();
    handles.sort();
    handles.dedup();
    for (network, handle) in handles {
        diesel::insert_into(sh::table)
            .values((
                sh::network.eq(network),
                sh::handle.eq(handle),
                sh::contact_id.eq(id),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// How the contact was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// The author's handle is in exactly one live contact's social profiles.
    Profile,
    /// The connector or a user named the contact.
    Hand,
}

/// An inbound social message.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = smsg)]
pub struct SocialMessage {
    pub id: String,
    /// Lower case: `x`, `linkedin`, `instagram`, … as in contacts' `social_profiles`.
    pub network: String,
    /// The network's id of the message: a second push of it changes nothing.
    pub external_id: String,
    pub author_handle: String,
    pub author_name: Option<String>,
    pub body: String,
    pub url: Option<String>,
    pub sent_at: String,
    /// The contact it was matched to; null while nobody matches (set it by PATCH).
    pub contact_id: Option<String>,
    /// `profile` or `hand`; null while unmatched.
    #[schema(value_type = Option<MatchedBy>)]
    pub matched_by: Option<String>,
    pub campaign_id: Option<String>,
    /// The `social_message` activity logged on the contact.
    pub activity_id: Option<String>,
    /// The ticket it opened, when asked to.
    pub ticket_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A message as a connector sends it.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SocialMessageInput {
    #[validate(length(min = 1, max = 50))]
    #[schema(min_length = 1, max_length = 50)]
    pub network: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub external_id: Option<String>,
    /// A handle (`@ada`) or the author's profile URL.
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub author_handle: Option<String>,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub author_name: Option<String>,
    #[validate(length(min = 1, max = 100000))]
    #[schema(min_length = 1, max_length = 100000)]
    pub body: Option<String>,
    /// The message's permalink (http or https).
    #[validate(length(max = 2000))]
    #[schema(max_length = 2000, pattern = "^https?://")]
    pub url: Option<String>,
    /// When it was sent; now when left out.
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    /// The contact, when the connector knows it better than the profiles do.
    #[schema(format = "uuid")]
    pub contact_id: Option<String>,
    /// The campaign it answers (a reply to a campaign post): credited in attribution.
    #[schema(format = "uuid")]
    pub campaign_id: Option<String>,
    /// Open a support ticket for it (channel `social`).
    pub open_ticket: Option<bool>,
}

/// What a PATCH may change: the contact of a message nobody matched.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SocialMessagePatch {
    #[schema(format = "uuid")]
    pub contact_id: Option<String>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["sent_at"],
    default_sort: "-sent_at",
    filters: &[
        Filter::text("network", "Messages from this network"),
        Filter::id("contact_id", "Messages of this contact"),
        Filter::id("campaign_id", "Messages answering this campaign"),
        Filter::bool("matched", "true: matched to a contact; false: not yet"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(smsg::table, smsg::BoxedQuery<'static, MultiBackend>, {
    "sent_at" => smsg::sent_at,
    "id" => smsg::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<SocialMessage> {
    smsg::table
        .find(id)
        .select(SocialMessage::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("social message"))
}

/// The checked fields of a create: network, times and references.
struct Checked {
    network: String,
    sent_at: String,
    contact: Option<String>,
    campaign: Option<String>,
}

fn check(c: &mut DbConn, me: &Principal, input: &SocialMessageInput) -> ApiResult<Checked> {
    input.validate()?;
    let mut errors = crm_core::error::required(&[
        ("network", input.network.is_none()),
        ("external_id", input.external_id.is_none()),
        ("author_handle", input.author_handle.is_none()),
        ("body", input.body.is_none()),
    ]);
    let network = input
        .network
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    if input.network.is_some() && network.is_empty() {
        errors.push(FieldError::new("network", "length", "name the network"));
    }
    if input
        .author_handle
        .as_deref()
        .is_some_and(|h| handle_of(h).is_empty())
    {
        errors.push(FieldError::new(
            "author_handle",
            "invalid",
            "a handle such as @ada or a profile URL",
        ));
    }
    if input
        .url
        .as_deref()
        .is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")))
    {
        errors.push(FieldError::new("url", "url", "must be an http(s) URL"));
    }
    let sent_at = match &input.sent_at {
        Some(raw) => ids::normalise_ts(raw).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "sent_at",
                "date_time",
                "must be an RFC 3339 date-time",
            ));
            String::new()
        }),
        None => ids::now(),
    };
    let contact = reference(&mut errors, "contact_id", &input.contact_id);
    let campaign = reference(&mut errors, "campaign_id", &input.campaign_id);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if let Some(id) = &contact {
        live_contact(c, me, id)?;
    }
    if let Some(id) = &campaign {
        let found: i64 = campaigns::table
            .filter(campaigns::id.eq(id))
            .count()
            .get_result(c)?;
        if found == 0 {
            return Err(ApiError::field(
                "campaign_id",
                "not_found",
                "no such campaign",
            ));
        }
    }
    Ok(Checked {
        network,
        sent_at,
        contact,
        campaign,
    })
}

fn reference(errors: &mut Vec<FieldError>, field: &str, raw: &Option<String>) -> Option<String> {
    let raw = raw.as_deref()?;
    let id = ids::parse_id(raw);
    if id.is_none() {
        errors.push(FieldError::new(field, "format", "must be a UUID"));
    }
    id
}

fn live_contact(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<()> {
    let row = crm_customers::contacts::find_row(c, me, id)
        .map_err(|_| ApiError::field("contact_id", "not_found", "no such contact"))?;
    if row.archived_at.is_some() || row.merged_into.is_some() {
        return Err(ApiError::field(
            "contact_id",
            "not_found",
            "the contact is archived or merged",
        ));
    }
    Ok(())
}

/// The one live contact with this handle on this network; none when nobody or several do.
fn by_profile(c: &mut DbConn, network: &str, handle: &str) -> ApiResult<Option<String>> {
    let mut found: Vec<String> = sh::table
        .filter(sh::network.eq(network))
        .filter(sh::handle.eq(handle))
        .select(sh::contact_id)
        .limit(2)
        .load(c)?;
    Ok((found.len() == 1).then(|| found.remove(0)))
}

fn existing(c: &mut DbConn, network: &str, external_id: &str) -> ApiResult<Option<SocialMessage>> {
    Ok(smsg::table
        .filter(smsg::network.eq(network))
        .filter(smsg::external_id.eq(external_id))
        .select(SocialMessage::as_select())
        .first(c)
        .optional()?)
}

fn create(c: &mut DbConn, me: &Principal, input: &SocialMessageInput) -> ApiResult<SocialMessage> {
    db::write_tx(c, |c| {
        let ch = check(c, me, input)?;
        let external_id = input.external_id.as_deref().unwrap_or_default();
        // Two pushes of one message at once take turns; the second finds the first.
        db::lock_key(c, &format!("social:{}:{external_id}", ch.network))?;
        if let Some(m) = existing(c, &ch.network, external_id)? {
            return Ok(m);
        }
        let author = input.author_handle.as_deref().unwrap_or_default();
        let (contact, matched_by) = match ch.contact {
            Some(id) => (Some(id), Some(MatchedBy::Hand)),
            None => match by_profile(c, &ch.network, &handle_of(author))? {
                Some(id) => (Some(id), Some(MatchedBy::Profile)),
                None => (None, None),
            },
        };
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(smsg::table)
            .values((
                smsg::id.eq(&id),
                smsg::network.eq(&ch.network),
                smsg::external_id.eq(external_id),
                smsg::author_handle.eq(author.trim()),
                smsg::author_name.eq(&input.author_name),
                smsg::body.eq(input.body.as_deref().unwrap_or_default()),
                smsg::url.eq(&input.url),
                smsg::sent_at.eq(&ch.sent_at),
                smsg::matched_by.eq(matched_by.map(crate::enum_text)),
                smsg::campaign_id.eq(&ch.campaign),
                smsg::version.eq(1),
                smsg::created_at.eq(&now),
                smsg::updated_at.eq(&now),
            ))
            .execute(c)?;
        if let Some(contact) = &contact {
            link_contact(c, me, &id, contact, matched_by.unwrap_or(MatchedBy::Hand))?;
        }
        if input.open_ticket == Some(true) {
            open_ticket(c, me, &id)?;
        }
        let m = find(c, &id)?;
        audit_change(c, me, "social_message", "created", &id, to_json(&m), &m)?;
        Ok(m)
    })
}

/// Tie a message to its contact: the contact, the activity on it and the touchpoint.
fn link_contact(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    contact: &str,
    by: MatchedBy,
) -> ApiResult<()> {
    let m = find(c, id)?;
    let subject: String = format!("{} message from {}", m.network, m.author_handle)
        .chars()
        .take(300)
        .collect();
    let activity = activities::create_activity(
        c,
        me,
        &ActivityInput {
            kind: Some(Kind::SocialMessage),
            direction: Some(Direction::Inbound),
            channel: Some(m.network.chars().take(50).collect()),
            subject: Some(subject),
            body: Some(m.body.clone()),
            starts_at: Some(m.sent_at.clone()),
            links: Some(vec![Link {
                entity_type: LinkType::Contact,
                entity_id: contact.to_string(),
            }]),
            ..ActivityInput::default()
        },
    )?;
    diesel::update(smsg::table.find(id))
        .set((
            smsg::contact_id.eq(contact),
            smsg::matched_by.eq(crate::enum_text(by)),
            smsg::activity_id.eq(&activity.id),
        ))
        .execute(c)?;
    journeys::record(
        c,
        &Touch {
            subject: ("contact", contact),
            kind: TouchKind::SocialMessage,
            campaign_id: m.campaign_id.as_deref(),
            source: ("social_message", id),
            summary: format!("Wrote on {}", m.network),
            occurred_at: &m.sent_at,
        },
    )
}

fn open_ticket(c: &mut DbConn, me: &Principal, id: &str) -> ApiResult<()> {
    let m = find(c, id)?;
    let subject: String = m
        .body
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let ticket = tickets::open(
        c,
        &Actor::from(me),
        &TicketInput {
            subject: Some(format!("{}: {subject}", m.network)),
            description: Some(m.body.clone()),
            channel: Some(Channel::Social),
            contact_id: m.contact_id.clone(),
            external_source: Some(format!("social:{}", m.network).chars().take(100).collect()),
            external_id: Some(m.external_id.clone()),
            ..TicketInput::default()
        },
        None,
        None,
    )?;
    diesel::update(smsg::table.find(id))
        .set(smsg::ticket_id.eq(&ticket.id))
        .execute(c)?;
    Ok(())
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<SocialMessage> {
    let input: SocialMessagePatch = crm_core::objects::input(raw)?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<SocialMessages>(c, me, id)?;
        etag::check(expected, before.version)?;
        if let Some(raw_id) = &input.contact_id {
            let contact = ids::parse_id(raw_id)
                .ok_or_else(|| ApiError::field("contact_id", "format", "must be a UUID"))?;
            if before.contact_id.as_deref() != Some(contact.as_str()) {
                if before.contact_id.is_some() {
                    return Err(ApiError::Conflict(
                        "the message is already matched to a contact".into(),
                    ));
                }
                live_contact(c, me, &contact)?;
                link_contact(c, me, id, &contact, MatchedBy::Hand)?;
            }
        }
        let changed = diesel::update(smsg::table.find(id))
            .filter(smsg::version.eq(before.version))
            .set((
                smsg::version.eq(before.version + 1),
                smsg::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "social_message", "updated", id, changes, &after)?;
        Ok(after)
    })
}

fn page(c: &mut DbConn, p: &ListParams) -> ApiResult<Page<SocialMessage>> {
    let mut q = smsg::table.into_boxed::<MultiBackend>();
    if !p.include_archived {
        q = q.filter(smsg::archived_at.is_null());
    }
    if let Some(n) = p.filter("network") {
        q = q.filter(smsg::network.eq(n.to_lowercase()));
    }
    if let Some(id) = p.id_filter("contact_id")? {
        q = q.filter(smsg::contact_id.eq(id));
    }
    if let Some(id) = p.id_filter("campaign_id")? {
        q = q.filter(smsg::campaign_id.eq(id));
    }
    match p.bool_filter("matched")? {
        Some(true) => q = q.filter(smsg::contact_id.is_not_null()),
        Some(false) => q = q.filter(smsg::contact_id.is_null()),
        None => {}
    }
    let rows = apply_sort(q, p)?
        .select(SocialMessage::as_select())
        .load(c)?;
    list::page(rows, p)
}

/// Social messages on the resource kernel.
pub struct SocialMessages;

impl Resource for SocialMessages {
    type Record = SocialMessage;
    type Input = SocialMessageInput;
    type Patch = SocialMessagePatch;
    crm_core::resource_paths!("social-messages");
    const ENTITY: &'static str = "social_message";
    const TABLE: &'static str = "social_messages";
    const TAG: &'static str = "social";
    const READ: Permission = Permission::MarketingRead;
    const WRITE: Permission = Permission::MarketingWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["network", "external_id", "author_handle", "body"];

    crm_core::record_meta!(SocialMessage);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<SocialMessage> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<SocialMessage>> {
        page(c, p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &SocialMessageInput,
    ) -> ApiResult<SocialMessage> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<SocialMessage> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(social_messages);
}

#[cfg(test)]
mod tests {
    use super::handle_of;

    #[test]
    fn handles_are_the_last_path_segment_in_lower_case() {
        assert_eq!(handle_of("https://x.com/Ada_L"), "ada_l");
        assert_eq!(
            handle_of("https://www.linkedin.com/in/ada-lovelace/"),
            "ada-lovelace"
        );
        assert_eq!(handle_of("https://instagram.com/ada.l?hl=en"), "ada.l");
        assert_eq!(handle_of("@Ada_L"), "ada_l");
        assert_eq!(handle_of("https://x.com/"), "x.com");
        assert_eq!(handle_of("/"), "");
    }
}
