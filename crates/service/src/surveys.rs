//! Satisfaction surveys. Solving a ticket creates a survey and mails its link: the survey id
//! and a random token whose digest alone is stored, valid for `VALID_DAYS`. The customer
//! answers once, without logging in, with a 1–5 rating, an optional 0–10 recommendation
//! score (NPS) and a comment. A used or expired link is a 410; a tampered one a 403.
//! `GET /csat` aggregates the answers by agent, queue and period in the database.

use crate::sla::period_bounds;
use crate::tickets::Ticket;
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::audit::Actor;
use crm_core::auth::{self, Principal};
use crm_core::db::{self, DbConn};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::{path_id, Json};
use crm_core::ids;
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{surveys as s, tickets};
use crm_core::state::AppState;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

pub const VALID_DAYS: i64 = 30;

/// A survey as the customer sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyView {
    pub id: String,
    pub ticket_number: i64,
    pub ticket_subject: String,
    pub expires_at: String,
    /// Whether it was answered already (then it takes no answer).
    pub answered: bool,
}

/// A survey answer.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswer {
    /// The token from the survey link.
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
    /// 1 (very unhappy) to 5 (very happy).
    #[validate(range(min = 1, max = 5))]
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i32,
    /// 0 to 10: how likely the customer is to recommend us.
    #[validate(range(min = 0, max = 10))]
    #[schema(minimum = 0, maximum = 10)]
    pub nps: Option<i32>,
    #[validate(length(max = 5000))]
    #[schema(max_length = 5000)]
    pub comment: Option<String>,
}

/// Create the survey of a just-solved ticket; returns the link to mail.
pub fn create_for(c: &mut DbConn, t: &Ticket) -> ApiResult<String> {
    let token = auth::random_token(24)?;
    let id = ids::new_id();
    diesel::insert_into(s::table)
        .values((
            s::id.eq(&id),
            s::ticket_id.eq(&t.id),
            s::contact_id.eq(&t.contact_id),
            s::agent_id.eq(&t.assignee_id),
            s::queue_id.eq(&t.queue_id),
            s::token_hash.eq(auth::secret_digest(&token)),
            s::expires_at.eq(ids::now_plus(chrono::Duration::days(VALID_DAYS))),
            s::created_at.eq(ids::now()),
        ))
        .execute(c)?;
    Ok(format!(
        "{}/api/v1/surveys/{id}?token={token}",
        crm_core::mail::public_url().trim_end_matches('/')
    ))
}

type Row = (String, String, String, Option<String>);

/// The survey if `token` is its own (403 otherwise), not expired (410).
fn check(c: &mut DbConn, id: &str, token: &str) -> ApiResult<(Row, i64, String)> {
    let row: Option<(Row, i64, String)> = s::table
        .inner_join(tickets::table)
        .filter(s::id.eq(id))
        .select((
            (s::id, s::token_hash, s::expires_at, s::answered_at),
            tickets::number,
            tickets::subject,
        ))
        .first(c)
        .optional()?;
    let Some(found) = row else {
        return Err(ApiError::not_found("survey"));
    };
    // The digest comparison is on equal-length hex strings of a secret the caller must know.
    if found.0 .1 != auth::secret_digest(token) {
        return Err(ApiError::Forbidden("this survey link is not valid".into()));
    }
    if found.0 .2 < ids::now() {
        return Err(ApiError::Gone("this survey link has expired".into()));
    }
    Ok(found)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenParam {
    /// The token from the survey link.
    pub token: String,
}

/// Open a satisfaction survey.
///
/// What the survey link shows: which ticket it is about and whether it was answered. No login:
/// the token in the link is the credential (403 when it isn't this survey's, 410 once expired).
#[utoipa::path(get, path = "/api/v1/surveys/{id}", tag = "csat", operation_id = "get_survey",
    params(("id" = String, Path, format = "uuid", description = "Survey id"), TokenParam),
    responses((status = 200, description = "The survey", body = SurveyView), ReadProblems),
    security(()))]
#[get("/surveys/{id}")]
pub async fn get_survey(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<TokenParam>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let token = q.into_inner().token;
    let ((id, _, expires_at, answered), number, subject) =
        state.db(move |c| check(c, &id, &token)).await?;
    Ok(HttpResponse::Ok().json(SurveyView {
        id,
        ticket_number: number,
        ticket_subject: subject,
        expires_at,
        answered: answered.is_some(),
    }))
}

/// Answer a satisfaction survey.
///
/// Records the rating (1–5), the optional recommendation score (0–10) and comment, once: a second
/// answer is a 410, as is an expired link; a token that isn't this survey's is a 403. No login:
/// the token from the link is the credential.
#[utoipa::path(post, path = "/api/v1/surveys/{id}", tag = "csat", operation_id = "answer_survey",
    params(("id" = String, Path, format = "uuid", description = "Survey id")),
    request_body = SurveyAnswer,
    responses((status = 200, description = "Recorded", body = SurveyView), WriteProblems),
    security(()))]
#[post("/surveys/{id}")]
pub async fn answer(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    let id = path_id(&id)?;
    let a: SurveyAnswer = crm_core::objects::input(&body.into_inner())?;
    a.validate()?;
    let view = state
        .db(move |c| {
            db::write_tx(c, |c| {
                let ((id, _, expires_at, _), number, subject) = check(c, &id, &a.token)?;
                // Only the first answer lands, also when two race.
                let n = diesel::update(s::table.find(&id))
                    .filter(s::answered_at.is_null())
                    .set((
                        s::rating.eq(a.rating),
                        s::nps.eq(a.nps),
                        s::comment.eq(&a.comment),
                        s::answered_at.eq(ids::now()),
                    ))
                    .execute(c)?;
                if n == 0 {
                    return Err(ApiError::Gone("this survey was already answered".into()));
                }
                let ticket: String = s::table.find(&id).select(s::ticket_id).first(c)?;
                let record =
                    json!({"id": id, "ticket_id": ticket, "rating": a.rating, "nps": a.nps});
                crate::common::record_as(
                    c,
                    &Actor::system(),
                    "survey",
                    "answered",
                    &id,
                    record.clone(),
                    &record,
                )?;
                Ok(SurveyView {
                    id,
                    ticket_number: number,
                    ticket_subject: subject,
                    expires_at,
                    answered: true,
                })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CsatParams {
    /// `2026`, `2026-Q4` or `2026-12`: surveys answered in it.
    #[param(pattern = "^[0-9]{4}(-Q[1-4]|-(0[1-9]|1[0-2]))?$")]
    pub period: String,
    /// `agent` (default) or `queue`.
    #[param(pattern = "^(agent|queue)$")]
    pub group_by: Option<String>,
}

/// One group of the CSAT report.
#[derive(Debug, Serialize, ToSchema)]
pub struct CsatRow {
    /// The agent or queue id (null: none).
    pub key: Option<String>,
    pub responses: i64,
    /// Mean rating, 1–5.
    pub average_rating: Option<f64>,
    /// Share of ratings of 4 or 5, in percent.
    pub csat_percent: Option<f64>,
    /// Answers that gave a recommendation score.
    pub nps_responses: i64,
    /// Promoters (9–10) minus detractors (0–6), in percent of `nps_responses`.
    pub nps: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Csat {
    pub period: String,
    pub group_by: String,
    pub groups: Vec<CsatRow>,
}

/// Customer satisfaction.
///
/// The survey answers of `period`, by `agent` (who held the ticket when it was solved) or `queue`:
/// responses, average rating, CSAT (share of 4 and 5) and NPS, counted in one grouped query.
/// Everyone inside the company (`ServiceRead`).
#[utoipa::path(get, path = "/api/v1/csat", tag = "csat", operation_id = "get_csat",
    params(CsatParams),
    responses((status = 200, description = "The report", body = Csat), ReadProblems))]
#[get("/csat")]
pub async fn report(
    state: web::Data<AppState>,
    me: Principal,
    q: web::Query<CsatParams>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceRead)?;
    let p = q.into_inner();
    let (from, to) = period_bounds(&p.period)?;
    let by = p.group_by.clone().unwrap_or_else(|| "agent".into());
    if by != "agent" && by != "queue" {
        return Err(ApiError::BadRequest(format!(
            "{by:?} is not agent or queue"
        )));
    }
    let by2 = by.clone();
    let groups = state.db(move |c| aggregate(c, &from, &to, &by2)).await?;
    Ok(HttpResponse::Ok().json(Csat {
        period: p.period,
        group_by: by,
        groups,
    }))
}

fn aggregate(c: &mut DbConn, from: &str, to: &str, by: &str) -> ApiResult<Vec<CsatRow>> {
    use diesel::dsl::{case_when, count, count_star, sum};
    use diesel::sql_types::Integer;
    let one = || 1.into_sql::<Integer>();
    let zero = || 0.into_sql::<Integer>();
    let base = s::table
        .filter(s::answered_at.ge(from.to_string()))
        .filter(s::answered_at.lt(to.to_string()));
    let happy = case_when(s::rating.ge(4), one()).otherwise(zero());
    let promoter = case_when(s::nps.ge(9), one()).otherwise(zero());
    let detractor = case_when(s::nps.le(6), one()).otherwise(zero());
    type Counted = (
        Option<String>,
        i64,
        Option<i64>,
        Option<i64>,
        i64,
        Option<i64>,
        Option<i64>,
    );
    macro_rules! grouped {
        ($col:expr) => {
            base.group_by($col)
                .select((
                    $col,
                    count_star(),
                    sum(s::rating),
                    sum(happy),
                    count(s::nps),
                    sum(promoter),
                    sum(detractor),
                ))
                .order($col)
                .load::<Counted>(c)?
        };
    }
    let rows = if by == "queue" {
        grouped!(s::queue_id)
    } else {
        grouped!(s::agent_id)
    };
    let pct = |part: i64, of: i64| (of > 0).then(|| (part as f64) * 100.0 / (of as f64));
    Ok(rows
        .into_iter()
        .map(|(key, n, total, happy, nps_n, pro, det)| CsatRow {
            key,
            responses: n,
            average_rating: (n > 0).then(|| total.unwrap_or(0) as f64 / n as f64),
            csat_percent: pct(happy.unwrap_or(0), n),
            nps_responses: nps_n,
            nps: pct(pro.unwrap_or(0) - det.unwrap_or(0), nps_n),
        })
        .collect())
}
