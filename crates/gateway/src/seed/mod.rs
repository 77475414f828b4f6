//! `crm seed --scale N`: deterministic, realistic data for benchmarks and demos. At scale 1:
//! 100,000 accounts, 1,000,000 contacts (each with an email, a phone and an account link; a
//! third with a second email) and 3,000,000 activities, owned by 20 sales reps with uneven
//! books, over accounts of very uneven size (a few hold thousands of contacts); and the sales
//! data of `sales`: 200,000 leads, 200,000 opportunities and 1,000,000 order lines; and the
//! service data of `service`: 500,000 tickets in a pull queue under an SLA policy.
//!
//! Rows go in with multi-row inserts of 1,000 on the backend's own connection (the bulk
//! path: no audit, events or webhooks, which describe changes people made, not a load).
//! The same seed always gives the same data, ids included.

use chrono::{DateTime, Duration, TimeZone, Utc};
use crm_core::db::{DbConn, DbPool};
use crm_core::ids::format_ts;
use crm_core::schema::{
    accounts, activities, activity_links, contact_accounts, contact_emails, contact_phones,
    contacts, search_terms, users,
};
use crm_core::search::terms_of;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHUNK: usize = 1_000;
const REPS: usize = 20;
const INDUSTRIES: [&str; 8] = [
    "software",
    "manufacturing",
    "retail",
    "healthcare",
    "finance",
    "logistics",
    "energy",
    "education",
];
const FIRST: [&str; 16] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
    "Radia", "Linus", "Sophie", "Tim", "Hedy", "John",
];
const LAST: [&str; 16] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Ritchie", "Perlman", "Torvalds", "Wilson", "Berners", "Lamarr", "Backus",
];
const KINDS: [&str; 4] = ["call", "email", "meeting", "note"];
const AREAS: [u32; 8] = [212, 206, 303, 312, 415, 617, 646, 702];

/// A valid, distinct North American number for the i-th contact (exchanges 200–999).
fn phone_of(i: usize) -> String {
    let area = AREAS.get(i % AREAS.len()).copied().unwrap_or(415);
    let rest = i / AREAS.len();
    format!(
        "+1{area}{}{:04}",
        200 + (rest / 10_000) % 800,
        rest % 10_000
    )
}

/// How much was written, for the progress line and the bench report.
#[derive(Default)]
pub struct Seeded {
    pub accounts: usize,
    pub contacts: usize,
    pub activities: usize,
    pub sales: sales::SalesSeeded,
    pub tickets: usize,
    pub marketing: marketing::MarketingSeeded,
}

/// Insert a batch of rows on the concrete backend connection: multi-row inserts do not
/// compile through the multi-backend connection.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {
        match &mut *$conn {
            DbConn::Pg(c) => diesel::insert_into($table).values($rows).execute(c),
            DbConn::Sqlite(c) => diesel::insert_into($table).values($rows).execute(c),
        }
    };
}

pub mod marketing;
pub mod sales;
pub mod service;

struct Gen {
    rng: StdRng,
    start: DateTime<Utc>,
    /// Milliseconds after `start` of the next record: ids stay time-ordered like real ones.
    clock: i64,
}

impl Gen {
    fn new(seed: u64) -> Self {
        let start = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        Self {
            rng: StdRng::seed_from_u64(seed),
            start,
            clock: 0,
        }
    }

    /// A UUIDv7 and its creation time, both from the seeded generator.
    fn id_and_time(&mut self) -> (String, String) {
        self.clock += self.rng.random_range(1..50);
        let at = self.start + Duration::milliseconds(self.clock);
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or_default();
        let random: [u8; 10] = self.rng.random();
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        (id.to_string(), format_ts(at))
    }

    /// An index below `n`, skewed towards 0 (`power` > 1: a few take most).
    fn skewed(&mut self, n: usize, power: i32) -> usize {
        let u: f64 = self.rng.random();
        ((u.powi(power) * n as f64) as usize).min(n.saturating_sub(1))
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from.get(self.rng.random_range(0..from.len()))
            .copied()
            .unwrap_or_default()
    }
}

/// Seed the database. `scale` 1 is a million contacts; 0.01 is ten thousand.
pub fn seed(pool: &DbPool, scale: f64, seed: u64) -> Result<Seeded, String> {
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let conn = &mut *conn;
    let mut gen = Gen::new(seed);
    let reps = seed_reps(conn, &mut gen).map_err(|e| e.to_string())?;
    let n_accounts = ((100_000.0 * scale) as usize).max(10);
    let n_contacts = ((1_000_000.0 * scale) as usize).max(100);
    let accounts = seed_accounts(conn, &mut gen, &reps, n_accounts).map_err(|e| e.to_string())?;
    let activities =
        seed_contacts(conn, &mut gen, &reps, &accounts, n_contacts).map_err(|e| e.to_string())?;
    let sales =
        sales::seed_sales(conn, &mut gen, &reps, &accounts, scale).map_err(|e| e.to_string())?;
    let tickets = service::seed_service(conn, &mut gen, &reps, scale).map_err(|e| e.to_string())?;
    let marketing =
        marketing::seed_marketing(conn, &mut gen, &reps, scale).map_err(|e| e.to_string())?;
    // Fresh statistics: planned on the empty tables' estimates, PostgreSQL would scan all
    // contacts for a page until autovacuum came round. VACUUM also marks the pages all
    // visible, so index-only scans (search terms) need not visit the table.
    let refresh = match crm_core::db::backend_of(conn) {
        crm_core::db::BackendKind::Postgres => "VACUUM ANALYZE",
        crm_core::db::BackendKind::Sqlite => "ANALYZE",
    };
    conn.batch_execute(refresh).map_err(|e| e.to_string())?;
    Ok(Seeded {
        accounts: accounts.len(),
        contacts: n_contacts,
        activities,
        sales,
        tickets,
        marketing,
    })
}

fn seed_reps(conn: &mut DbConn, gen: &mut Gen) -> QueryResult<Vec<String>> {
    let mut reps = vec![];
    let mut rows = vec![];
    for n in 0..REPS {
        let (id, at) = gen.id_and_time();
        rows.push((
            users::id.eq(id.clone()),
            users::email.eq(format!("rep{n}@seed.example")),
            users::name.eq(format!("Rep {n}")),
            users::role.eq("sales_rep"),
            users::active.eq(true),
            users::version.eq(1),
            users::created_at.eq(at.clone()),
            users::updated_at.eq(at),
        ));
        reps.push(id);
    }
    insert_rows!(conn, users::table, &rows)?;
    Ok(reps)
}

fn seed_accounts(
    conn: &mut DbConn,
    gen: &mut Gen,
    reps: &[String],
    n: usize,
) -> QueryResult<Vec<String>> {
    let (mut ids, mut rows, mut terms) = (Vec::with_capacity(n), vec![], vec![]);
    for i in 0..n {
        let (id, at) = gen.id_and_time();
        let name = format!("{} {} {}", gen.pick(&LAST), gen.pick(&INDUSTRIES), i);
        let domain = format!("account{i}.example");
        for term in terms_of(&[&name, &domain]) {
            terms.push((
                search_terms::entity_type.eq("account"),
                search_terms::entity_id.eq(id.clone()),
                search_terms::term.eq(term),
            ));
        }
        let owner = reps.get(gen.skewed(reps.len(), 2)).cloned();
        rows.push((
            accounts::id.eq(id.clone()),
            accounts::name.eq(name),
            accounts::domain.eq(Some(domain)),
            accounts::industry.eq(Some(gen.pick(&INDUSTRIES).to_string())),
            accounts::employee_count.eq(Some(gen.rng.random_range(1..50_000i64))),
            accounts::owner_id.eq(owner),
            accounts::tags.eq("[]"),
            accounts::custom.eq("{}"),
            accounts::version.eq(1),
            accounts::created_at.eq(at.clone()),
            accounts::updated_at.eq(at),
        ));
        ids.push(id);
        if rows.len() >= CHUNK || i + 1 == n {
            conn.transaction(|c| {
                insert_rows!(c, accounts::table, &rows)?;
                for batch in terms.chunks(CHUNK) {
                    insert_rows!(c, search_terms::table, batch)?;
                }
                QueryResult::Ok(())
            })?;
            rows.clear();
            terms.clear();
        }
    }
    Ok(ids)
}

/// Contacts with their email, phone and account link, and three activities each.
fn seed_contacts(
    conn: &mut DbConn,
    gen: &mut Gen,
    reps: &[String],
    accounts: &[String],
    n: usize,
) -> QueryResult<usize> {
    let mut people = vec![];
    let (mut emails, mut phones, mut links) = (vec![], vec![], vec![]);
    let (mut acts, mut act_links, mut terms) = (vec![], vec![], vec![]);
    let mut activities = 0;
    for i in 0..n {
        let (id, at) = gen.id_and_time();
        let (first, last) = (gen.pick(&FIRST), gen.pick(&LAST));
        let email = format!("{}.{}{i}@mail{}.example", first, last, i % 997).to_lowercase();
        let e164 = phone_of(i);
        let account = accounts.get(gen.skewed(accounts.len(), 3)).cloned();
        let owner = reps.get(gen.skewed(reps.len(), 2)).cloned();
        for term in terms_of(&[first, last, &email, &e164]) {
            terms.push((
                search_terms::entity_type.eq("contact"),
                search_terms::entity_id.eq(id.clone()),
                search_terms::term.eq(term),
            ));
        }
        people.push((
            contacts::id.eq(id.clone()),
            contacts::first_name.eq(first),
            contacts::last_name.eq(last),
            contacts::lifecycle_stage.eq(gen.pick(&[
                "subscriber",
                "lead",
                "opportunity",
                "customer",
            ])),
            contacts::owner_id.eq(owner.clone()),
            contacts::tags.eq("[]"),
            contacts::social_profiles.eq("{}"),
            contacts::custom.eq("{}"),
            contacts::version.eq(1),
            contacts::created_at.eq(at.clone()),
            contacts::updated_at.eq(at.clone()),
        ));
        emails.push((
            contact_emails::id.eq(gen.id_and_time().0),
            contact_emails::contact_id.eq(id.clone()),
            contact_emails::email.eq(email),
            contact_emails::is_primary.eq(true),
        ));
        phones.push((
            contact_phones::id.eq(gen.id_and_time().0),
            contact_phones::contact_id.eq(id.clone()),
            contact_phones::number.eq(e164.clone()),
            contact_phones::e164.eq(e164),
            contact_phones::is_primary.eq(true),
        ));
        if let Some(account) = &account {
            links.push((
                contact_accounts::contact_id.eq(id.clone()),
                contact_accounts::account_id.eq(account.clone()),
                contact_accounts::role.eq(gen.pick(&[
                    "decision_maker",
                    "buyer",
                    "influencer",
                    "user",
                    "billing",
                ])),
            ));
        }
        for _ in 0..3 {
            let (act_id, act_at) = gen.id_and_time();
            let kind = gen.pick(&KINDS);
            acts.push((
                activities::id.eq(act_id.clone()),
                activities::kind.eq(kind),
                activities::subject.eq(format!("{kind} with {first} {last}")),
                activities::due_sort.eq(crm_customers::activities::NO_DUE_DATE),
                activities::status.eq("completed"),
                activities::owner_id.eq(owner.clone()),
                activities::version.eq(1),
                activities::created_at.eq(act_at.clone()),
                activities::updated_at.eq(act_at),
            ));
            act_links.push((
                activity_links::activity_id.eq(act_id),
                activity_links::entity_type.eq("contact"),
                activity_links::entity_id.eq(id.clone()),
            ));
            activities += 1;
        }
        let done = i + 1 == n;
        if people.len() >= CHUNK || done {
            conn.transaction(|c| {
                insert_rows!(c, contacts::table, &people)?;
                insert_rows!(c, contact_emails::table, &emails)?;
                insert_rows!(c, contact_phones::table, &phones)?;
                if !links.is_empty() {
                    insert_rows!(c, contact_accounts::table, &links)?;
                }
                for batch in acts.chunks(CHUNK) {
                    insert_rows!(c, activities::table, batch)?;
                }
                for batch in act_links.chunks(CHUNK) {
                    insert_rows!(c, activity_links::table, batch)?;
                }
                for batch in terms.chunks(CHUNK) {
                    insert_rows!(c, search_terms::table, batch)?;
                }
                QueryResult::Ok(())
            })?;
            people.clear();
            emails.clear();
            phones.clear();
            links.clear();
            acts.clear();
            act_links.clear();
            terms.clear();
            if (i + 1) % 100_000 == 0 {
                eprintln!("  {} contacts", i + 1);
            }
        }
    }
    Ok(activities)
}
