//! Roles and the one permission check every domain crate uses.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    SalesRep,
    Marketer,
    Agent,
    Analyst,
    Partner,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Manager,
        Role::SalesRep,
        Role::Marketer,
        Role::Agent,
        Role::Analyst,
        Role::Partner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::SalesRep => "sales_rep",
            Role::Marketer => "marketer",
            Role::Agent => "agent",
            Role::Analyst => "analyst",
            Role::Partner => "partner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Internal roles are employees; partner users belong to a partner organisation.
    pub fn is_internal(self) -> bool {
        self != Role::Partner
    }
}

/// What an operation needs. Domain crates add variants as they land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See the user directory.
    UsersRead,
    /// Create, change, archive users.
    UsersManage,
    TeamsRead,
    TeamsManage,
    /// Create and revoke one's own API keys.
    ApiKeysOwn,
    /// See and revoke everyone's API keys.
    ApiKeysAll,
    AuditRead,
    JobsManage,
    /// See customer records (partners: only those shared with their organisation).
    CustomersRead,
    /// Create customer records and change the ones one owns (or one's team owns).
    CustomersWrite,
    /// Change and reassign any customer record, merge records.
    CustomersManage,
    /// Export a person's data and erase it (GDPR).
    PersonalData,
    /// See the product catalogue and price books.
    ProductsRead,
    /// Change the catalogue and prices.
    ProductsManage,
    /// Define custom fields.
    MetaManage,
    /// Subscribe URLs to events, see delivery logs, redeliver.
    WebhooksManage,
    /// Run bulk imports (each row also needs the object's write permission).
    ImportsRun,
    /// Write accounting records (invoices, payments). They are pushed in from the
    /// accounting system, usually with an admin's or manager's integration key; everyone
    /// who sees customers reads them with `CustomersRead`.
    BillingWrite,
    /// See leads, pipelines and opportunities.
    SalesRead,
    /// Create and work leads and opportunities: convert, move through stages.
    SalesWrite,
    /// Manage pipelines, and edit any rep's leads and opportunities.
    SalesManage,
    /// See what the server mailed (the outbox) and the mail templates.
    MailRead,
    /// Change the mail templates.
    MailManage,
    /// See tickets, their conversations, queues and SLA reports.
    ServiceRead,
    /// Work tickets: create, reply, change status, pull from a queue.
    ServiceWrite,
    /// Set up queues, routing, SLA policies, business calendars and mail gateways.
    ServiceManage,
    /// See segments, lists, campaigns and their figures.
    MarketingRead,
    /// Build segments, lists and campaigns, and send campaigns.
    MarketingWrite,
}

/// The permission table: which roles hold which permission.
pub fn role_allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    use Role::*;
    match permission {
        UsersManage | TeamsManage | ApiKeysAll | AuditRead | JobsManage => role == Admin,
        UsersRead | TeamsRead => role.is_internal(),
        ApiKeysOwn | CustomersRead => true,
        CustomersWrite => !matches!(role, Analyst | Partner),
        CustomersManage => matches!(role, Admin | Manager),
        PersonalData => role == Admin,
        ProductsRead => true,
        ProductsManage => matches!(role, Admin | Manager),
        MetaManage => role == Admin,
        WebhooksManage => role == Admin,
        ImportsRun => !matches!(role, Analyst | Partner),
        BillingWrite => matches!(role, Admin | Manager),
        // Partners see what is shared with them once partner organisations land; the
        // visibility predicate keeps them to that.
        SalesRead => true,
        SalesWrite => matches!(role, Admin | Manager | SalesRep | Marketer),
        SalesManage => matches!(role, Admin | Manager),
        MailRead => matches!(role, Admin | Manager),
        MailManage => role == Admin,
        // Everyone who talks to customers sees their problems.
        ServiceRead => role.is_internal(),
        ServiceWrite => matches!(role, Admin | Manager | Agent),
        ServiceManage => matches!(role, Admin | Manager),
        MarketingRead => role.is_internal(),
        MarketingWrite => matches!(role, Admin | Manager | Marketer),
    }
}

pub fn require(role: Role, permission: Permission) -> Result<(), ApiError> {
    if role_allows(role, permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "the {} role may not do this",
            role.as_str()
        )))
    }
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials needed.
    Public,
    /// Any valid credential, whatever the role.
    Authenticated,
    /// Roles holding this permission (see `role_allows`).
    Needs(Permission),
}

/// Whether an operation on one record also depends on who owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Role alone decides.
    None,
    /// Only the owner may see the record (others get 404) unless their role holds the
    /// given permission (for example admins with `ApiKeysAll`).
    OwnerOnly(Permission),
    /// Everyone allowed may read; only the owner or the owner's team may change it
    /// (others 403) unless their role holds the given permission (managers, admins).
    OwnerOrTeamEdits(Permission),
    /// A record that belongs to another (named here: "opportunity") takes its rule: only
    /// the owner of that record or the owner's team may create, change or archive it
    /// (others 403) unless their role holds the given permission (`Resource::PARENTS`).
    FollowsParent(&'static str, Permission),
    /// Partner users see only records shared with their organisation (others 404).
    PartnerOrganisation,
}

/// One row of the permission table: an operation of the API and who may call it.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    /// The OpenAPI path template, `/api/v1/users/{id}`.
    pub path: &'static str,
    /// The router pattern that serves it: the same as `path`, except for operations that
    /// one generic route serves per object (`/api/v1/{collection}/batch`).
    pub route: &'static str,
    pub access: Access,
    pub ownership: Ownership,
    /// Set on an operation being phased out: when it was deprecated and the day after
    /// which it may be removed (`YYYY-MM-DD`). The spec marks it `deprecated: true` and
    /// every response carries `Deprecation` (RFC 9745) and `Sunset` (RFC 8594).
    pub deprecation: Option<Deprecation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecation {
    pub since: &'static str,
    pub sunset: &'static str,
}

impl Deprecation {
    /// The `Deprecation` and `Sunset` header values: `@<unix seconds>` and an HTTP-date.
    pub fn headers(&self) -> Option<(String, String)> {
        let day = |d: &str| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        };
        let (since, sunset) = (day(self.since)?, day(self.sunset)?);
        Some((
            format!("@{}", since.timestamp()),
            sunset.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ))
    }
}

impl Operation {
    pub const fn new(method: &'static str, path: &'static str, access: Access) -> Self {
        Operation {
            method,
            path,
            route: path,
            access,
            ownership: Ownership::None,
            deprecation: None,
        }
    }

    /// Being phased out: deprecated on `since`, removable after `sunset` (`YYYY-MM-DD`).
    pub const fn deprecated(self, since: &'static str, sunset: &'static str) -> Self {
        Operation {
            deprecation: Some(Deprecation { since, sunset }),
            ..self
        }
    }

    /// Served by a generic route pattern rather than by a route of its own path.
    pub const fn served_by(self, route: &'static str) -> Self {
        Operation { route, ..self }
    }

    pub const fn owned(self, ownership: Ownership) -> Self {
        Operation { ownership, ..self }
    }

    /// Whether a role may call this operation at all (before any ownership rule).
    pub fn allows(&self, role: Role) -> bool {
        match self.access {
            Access::Public | Access::Authenticated => true,
            Access::Needs(p) => role_allows(role, p),
        }
    }
}

/// The permission table of the identity and platform routes. Domain crates publish theirs;
/// the gateway joins them into one `AccessTable`, which the auth middleware enforces on
/// every request before any handler runs, and which the authorization-matrix test checks
/// against the served OpenAPI document.
pub const IDENTITY_OPERATIONS: &[Operation] = {
    use Access::*;
    use Permission::*;
    &[
        Operation::new("POST", "/api/v1/auth/login", Public),
        Operation::new("POST", "/api/v1/auth/refresh", Public),
        Operation::new("POST", "/api/v1/auth/logout", Public),
        Operation::new("POST", "/api/v1/api-keys", Needs(ApiKeysOwn)),
        Operation::new("GET", "/api/v1/api-keys", Needs(ApiKeysOwn)),
        Operation::new("DELETE", "/api/v1/api-keys/{id}", Needs(ApiKeysOwn))
            .owned(Ownership::OwnerOnly(ApiKeysAll)),
        Operation::new("GET", "/api/v1/users/me", Authenticated),
        Operation::new("GET", "/api/v1/jobs", Needs(JobsManage)),
        Operation::new("GET", "/api/v1/jobs/{id}", Needs(JobsManage)),
        Operation::new("POST", "/api/v1/jobs/{id}/retry", Needs(JobsManage)),
        Operation::new("GET", "/api/v1/schedules", Needs(JobsManage)),
        Operation::new("GET", "/api/v1/schedules/{name}", Needs(JobsManage)),
        Operation::new("PATCH", "/api/v1/schedules/{name}", Needs(JobsManage)),
        Operation::new("POST", "/api/v1/schedules/{name}/run", Needs(JobsManage)),
        Operation::new("GET", "/api/v1/audit-log", Needs(AuditRead)),
    ]
};

/// The joined permission table, matched against the path as the router sees it.
pub struct AccessTable {
    entries: Vec<(actix_web::dev::ResourceDef, Operation)>,
}

/// The literal start of a path template (`/api/v1/contacts/` of `/api/v1/contacts/{id}`): a
/// path that does not start with it cannot match, and checking that is far cheaper than the
/// template's regex, which every request would otherwise run against every row.
fn literal_prefix(template: &str) -> &str {
    template.split('{').next().unwrap_or(template)
}

/// The operation the auth middleware authorized a request for. The `Principal` extractor
/// checks it against the route that actually matched, so a handler can never run under
/// another row's permission (say, if the router and the table ever disagreed on a path).
#[derive(Debug, Clone, Copy)]
pub struct AuthorizedOperation(pub Operation);

impl AccessTable {
    pub fn new(parts: &[&[Operation]]) -> Self {
        let mut entries: Vec<(actix_web::dev::ResourceDef, Operation)> = parts
            .iter()
            .flat_map(|p| p.iter())
            .map(|op| (actix_web::dev::ResourceDef::new(op.path), *op))
            .collect();
        // Literal paths (`/users/me`) win over templates (`/users/{id}`).
        entries.sort_by_key(|(_, op)| op.path.contains('{'));
        AccessTable { entries }
    }

    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.entries.iter().map(|(_, op)| op)
    }

    /// The operation a request addresses, if any. `path` must be the path the router
    /// matches (percent-decoded), never the raw request target.
    pub fn find(&self, method: &str, path: &str) -> Option<&Operation> {
        // A literal path (`/segments/preview`) is never also an id of a template beside it
        // (`/segments/{id}`): a method the literal path lacks is refused, not routed there.
        let literal = self
            .entries
            .iter()
            .any(|(_, op)| !op.path.contains('{') && op.path == path);
        self.entries
            .iter()
            .find(|(def, op)| {
                op.method == method
                    && (!literal || op.path == path)
                    && path.starts_with(literal_prefix(op.path))
                    && def.is_match(path)
            })
            .map(|(_, op)| op)
    }

    /// The methods the table has for a path (for `Allow` on a 405), if it has any.
    pub fn methods_for(&self, path: &str) -> Option<String> {
        // The methods of the most specific pattern that matches (`/accounts/batch`, not
        // also `/accounts/{id}`): literal patterns come first in the table.
        let (_, first) = self
            .entries
            .iter()
            .find(|(def, op)| path.starts_with(literal_prefix(op.path)) && def.is_match(path))?;
        let mut methods: Vec<&str> = self
            .entries
            .iter()
            .filter(|(_, op)| op.path == first.path)
            .map(|(_, op)| op.method)
            .collect();
        methods.sort_unstable();
        methods.dedup();
        (!methods.is_empty()).then(|| methods.join(", "))
    }

    /// What a request that matches no row gets: 405 for a known path, else 404. Either
    /// way it never reaches a handler, so a route without a row is unreachable.
    pub fn refusal(&self, method: &str, path: &str) -> ApiError {
        match self.methods_for(path) {
            Some(allow) => ApiError::MethodNotAllowed { allow },
            None => ApiError::NotFound(format!("no route {method} {path}; see /openapi.json")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_manage_users_and_partners_do_not_see_the_directory() {
        assert!(role_allows(Role::Admin, Permission::UsersManage));
        assert!(!role_allows(Role::Manager, Permission::UsersManage));
        assert!(role_allows(Role::Agent, Permission::UsersRead));
        assert!(!role_allows(Role::Partner, Permission::UsersRead));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
