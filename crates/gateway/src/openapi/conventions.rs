//! The API's house rules, written into the assembled document once rather than repeated on
//! every field of every crate:
//! - who may call an operation comes from the permission table the auth middleware enforces
//!   (`security: []` on public operations, and a sentence naming the roles);
//! - every id is a UUID and every `…_at` a date-time (`crm_core::ids`), every `email` an email;
//! - an object with no declared properties is an open map (custom fields, event data);
//! - a response schema lists every key the server always sends as required: the records are
//!   plain serde structs, so each field is sent (as `null` when empty) unless it is one of
//!   the few `skip_serializing_if` fields in `SOMETIMES_SENT`;
//! - a page's `data` refers to its item schema instead of a copy of it.

use crm_core::access::{role_allows, Access, AccessTable, Operation, Ownership, Permission, Role};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Names ending in `_id` that hold a client's own key or label, not one of our UUIDs.
// `message_id` is an RFC 5322 Message-ID (`<uuid>@domain`), not a bare UUID.
const NOT_UUIDS: &[&str] = &["external_id", "request_id", "reference_id", "message_id"];
/// Fields that hold UUIDs without ending in `_id`.
const UUID_NAMES: &[&str] = &[
    "id",
    "merged_into",
    "created_by",
    "member_ids",
    "merged_ids",
];
/// Response fields serialized with `skip_serializing_if`: sent only when they have a value.
const SOMETIMES_SENT: &[(&str, &str)] = &[
    ("Problem", "errors"),
    ("FieldDescription", "options"),
    ("Webhook", "secret"),
    ("CreatedApiKey", "secret_note"),
    ("MailGateway", "key"),
];

pub fn apply(doc: &mut Value, table: &AccessTable) {
    access(doc, table);
    let mut formats = |s: &mut Value| formats(s);
    for_each_schema(doc, &mut formats);
    for_each_schema(doc, &mut open_objects);
    page_items(doc);
    required_in_responses(doc);
}

/// Every operation says who may call it, from the table the middleware enforces.
fn access(doc: &mut Value, table: &AccessTable) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(row) = table
                .operations()
                .find(|o| o.path == path && o.method.eq_ignore_ascii_case(method))
            else {
                continue;
            };
            if row.access == Access::Public {
                op.insert("security".into(), json!([]));
            }
            if let Some(d) = row.deprecation {
                op.insert("deprecated".into(), json!(true));
                let about = op.get("description").and_then(Value::as_str).unwrap_or("");
                let note = format!(
                    "**Deprecated** since {}; it may be removed after {} (the `Sunset` \
                     header of every answer says so too).\n\n{about}",
                    d.since, d.sunset
                );
                op.insert("description".into(), Value::String(note));
            }
            let about = op
                .get("description")
                .and_then(Value::as_str)
                .map(|d| format!("{d}\n\n"))
                .unwrap_or_default();
            op.insert(
                "description".into(),
                Value::String(format!("{about}{}", who_may_call(row))),
            );
        }
    }
}

/// "**Access:** …", in the words a client developer needs.
fn who_may_call(row: &Operation) -> String {
    let access = match row.access {
        Access::Public => "public, no credentials needed.".to_string(),
        Access::Authenticated => "any valid token or API key.".to_string(),
        Access::Needs(p) => format!("{}.", roles_holding(p)),
    };
    let ownership = match row.ownership {
        Ownership::None => String::new(),
        Ownership::OwnerOnly(p) => format!(
            " Others than the owner get 404, except {}.",
            roles_holding(p)
        ),
        Ownership::OwnerOrTeamEdits(p) => format!(
            " Only the owner or the owner's team may change a record (others get 403), \
             except {}.",
            roles_holding(p)
        ),
        Ownership::FollowsParent(parent, p) => format!(
            " Follows the {parent} it belongs to: only the owner of that {parent} or the \
             owner's team may create or change it (others get 403), except {}.",
            roles_holding(p)
        ),
        Ownership::PartnerOrganisation => {
            " Partner users see only records shared with their organisation.".to_string()
        }
    };
    format!("**Access:** {access}{ownership}")
}

fn roles_holding(p: Permission) -> String {
    if Role::ALL.into_iter().all(|r| role_allows(r, p)) {
        return "every role".to_string();
    }
    let roles: Vec<String> = Role::ALL
        .into_iter()
        .filter(|r| role_allows(*r, p))
        .map(|r| format!("`{}`", r.as_str()))
        .collect();
    format!("roles {}", roles.join(", "))
}

/// Calls `f` on every schema object in the document: components, bodies and responses, and
/// every schema nested in them. Not parameters: a filter takes what its own declaration
/// says (an `email` filter matches any text; the kernel's id filters declare `uuid`).
fn for_each_schema(doc: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for schema in schemas.values_mut() {
            walk(schema, f);
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method) else {
                continue;
            };
            for content in ["/requestBody/content", "/responses"] {
                if let Some(v) = op.pointer_mut(content) {
                    walk_media(v, f);
                }
            }
        }
    }
}

/// The schemas under `content` maps (of a body, or of every response).
fn walk_media(v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "schema" {
                    walk(child, f);
                } else {
                    walk_media(child, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| walk_media(i, f)),
        _ => {}
    }
}

fn walk(schema: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    f(schema);
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = obj.get_mut(key) {
            walk(child, f);
        }
    }
    for key in ["oneOf", "anyOf", "allOf", "prefixItems"] {
        for child in obj
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            walk(child, f);
        }
    }
    for child in obj
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|m| m.values_mut())
    {
        walk(child, f);
    }
}

/// The format a property's name promises, if it has none yet.
fn formats(schema: &mut Value) {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, prop) in props.iter_mut() {
        let Some(format) = format_for(name) else {
            continue;
        };
        // Lists of ids (`member_ids`) carry the format on their items.
        let target = if is_type(prop, "array") {
            match prop.get_mut("items") {
                Some(items) => items,
                None => continue,
            }
        } else {
            prop
        };
        if is_type(target, "string") && target.get("format").is_none() {
            if let Some(o) = target.as_object_mut() {
                o.insert("format".into(), json!(format));
            }
        }
    }
}

fn format_for(name: &str) -> Option<&'static str> {
    if UUID_NAMES.contains(&name) || (name.ends_with("_id") && !NOT_UUIDS.contains(&name)) {
        Some("uuid")
    } else if name.ends_with("_at") || name == "locked_until" {
        Some("date-time")
    } else if name == "email" {
        Some("email")
    } else {
        None
    }
}

fn is_type(schema: &Value, wanted: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == wanted),
        _ => false,
    }
}

/// `type: object` with no properties is a map the server fills freely: say so, or a
/// generated client types it as an object that may hold nothing.
fn open_objects(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let bare = matches!(obj.get("type"), Some(t) if t == "object" || t == &json!(["object", "null"]))
        && !obj.contains_key("properties")
        && !obj.contains_key("additionalProperties")
        && !obj.contains_key("$ref");
    if bare {
        obj.insert("additionalProperties".into(), json!(true));
    }
}

/// `Page_X.data.items` refers to `X` where that schema exists.
fn page_items(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let names: BTreeSet<String> = schemas.keys().cloned().collect();
    for (name, schema) in schemas.iter_mut() {
        let Some(item) = name.strip_prefix("Page_") else {
            continue;
        };
        if names.contains(item) {
            if let Some(items) = schema.pointer_mut("/properties/data/items") {
                *items = json!({"$ref": format!("#/components/schemas/{item}")});
            }
        }
    }
}

/// Component schemas that only ever appear in responses list every key as required. An
/// object schema used both ways (`Address`) is first split: requests get `AddressInput`,
/// with the keys optional as the server reads them.
fn required_in_responses(doc: &mut Value) {
    let (sent, received) = directions(doc);
    let shared: Vec<String> = sent
        .intersection(&received)
        .filter(|n| {
            // An object schema, and no `<name>Input` of its own yet.
            doc.pointer(&format!("/components/schemas/{n}/properties"))
                .is_some()
                && doc
                    .pointer(&format!("/components/schemas/{n}Input"))
                    .is_none()
        })
        .cloned()
        .collect();
    if !shared.is_empty() {
        split_shared(doc, &shared, &received.difference(&sent).cloned().collect());
    }
    let (sent, received) = directions(doc);
    let Some(components) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for name in sent.difference(&received) {
        if let Some(schema) = components.get_mut(name) {
            all_required(name, schema);
        }
    }
}

/// `<name>Input` for each shared schema, referred to from request bodies, parameters and
/// the request-only schemas instead of `<name>`.
fn split_shared(doc: &mut Value, shared: &[String], request_only: &BTreeSet<String>) {
    let retarget = |v: &mut Value| {
        retarget_refs(v, &|name: &str| {
            shared
                .iter()
                .any(|s| s == name)
                .then(|| format!("{name}Input"))
        })
    };
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in shared {
            if let Some(mut copy) = schemas.get(name).cloned() {
                retarget(&mut copy);
                schemas.insert(format!("{name}Input"), copy);
            }
        }
        for name in request_only {
            if let Some(schema) = schemas.get_mut(name) {
                retarget(schema);
            }
        }
    }
    for item in doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for method in METHODS {
            if let Some(op) = item.get_mut(method) {
                for part in ["requestBody", "parameters"] {
                    if let Some(v) = op.get_mut(part) {
                        retarget(v);
                    }
                }
            }
        }
    }
}

fn retarget_refs(v: &mut Value, to: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::Object(map) => {
            let target = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .and_then(to);
            if let Some(name) = target {
                map.insert("$ref".into(), json!(format!("#/components/schemas/{name}")));
            }
            map.values_mut().for_each(|c| retarget_refs(c, to));
        }
        Value::Array(items) => items.iter_mut().for_each(|c| retarget_refs(c, to)),
        _ => {}
    }
}

/// The component schemas responses reach, and those requests reach.
fn directions(doc: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut sent, mut received) = (BTreeSet::new(), BTreeSet::new());
    let schemas = doc
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_default();
    for item in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values())
    {
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            reachable(op.get("responses"), &schemas, &mut sent);
            reachable(op.get("requestBody"), &schemas, &mut received);
            reachable(op.get("parameters"), &schemas, &mut received);
        }
    }
    (sent, received)
}

/// The component schemas `v` refers to, directly or through others.
fn reachable(v: Option<&Value>, schemas: &Value, out: &mut BTreeSet<String>) {
    match v {
        Some(Value::Object(map)) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                if out.insert(name.to_string()) {
                    reachable(schemas.get(name), schemas, out);
                }
            }
            map.values().for_each(|c| reachable(Some(c), schemas, out));
        }
        Some(Value::Array(items)) => items.iter().for_each(|c| reachable(Some(c), schemas, out)),
        _ => {}
    }
}

/// Marks every property of an object schema (and of the objects inlined in it) required.
fn all_required(name: &str, schema: &mut Value) {
    let mut mark = |s: &mut Value| {
        let Some(props) = s.get("properties").and_then(Value::as_object) else {
            return;
        };
        let keys: Vec<Value> = props
            .keys()
            .filter(|k| !SOMETIMES_SENT.contains(&(name, k.as_str())))
            .map(|k| Value::String(k.clone()))
            .collect();
        if let Some(o) = s.as_object_mut() {
            o.insert("required".into(), Value::Array(keys));
        }
    };
    walk(schema, &mut mark);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn names_promise_formats() {
        assert_eq!(format_for("owner_id"), Some("uuid"));
        assert_eq!(format_for("external_id"), None);
        assert_eq!(format_for("archived_at"), Some("date-time"));
        assert_eq!(format_for("email"), Some("email"));
        assert_eq!(format_for("name"), None);
    }

    #[test]
    fn a_response_only_schema_requires_every_key_but_the_sometimes_sent_ones() {
        let mut problem = json!({"type": "object", "properties": {
            "title": {"type": "string"}, "errors": {"type": "array"}}});
        all_required("Problem", &mut problem);
        assert_eq!(problem["required"], json!(["title"]));
    }

    #[test]
    fn bare_objects_become_open_maps() {
        let mut custom = json!({"type": "object"});
        open_objects(&mut custom);
        assert_eq!(custom["additionalProperties"], json!(true));
        let mut typed = json!({"type": "object", "properties": {}});
        open_objects(&mut typed);
        assert!(typed.get("additionalProperties").is_none());
    }
}
