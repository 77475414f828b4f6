//! The one schema for both backends. Ids, timestamps and JSON are `Text` (see `ids`).
//! Domain crates add their tables here so every crate can read (not write) the others'.

diesel::table! {
    teams (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        role -> Text,
        team_id -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        active -> Bool,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        user_id -> Text,
        family_id -> Text,
        token_hash -> Text,
        expires_at -> Text,
        revoked_at -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        expires_at -> Nullable<Text>,
        last_used_at -> Nullable<Text>,
        revoked_at -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    idempotency_keys (id) {
        id -> Text,
        scope -> Text,
        idem_key -> Text,
        request_hash -> Text,
        status_code -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        response_headers -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        occurred_at -> Text,
        actor_id -> Nullable<Text>,
        actor_kind -> Text,
        action -> Text,
        entity_type -> Text,
        entity_id -> Text,
        changes -> Text,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    events (seq) {
        seq -> BigInt,
        id -> Text,
        event_type -> Text,
        entity_type -> Text,
        entity_id -> Text,
        actor_id -> Nullable<Text>,
        occurred_at -> Text,
        payload -> Text,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        run_at -> Text,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Text,
        updated_at -> Text,
        finished_at -> Nullable<Text>,
    }
}

diesel::joinable!(users -> teams (team_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    teams,
    users,
    refresh_tokens,
    api_keys,
    idempotency_keys,
    audit_log,
    events,
    jobs,
);
