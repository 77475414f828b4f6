//! The marketing side of `crm seed`. At scale 1: email consent for half the contacts (granted
//! for most of them), twenty campaigns, and 200,000 campaign members spread over them, most
//! sent, some opened, clicked or responded, each click and response a touchpoint.

use super::{Gen, CHUNK};
use crm_core::db::DbConn;
use crm_core::schema::{
    campaign_members, campaigns, contact_consents, contacts, touchpoints as tp,
};
use diesel::prelude::*;
use rand::Rng;

const CHANNELS: [&str; 4] = ["email", "newsletter", "event", "webinar"];

/// What was seeded.
#[derive(Debug, Default)]
pub struct MarketingSeeded {
    pub campaigns: usize,
    pub members: usize,
    pub consents: usize,
    pub touchpoints: usize,
}

pub(super) fn seed_marketing(
    conn: &mut DbConn,
    gen: &mut Gen,
    owners: &[String],
    scale: f64,
) -> QueryResult<MarketingSeeded> {
    let people: Vec<String> = contacts::table
        .select(contacts::id)
        .order(contacts::id)
        .load(conn)?;
    let consents = seed_consents(conn, gen, &people)?;
    let n_campaigns = 20;
    let mut ids = vec![];
    let mut rows = vec![];
    for i in 0..n_campaigns {
        let (id, at) = gen.id_and_time();
        let channel = gen.pick(&CHANNELS);
        rows.push((
            campaigns::id.eq(id.clone()),
            campaigns::name.eq(format!("Campaign {i}")),
            campaigns::channel.eq(channel),
            campaigns::status.eq(if i < 15 { "completed" } else { "active" }),
            campaigns::currency.eq("EUR"),
            campaigns::budget.eq(gen.rng.random_range(100_000..5_000_000_i64)),
            campaigns::actual_cost.eq(gen.rng.random_range(50_000..4_000_000_i64)),
            campaigns::subject.eq(Some("Hello {{ contact.first_name }}")),
            campaigns::body_text.eq(Some("Seeded campaign text")),
            campaigns::owner_id.eq(owners.first().cloned()),
            campaigns::version.eq(1),
            campaigns::created_at.eq(at.clone()),
            campaigns::updated_at.eq(at),
        ));
        ids.push(id);
    }
    insert_rows!(conn, campaigns::table, &rows)?;
    let per_campaign = (((200_000.0 * scale) as usize) / n_campaigns)
        .max(5)
        .min(people.len());
    let mut members = 0;
    let mut rows = vec![];
    let mut touches = vec![];
    let mut n_touches = 0;
    for (k, campaign) in ids.iter().enumerate() {
        // A different stretch of contacts for each campaign, so members are distinct per row.
        let start = (k * per_campaign) % people.len().max(1);
        for j in 0..per_campaign {
            let Some(contact) = people.get((start + j) % people.len()) else {
                continue;
            };
            let (_, at) = gen.id_and_time();
            let roll: u32 = gen.rng.random_range(0..100);
            let (status, opened, clicked, responded) = match roll {
                0..=54 => ("sent", false, false, false),
                55..=79 => ("opened", true, false, false),
                80..=91 => ("clicked", true, true, false),
                92..=96 => ("responded", true, true, true),
                _ => ("skipped", false, false, false),
            };
            let stamp = |on: bool| on.then(|| at.clone());
            rows.push((
                campaign_members::campaign_id.eq(campaign.clone()),
                campaign_members::contact_id.eq(contact.clone()),
                campaign_members::status.eq(status),
                campaign_members::skip_reason.eq((status == "skipped").then_some("no_consent")),
                campaign_members::added_at.eq(at.clone()),
                campaign_members::sent_at.eq(stamp(status != "skipped")),
                campaign_members::opened_at.eq(stamp(opened)),
                campaign_members::clicked_at.eq(stamp(clicked)),
                campaign_members::responded_at.eq(stamp(responded)),
            ));
            members += 1;
            let source = format!("{campaign}:{contact}");
            for (on, kind, summary) in [
                (clicked, "email_click", "Clicked a link"),
                (responded, "campaign_response", "Responded"),
            ] {
                if on {
                    let (id, _) = gen.id_and_time();
                    touches.push((
                        tp::id.eq(id),
                        tp::subject_type.eq("contact"),
                        tp::subject_id.eq(contact.clone()),
                        tp::kind.eq(kind),
                        tp::campaign_id.eq(Some(campaign.clone())),
                        tp::source_type.eq("campaign_member"),
                        tp::source_id.eq(source.clone()),
                        tp::summary.eq(summary),
                        tp::occurred_at.eq(at.clone()),
                        tp::created_at.eq(at.clone()),
                    ));
                }
            }
            if touches.len() >= CHUNK {
                insert_rows!(conn, tp::table, &touches)?;
                n_touches += touches.len();
                touches.clear();
            }
            if rows.len() >= CHUNK {
                insert_rows!(conn, campaign_members::table, &rows)?;
                rows.clear();
            }
        }
    }
    if !rows.is_empty() {
        insert_rows!(conn, campaign_members::table, &rows)?;
    }
    if !touches.is_empty() {
        insert_rows!(conn, tp::table, &touches)?;
        n_touches += touches.len();
    }
    Ok(MarketingSeeded {
        campaigns: n_campaigns,
        members,
        consents,
        touchpoints: n_touches,
    })
}

/// Email consent for every other contact: granted for nine in ten of them.
fn seed_consents(conn: &mut DbConn, gen: &mut Gen, people: &[String]) -> QueryResult<usize> {
    let mut rows = vec![];
    let mut n = 0;
    for contact in people.iter().step_by(2) {
        let (_, at) = gen.id_and_time();
        let granted = gen.rng.random_range(0..10) < 9;
        rows.push((
            contact_consents::contact_id.eq(contact.clone()),
            contact_consents::channel.eq("email"),
            contact_consents::status.eq(if granted { "granted" } else { "withdrawn" }),
            contact_consents::source.eq("import"),
            contact_consents::recorded_at.eq(at),
        ));
        n += 1;
        if rows.len() >= CHUNK {
            insert_rows!(conn, contact_consents::table, &rows)?;
            rows.clear();
        }
    }
    if !rows.is_empty() {
        insert_rows!(conn, contact_consents::table, &rows)?;
    }
    Ok(n)
}
