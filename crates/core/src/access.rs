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
}

/// The permission table: which roles hold which permission.
pub fn role_allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    use Role::*;
    match permission {
        UsersManage | TeamsManage | ApiKeysAll | AuditRead | JobsManage => role == Admin,
        UsersRead | TeamsRead => role.is_internal(),
        ApiKeysOwn => true,
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

#[cfg(test)]
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
