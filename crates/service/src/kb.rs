//! The knowledge base: articles in draft or published, every content change kept as a
//! revision, searched with each database's own full-text engine (SQLite FTS5 with bm25,
//! PostgreSQL tsvector with ts_rank, title weighted above body), suggested for tickets by
//! their text, linked to tickets, and voted helpful or not.

use crate::common::{audit_change, required};
use crate::tickets;
use actix_web::{get, post, web, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::{path_id, Json};
use crm_core::list::{self, Filter, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::respond::{ReadProblems, WriteProblems};
use crm_core::schema::{kb_article_versions as v, kb_articles as a, kb_votes, ticket_articles};
use crm_core::state::AppState;
use crm_core::{etag, ids};
use crm_customers::common::to_json;
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Text};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArticleStatus {
    Draft,
    Published,
}

/// A knowledge base article.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = a)]
pub struct Article {
    pub id: String,
    pub title: String,
    pub body: String,
    pub category: Option<String>,
    /// `en`, `nb`, …
    pub language: String,
    /// `draft` or `published`.
    pub status: String,
    /// The content revision (`GET /kb/articles/{id}/revisions`).
    pub revision: i32,
    pub helpful_votes: i32,
    pub unhelpful_votes: i32,
    pub published_at: Option<String>,
    pub author_id: Option<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// An article as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticleInput {
    #[validate(length(min = 1, max = 500))]
    #[schema(min_length = 1, max_length = 500)]
    pub title: Option<String>,
    #[validate(length(min = 1, max = 200000))]
    #[schema(min_length = 1, max_length = 200000)]
    pub body: Option<String>,
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub category: Option<String>,
    #[validate(length(min = 2, max = 10))]
    #[schema(min_length = 2, max_length = 10)]
    pub language: Option<String>,
    /// `draft` (default) or `published`.
    pub status: Option<ArticleStatus>,
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["created_at", "updated_at", "title"],
    default_sort: "-updated_at",
    filters: &[
        Filter::of::<ArticleStatus>("status", "draft or published"),
        Filter::text("category", "Articles in this category"),
        Filter::text("language", "Articles in this language"),
    ],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(a::table, a::BoxedQuery<'static, MultiBackend>, {
    "created_at" => a::created_at,
    "updated_at" => a::updated_at,
    "title" => a::title,
    "id" => a::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<Article> {
    a::table
        .find(id)
        .select(Article::as_select())
        .first(c)
        .optional()?
        .ok_or_else(|| ApiError::not_found("article"))
}

/// Keep the SQLite index in step with an article (PostgreSQL's column is generated).
fn reindex(c: &mut DbConn, art: &Article) -> ApiResult<()> {
    if let DbConn::Sqlite(s) = c {
        diesel::sql_query("DELETE FROM kb_search WHERE article_id = ?")
            .bind::<Text, _>(&art.id)
            .execute(s)?;
        if art.status == "published" && art.archived_at.is_none() {
            diesel::sql_query("INSERT INTO kb_search (article_id, title, body) VALUES (?, ?, ?)")
                .bind::<Text, _>(&art.id)
                .bind::<Text, _>(&art.title)
                .bind::<Text, _>(&art.body)
                .execute(s)?;
        }
    }
    Ok(())
}

fn keep_revision(c: &mut DbConn, art: &Article) -> ApiResult<()> {
    diesel::insert_into(v::table)
        .values((
            v::article_id.eq(&art.id),
            v::revision.eq(art.revision),
            v::title.eq(&art.title),
            v::body.eq(&art.body),
            v::author_id.eq(&art.author_id),
            v::created_at.eq(ids::now()),
        ))
        .execute(c)?;
    Ok(())
}

fn create(c: &mut DbConn, me: &Principal, input: &ArticleInput) -> ApiResult<Article> {
    input.validate()?;
    let errors = required(&[
        ("title", input.title.is_none()),
        ("body", input.body.is_none()),
    ]);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let (id, now) = (ids::new_id(), ids::now());
        let status = input.status.unwrap_or(ArticleStatus::Draft);
        diesel::insert_into(a::table)
            .values((
                a::id.eq(&id),
                a::title.eq(input.title.as_deref().unwrap_or_default().trim()),
                a::body.eq(input.body.as_deref().unwrap_or_default()),
                a::category.eq(&input.category),
                a::language.eq(input.language.as_deref().unwrap_or("en")),
                a::status.eq(crate::enum_text(status)),
                a::revision.eq(1),
                a::published_at.eq((status == ArticleStatus::Published).then(|| now.clone())),
                a::author_id.eq(&me.user_id),
                a::version.eq(1),
                a::created_at.eq(&now),
                a::updated_at.eq(&now),
            ))
            .execute(c)?;
        let art = find(c, &id)?;
        keep_revision(c, &art)?;
        reindex(c, &art)?;
        audit_change(c, me, "kb_article", "created", &id, to_json(&art), &art)?;
        Ok(art)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<Article> {
    let input: ArticleInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Articles>(c, me, id)?;
        etag::check(expected, before.version)?;
        let title = input
            .title
            .as_deref()
            .map(str::trim)
            .unwrap_or(&before.title)
            .to_string();
        let body = input.body.clone().unwrap_or(before.body.clone());
        let content_changed = title != before.title || body != before.body;
        let revision = before.revision + i32::from(content_changed);
        let status = input
            .status
            .map(crate::enum_text)
            .unwrap_or(before.status.clone());
        let published_at = match (status.as_str(), &before.published_at) {
            ("published", None) => Some(ids::now()),
            ("published", Some(p)) => Some(p.clone()),
            _ => None,
        };
        let category = match raw.get("category") {
            Some(Value::Null) => None,
            Some(_) => input.category.clone(),
            None => before.category.clone(),
        };
        let changed = diesel::update(a::table.find(id))
            .filter(a::version.eq(before.version))
            .set((
                a::title.eq(&title),
                a::body.eq(&body),
                a::category.eq(&category),
                a::language.eq(input.language.as_deref().unwrap_or(&before.language)),
                a::status.eq(&status),
                a::revision.eq(revision),
                a::published_at.eq(&published_at),
                a::author_id.eq(&me.user_id),
                a::version.eq(before.version + 1),
                a::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        if content_changed {
            keep_revision(c, &after)?;
        }
        reindex(c, &after)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "kb_article", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// English function words that would make every article match a ticket's prose (both
/// engines index with the language-neutral `simple`/`unicode61` tokenizers, without
/// stop-word lists, so the query leaves them out).
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "with", "not", "all", "does", "are", "was", "you", "your", "this", "that",
    "but", "have", "has", "can", "from", "our", "out", "its", "get", "any", "how", "what", "when",
    "why", "who", "will", "would", "there", "their", "they", "them", "been", "into", "time",
    "some", "just", "also", "than", "then", "very", "please", "thanks",
];

/// The words of a text as a query matching any of them (at most 40 distinct words of three
/// or more letters that aren't function words).
fn any_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = text
        .split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect();
    words.sort();
    words.dedup();
    words.truncate(40);
    words
}

#[derive(QueryableByName)]
struct Hit {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Double)]
    score: f64,
}

/// Published articles ranked by how well they match `text` (any of its words), best first,
/// with a score where higher is better.
pub fn ranked(
    c: &mut DbConn,
    text: &str,
    language: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<(Article, f64)>> {
    let words = any_words(text);
    if words.is_empty() {
        return Ok(vec![]);
    }
    let limit = limit.clamp(1, 50) as i32;
    let hits: Vec<Hit> = match c {
        DbConn::Sqlite(s) => {
            let q = words
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" OR ");
            // bm25 is lower for better matches; the title counts ten times the body.
            diesel::sql_query(
                "SELECT s.article_id AS id, -bm25(kb_search, 0.0, 10.0, 1.0) AS score \
                 FROM kb_search s JOIN kb_articles k ON k.id = s.article_id \
                 WHERE kb_search MATCH ? AND (? = '' OR k.language = ?) \
                 ORDER BY bm25(kb_search, 0.0, 10.0, 1.0), s.article_id LIMIT ?",
            )
            .bind::<Text, _>(q)
            .bind::<Text, _>(language.unwrap_or_default())
            .bind::<Text, _>(language.unwrap_or_default())
            .bind::<Integer, _>(limit)
            .load(s)?
        }
        DbConn::Pg(pg) => {
            let q = words.join(" | ");
            diesel::sql_query(
                "SELECT k.id, ts_rank(k.search, to_tsquery('simple', $1))::float8 AS score \
                 FROM kb_articles k \
                 WHERE k.search @@ to_tsquery('simple', $1) AND k.status = 'published' \
                   AND k.archived_at IS NULL AND ($2 = '' OR k.language = $2) \
                 ORDER BY score DESC, k.id LIMIT $3",
            )
            .bind::<Text, _>(q)
            .bind::<Text, _>(language.unwrap_or_default())
            .bind::<Integer, _>(limit)
            .load(pg)?
        }
    };
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    let arts: Vec<Article> = a::table
        .filter(a::id.eq_any(&ids))
        .select(Article::as_select())
        .load(c)?;
    Ok(hits
        .into_iter()
        .filter_map(|h| {
            arts.iter()
                .find(|a| a.id == h.id)
                .cloned()
                .map(|a| (a, h.score))
        })
        .collect())
}

/// An article found, with its score (higher is better).
#[derive(Debug, Serialize, ToSchema)]
pub struct Ranked {
    pub article: Article,
    pub score: f64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words to look for; articles matching any of them, the most relevant first.
    #[param(min_length = 1, max_length = 1000)]
    pub q: String,
    #[param(min_length = 2, max_length = 10)]
    pub language: Option<String>,
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<i64>,
}

/// Search the knowledge base.
///
/// Published articles matching any word of `q`, ranked by the database's full-text engine (title
/// matches weigh more than body matches). Everyone inside the company (`ServiceRead`).
#[utoipa::path(get, path = "/api/v1/kb/search", tag = "kb", operation_id = "search_kb",
    params(SearchParams),
    responses((status = 200, description = "Ranked articles", body = Vec<Ranked>), ReadProblems))]
#[get("/kb/search")]
pub async fn search(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<SearchParams>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceRead)?;
    let p = query.into_inner();
    if p.limit.is_some_and(|l| !(1..=50).contains(&l)) {
        return Err(ApiError::BadRequest("limit must be 1 to 50".into()));
    }
    if !(1..=1000).contains(&p.q.chars().count()) {
        return Err(ApiError::BadRequest(
            "q must be 1 to 1000 characters".into(),
        ));
    }
    if p.language
        .as_ref()
        .is_some_and(|l| !(2..=10).contains(&l.chars().count()))
    {
        return Err(ApiError::BadRequest(
            "language must be 2 to 10 characters".into(),
        ));
    }
    let found = state
        .db(move |c| ranked(c, &p.q, p.language.as_deref(), p.limit.unwrap_or(10)))
        .await?;
    let out: Vec<Ranked> = found
        .into_iter()
        .map(|(article, score)| Ranked { article, score })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// Articles suggested for a ticket.
///
/// Published articles ranked by the ticket's subject and description, best first (at most 10), in
/// the ticket's language when it has one. Everyone inside the company (`ServiceRead`).
#[utoipa::path(get, path = "/api/v1/tickets/{id}/suggested-articles", tag = "kb", operation_id = "suggest_articles",
    params(("id" = String, Path, format = "uuid", description = "Ticket id")),
    responses((status = 200, description = "Ranked articles", body = Vec<Ranked>), ReadProblems))]
#[get("/tickets/{id}/suggested-articles")]
pub async fn suggested(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceRead)?;
    let id = path_id(&id)?;
    let found = state
        .db(move |c| {
            let t = tickets::find(c, &me, &id)?;
            suggest_for(c, &t, 10)
        })
        .await?;
    let out: Vec<Ranked> = found
        .into_iter()
        .map(|(article, score)| Ranked { article, score })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

pub fn suggest_for(c: &mut DbConn, t: &tickets::Ticket, n: i64) -> ApiResult<Vec<(Article, f64)>> {
    let text = format!(
        "{} {}",
        t.subject,
        t.description.as_deref().unwrap_or_default()
    );
    ranked(c, &text, t.language.as_deref(), n)
}

/// A revision of an article.
#[derive(Debug, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = v)]
pub struct Revision {
    pub article_id: String,
    pub revision: i32,
    pub title: String,
    pub body: String,
    pub author_id: Option<String>,
    pub created_at: String,
}

/// List an article's revisions.
///
/// Every content version, newest first. Everyone inside the company (`ServiceRead`).
#[utoipa::path(get, path = "/api/v1/kb/articles/{id}/revisions", tag = "kb", operation_id = "list_article_revisions",
    params(("id" = String, Path, format = "uuid", description = "Article id")),
    responses((status = 200, description = "The revisions", body = Vec<Revision>), ReadProblems))]
#[get("/kb/articles/{id}/revisions")]
pub async fn revisions(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceRead)?;
    let id = path_id(&id)?;
    let out = state
        .db(move |c| {
            find(c, &id)?;
            Ok::<_, ApiError>(
                v::table
                    .filter(v::article_id.eq(&id))
                    .order(v::revision.desc())
                    .select(Revision::as_select())
                    .load(c)?,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// A vote.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    pub helpful: bool,
}

/// Vote an article helpful or not.
///
/// One vote per user and article: voting again replaces the earlier vote. Returns the article
/// with its counts. Everyone inside the company (`ServiceRead`).
#[utoipa::path(post, path = "/api/v1/kb/articles/{id}/votes", tag = "kb", operation_id = "vote_article",
    params(("id" = String, Path, format = "uuid", description = "Article id")),
    request_body = Vote,
    responses((status = 200, description = "The article with its vote counts", body = Article), WriteProblems))]
#[post("/kb/articles/{id}/votes")]
pub async fn vote(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceRead)?;
    let id = path_id(&id)?;
    let vote: Vote = crm_core::objects::input(&body.into_inner())?;
    let art = state
        .db(move |c| {
            db::write_tx(c, |c| {
                db::lock_row(c, "kb_articles", &id)?;
                find(c, &id)?;
                diesel::delete(kb_votes::table.find((&id, &me.user_id))).execute(c)?;
                diesel::insert_into(kb_votes::table)
                    .values((
                        kb_votes::article_id.eq(&id),
                        kb_votes::user_id.eq(&me.user_id),
                        kb_votes::helpful.eq(vote.helpful),
                        kb_votes::created_at.eq(ids::now()),
                    ))
                    .execute(c)?;
                let count = |c: &mut DbConn, h: bool| -> ApiResult<i64> {
                    Ok(kb_votes::table
                        .filter(kb_votes::article_id.eq(&id))
                        .filter(kb_votes::helpful.eq(h))
                        .count()
                        .get_result(c)?)
                };
                let (yes, no) = (count(c, true)?, count(c, false)?);
                diesel::update(a::table.find(&id))
                    .set((
                        a::helpful_votes.eq(yes as i32),
                        a::unhelpful_votes.eq(no as i32),
                    ))
                    .execute(c)?;
                find(c, &id)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(art))
}

/// The body of a link.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ArticleLink)]
#[serde(deny_unknown_fields)]
pub struct Link {
    #[schema(format = "uuid")]
    pub article_id: String,
}

/// Link an article to a ticket.
///
/// Records that the article answered (or relates to) the ticket; linking twice is harmless. Returns
/// the ticket's linked articles. Agents, managers and admins (`ServiceWrite`).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/articles", tag = "kb", operation_id = "link_article",
    params(("id" = String, Path, format = "uuid", description = "Ticket id")),
    request_body = Link,
    responses((status = 200, description = "The ticket's linked articles", body = Vec<Article>), WriteProblems))]
#[post("/tickets/{id}/articles")]
pub async fn link(
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    body: Json<Value>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::ServiceWrite)?;
    let id = path_id(&id)?;
    let link: Link = crm_core::objects::input(&body.into_inner())?;
    let out = state
        .db(move |c| {
            db::write_tx(c, |c| {
                // Links to one ticket take turns: the re-link below deletes, then inserts,
                // and two at once (a double click) would otherwise collide on the key.
                db::lock_row(c, "tickets", &id)?;
                tickets::find(c, &me, &id)?;
                let article = ids::parse_id(&link.article_id)
                    .ok_or_else(|| ApiError::field("article_id", "invalid", "must be an id"))?;
                find(c, &article).map_err(|_| {
                    ApiError::field("article_id", "not_found", "no article has this id")
                })?;
                diesel::delete(ticket_articles::table.find((&id, &article))).execute(c)?;
                diesel::insert_into(ticket_articles::table)
                    .values((
                        ticket_articles::ticket_id.eq(&id),
                        ticket_articles::article_id.eq(&article),
                        ticket_articles::linked_by.eq(&me.user_id),
                        ticket_articles::linked_at.eq(ids::now()),
                    ))
                    .execute(c)?;
                audit_change(
                    c,
                    &me,
                    "ticket",
                    "article_linked",
                    &id,
                    json!({"article_id": article}),
                    &json!({"id": id, "article_id": article}),
                )?;
                Ok::<_, ApiError>(
                    a::table
                        .inner_join(ticket_articles::table)
                        .filter(ticket_articles::ticket_id.eq(&id))
                        .order(ticket_articles::linked_at)
                        .select(Article::as_select())
                        .load::<Article>(c)?,
                )
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Articles on the resource kernel: agents write them, everyone inside the company reads.
pub struct Articles;

impl Resource for Articles {
    type Record = Article;
    type Input = ArticleInput;
    type Patch = ArticleInput;
    crm_core::resource_paths!("kb/articles");
    const ENTITY: &'static str = "kb_article";
    const TABLE: &'static str = "kb_articles";
    const TAG: &'static str = "kb";
    const READ: Permission = Permission::ServiceRead;
    const WRITE: Permission = Permission::ServiceWrite;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["title", "body"];
    const ARCHIVED: &'static str = "Archived: no longer searched or suggested";

    crm_core::record_meta!(Article);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<Article> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<Article>> {
        let mut q = a::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(a::archived_at.is_null());
        }
        if let Some(s) = crate::enum_filter::<ArticleStatus>(p, "status")? {
            q = q.filter(a::status.eq(crate::enum_text(s)));
        }
        if let Some(v) = p.filter("category") {
            q = q.filter(a::category.eq(v.to_string()));
        }
        if let Some(v) = p.filter("language") {
            q = q.filter(a::language.eq(v.to_string()));
        }
        let rows: Vec<Article> = apply_sort(q, p)?.select(Article::as_select()).load(c)?;
        list::page(rows, p)
    }

    fn create(c: &mut DbConn, me: &Principal, input: &ArticleInput) -> ApiResult<Article> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<Article> {
        update(c, me, id, expected, patch)
    }

    /// Archiving or restoring takes the article out of (or back into) search.
    fn after_archive(
        c: &mut DbConn,
        _me: &Principal,
        art: &Article,
        archiving: bool,
    ) -> ApiResult<()> {
        let now = find(c, &art.id)?;
        debug_assert_eq!(now.archived_at.is_some(), archiving);
        reindex(c, &now)
    }

    crm_core::archive_stamp!(kb_articles);
}
