//! Loyalty: orders earn the account's member points by the programme's rules and tier
//! multiplier, once however often the order is written; cancelling takes them back; a
//! retried award counts once; redemptions never take a balance below zero, even many at
//! once; bad programmes and redemptions are refused naming what is wrong.

use crate::marketing::{created, errors as fields};
use crm_tests::TestApp;
use serde_json::{json, Value};

struct Shop {
    app: TestApp,
    account: String,
    member: String,
    coffee: String,
    mug: String,
}

fn shop() -> Shop {
    let app = TestApp::start();
    let program = created(
        &app,
        "/api/v1/loyalty-programs",
        json!({"name": "Beans", "currency": "EUR",
            // 1 point per euro, and 5 more per 10 € of coffee.
            "earn_rules": [{"points": 1, "per_amount": 100},
                {"points": 5, "per_amount": 1000, "product_family": "coffee"}],
            "tiers": [{"name": "Gold", "min_points": 100, "multiplier_percent": 200},
                {"name": "Green", "min_points": 0}],
            "rewards": [{"code": "FREE-CUP", "name": "A free cup", "points": 30}]}),
    );
    let account = created(&app, "/api/v1/accounts", json!({"name": "Ada's household"}));
    let contact = created(
        &app,
        "/api/v1/contacts",
        json!({"first_name": "Ada", "last_name": "Bean",
            "accounts": [{"account_id": account, "role": "buyer"}]}),
    );
    // No account_id sent: the contact's only account earns.
    let res = app.post(
        "/api/v1/loyalty-members",
        &app.admin_token,
        &json!({"program_id": program, "contact_id": contact}),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    let m = res.json();
    assert_eq!(m["account_id"], account.as_str());
    assert_eq!(
        (m["balance"].as_i64(), m["tier"].as_str()),
        (Some(0), Some("Green"))
    );
    let coffee = created(
        &app,
        "/api/v1/products",
        json!({"sku": "BEANS", "name": "Beans 1 kg", "family": "Coffee"}),
    );
    let mug = created(
        &app,
        "/api/v1/products",
        json!({"sku": "MUG", "name": "Mug", "family": "crockery"}),
    );
    Shop {
        member: m["id"].as_str().unwrap_or_default().to_string(),
        app,
        account,
        coffee,
        mug,
    }
}

impl Shop {
    fn member(&self) -> Value {
        let res = self.app.get(
            &format!("/api/v1/loyalty-members/{}", self.member),
            &self.app.admin_token,
        );
        assert_eq!(res.status, 200, "{}", res.text);
        res.json()
    }

    fn balance(&self) -> i64 {
        self.member()["balance"].as_i64().unwrap_or(-1)
    }

    fn order(&self, lines: Value) -> String {
        created(
            &self.app,
            "/api/v1/orders",
            json!({"account_id": self.account, "currency": "EUR", "ordered_on": "2026-12-01",
                "lines": lines}),
        )
    }

    fn post(&self, what: &str, body: Value) -> (u16, Value) {
        let res = self.app.post(
            &format!("/api/v1/loyalty-members/{}/{what}", self.member),
            &self.app.admin_token,
            &body,
        );
        (res.status, res.json())
    }

    fn ledger(&self) -> Vec<Value> {
        let res = self.app.get(
            &format!(
                "/api/v1/loyalty-members/{}/ledger?sort=created_at",
                self.member
            ),
            &self.app.admin_token,
        );
        assert_eq!(res.status, 200, "{}", res.text);
        res.json()["data"].as_array().cloned().unwrap_or_default()
    }
}

#[test]
fn orders_earn_by_the_rules_and_tier_once_and_a_cancellation_takes_them_back() {
    let s = shop();
    // 2 × 25.50 € of coffee and a 9.99 € mug: 60 points for 60.99 €, 5 × 5 for 51 € of coffee.
    let first = s.order(json!([
        {"product_id": s.coffee, "quantity": 2, "unit_price": 2550},
        {"product_id": s.mug, "quantity": 1, "unit_price": 999}]));
    assert_eq!(s.balance(), 85);
    // Writing the order again (a status change, notes) earns nothing more.
    let res = s.app.patch(
        &format!("/api/v1/orders/{first}"),
        &s.app.admin_token,
        &json!({"notes": "gift wrap"}),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(s.balance(), 85);
    // A 20 € mug order: 20 points, lifetime 105 reaches Gold.
    s.order(json!([{"product_id": s.mug, "quantity": 1, "unit_price": 2000}]));
    let m = s.member();
    assert_eq!(
        (m["balance"].as_i64(), m["tier"].as_str()),
        (Some(105), Some("Gold"))
    );
    // In Gold an order earns double: 10 € → 20 points.
    let third = s.order(json!([{"product_id": s.mug, "quantity": 1, "unit_price": 1000}]));
    assert_eq!(s.balance(), 125);
    // An order in another currency earns nothing.
    created(
        &s.app,
        "/api/v1/orders",
        json!({"account_id": s.account, "currency": "USD", "ordered_on": "2026-12-01",
            "lines": [{"product_id": s.mug, "quantity": 1, "unit_price": 5000}]}),
    );
    assert_eq!(s.balance(), 125);
    // Cancelling the third order takes its 20 points back, once.
    for _ in 0..2 {
        let res = s.app.patch(
            &format!("/api/v1/orders/{third}"),
            &s.app.admin_token,
            &json!({"status": "cancelled"}),
        );
        assert_eq!(res.status, 200, "{}", res.text);
    }
    assert_eq!(s.balance(), 105);
    let kinds: Vec<(String, i64)> = s
        .ledger()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().into(),
                e["points"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let expected = [("earn", 85), ("earn", 20), ("earn", 20), ("reversal", -20)];
    let expected: Vec<(String, i64)> = expected.iter().map(|(k, p)| ((*k).into(), *p)).collect();
    assert_eq!(kinds, expected);
    let last = s.ledger().pop().unwrap_or_default();
    assert_eq!(last["balance_after"], 105);
    assert_eq!(last["order_id"], third.as_str());
}

#[test]
fn a_retried_award_counts_once_and_redemptions_never_go_below_zero() {
    let s = shop();
    let (status, first) = s.post(
        "awards",
        json!({"points": 50, "reason": "welcome", "key": "welcome-1"}),
    );
    assert_eq!(status, 201, "{first}");
    let (status, again) = s.post(
        "awards",
        json!({"points": 50, "reason": "welcome", "key": "welcome-1"}),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(s.balance(), 50);
    // The same key for a different award is refused, not silently ignored.
    let (status, _) = s.post("awards", json!({"points": 70, "key": "welcome-1"}));
    assert_eq!(status, 409);
    // A reward costs its points; one the balance can't cover is a 409 and spends nothing.
    let (status, cup) = s.post("redemptions", json!({"reward": "FREE-CUP"}));
    assert_eq!((status, cup["points"].as_i64()), (201, Some(-30)));
    let (status, p) = s.post("redemptions", json!({"points": 21}));
    assert_eq!(status, 409, "{p}");
    assert_eq!(s.balance(), 20);
    // Taking away by hand stops at zero too.
    let (status, _) = s.post("awards", json!({"points": -21}));
    assert_eq!(status, 409);
    let (status, p) = s.post("redemptions", json!({"reward": "NOPE"}));
    assert_eq!((status, fields(&p)), (422, vec!["reward".to_string()]));
    let (status, p) = s.post("redemptions", json!({"reward": "FREE-CUP", "points": 3}));
    assert_eq!(status, 422, "{p}");
    let (status, p) = s.post("awards", json!({"points": 0}));
    assert_eq!((status, fields(&p)), (422, vec!["points".to_string()]));
    assert_eq!(s.balance(), 20);
    assert_eq!(s.ledger().len(), 2);
}

#[test]
fn concurrent_awards_and_redemptions_never_double_count_or_overdraw() {
    let s = shop();
    let (status, _) = s.post("awards", json!({"points": 1000, "key": "seed"}));
    assert_eq!(status, 201);
    // 8 writers at once: each sends the same award (key "bonus") and 5 redemptions of 40.
    // 1,100 points cover 27 redemptions of 40; the rest must be refused, and the bonus
    // must count once.
    let outcomes: Vec<Vec<u16>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let mut got = vec![s.post("awards", json!({"points": 100, "key": "bonus"})).0];
                    got.extend((0..5).map(|_| s.post("redemptions", json!({"points": 40})).0));
                    got
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let all: Vec<u16> = outcomes.into_iter().flatten().collect();
    assert!(all.iter().all(|s| [200, 201, 409].contains(s)), "{all:?}");
    let redeemed = s.app.count(&format!(
        "loyalty_ledger WHERE member_id = '{}' AND kind = 'redeem'",
        s.member
    ));
    let bonuses = s.app.count(&format!(
        "loyalty_ledger WHERE member_id = '{}' AND source_key = 'client:bonus'",
        s.member
    ));
    assert_eq!(bonuses, 1);
    assert_eq!(redeemed, 27, "{all:?}");
    assert_eq!(s.balance(), 1100 - 27 * 40);
    // The ledger adds up to the balance, entry by entry.
    let entries = s.ledger();
    let sum: i64 = entries
        .iter()
        .map(|e| e["points"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(sum, s.balance());
    assert!(entries
        .iter()
        .all(|e| e["balance_after"].as_i64().unwrap_or(-1) >= 0));
}

#[test]
fn bad_programmes_and_members_are_refused_naming_the_fields() {
    let s = shop();
    let t = &s.app.admin_token;
    let res = s.app.post(
        "/api/v1/loyalty-programs",
        t,
        &json!({"name": "Bad", "currency": "euro",
            "earn_rules": [{"points": 0, "per_amount": 100}],
            "tiers": [{"name": "A", "min_points": 10}, {"name": "A", "min_points": 10}],
            "rewards": [{"code": "X", "name": "X", "points": 0}]}),
    );
    let p = res.problem(422);
    let mut got = fields(&p);
    got.sort();
    assert_eq!(
        got,
        [
            "currency",
            "earn_rules[0].points",
            "rewards[0].points",
            "tiers[1].min_points",
            "tiers[1].name"
        ]
    );
    let res = s.app.post(
        "/api/v1/loyalty-programs",
        t,
        &json!({"name": "Unknown", "currency": "EUR", "earn_rules": [], "stars": 5}),
    );
    assert_eq!(res.status, 422, "{}", res.text);
    // A second member for the same account in the programme would earn its orders twice.
    let program = s.member()["program_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let other = created(
        &s.app,
        "/api/v1/contacts",
        json!({"first_name": "Bob", "last_name": "Bean"}),
    );
    let res = s.app.post(
        "/api/v1/loyalty-members",
        t,
        &json!({"program_id": program, "contact_id": other, "account_id": s.account}),
    );
    assert_eq!(res.status, 409, "{}", res.text);
    let res = s.app.patch(
        &format!("/api/v1/loyalty-members/{}", s.member),
        t,
        &json!({"balance": 1000000}),
    );
    assert_eq!(res.status, 422, "{}", res.text);
    let res = s.app.get("/api/v1/loyalty-members/not-a-uuid/ledger", t);
    assert_eq!(res.status, 400);
    // An archived member earns and redeems nothing.
    let res = s
        .app
        .delete(&format!("/api/v1/loyalty-members/{}", s.member), t);
    assert!(res.status == 200 || res.status == 204, "{}", res.text);
    let (status, _) = s.post("awards", json!({"points": 5}));
    assert_eq!(status, 409);
    s.order(json!([{"product_id": s.mug, "quantity": 1, "unit_price": 5000}]));
    assert_eq!(s.app.count("loyalty_ledger"), 0);
    let (_, partner) = s.app.user("partner");
    let res = s.app.get("/api/v1/loyalty-programs", &partner);
    assert_eq!(res.status, 403);
}

#[test]
fn a_programme_refuses_longer_lists_than_the_spec_allows() {
    let app = TestApp::start();
    let rule = json!({"points": 1, "per_amount": 100});
    let res = app.post(
        "/api/v1/loyalty-programs",
        &app.admin_token,
        &json!({"name": "Greedy", "currency": "EUR", "earn_rules": vec![rule; 51]}),
    );
    let p = res.problem(422);
    assert_eq!(p["errors"][0]["field"], "earn_rules", "{p}");
    assert_eq!(p["errors"][0]["message"], "at most 50 earn rules", "{p}");
    let reward = |i: usize| json!({"code": format!("R{i}"), "name": "R", "points": 1});
    let res = app.post(
        "/api/v1/loyalty-programs",
        &app.admin_token,
        &json!({"name": "Generous", "currency": "EUR", "rewards": (0..201).map(reward).collect::<Vec<_>>()}),
    );
    assert_eq!(res.problem(422)["errors"][0]["field"], "rewards");
    assert_eq!(app.count("loyalty_programs"), 0);
}
