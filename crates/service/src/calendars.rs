//! Business calendars: weekly opening hours in a time zone, and holidays. SLA targets are
//! counted in their business minutes: `Clock::add` finds the instant a number of business
//! minutes after another, `Clock::between` counts them, both to the minute and across DST
//! changes (hours are wall-clock hours in the calendar's zone).

use crate::common::{audit_change, required};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::db::{self, DbConn, MultiBackend};
use crm_core::error::{ApiError, ApiResult, FieldError};
use crm_core::list::{self, ListParams, ListSpec, Page};
use crm_core::resource::{self, Resource};
use crm_core::schema::business_calendars;
use crm_core::{etag, ids};
use crm_customers::common::{json_text, parse_json, to_json};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use validator::Validate;

/// Opening hours on one weekday, in the calendar's zone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    /// `mon` … `sun`.
    #[schema(pattern = "^(mon|tue|wed|thu|fri|sat|sun)$")]
    pub day: String,
    /// `09:00`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// `17:00`; after `start` (`24:00` for midnight).
    #[schema(pattern = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
    pub end: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = business_calendars)]
struct Row {
    id: String,
    name: String,
    time_zone: String,
    weekly_hours: String,
    holidays: String,
    version: i32,
    created_at: String,
    updated_at: String,
    archived_at: Option<String>,
}

/// A business calendar.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BusinessCalendar {
    pub id: String,
    pub name: String,
    /// IANA time zone: `Europe/Oslo`.
    pub time_zone: String,
    pub weekly_hours: Vec<Hours>,
    /// Dates (in the calendar's zone) without business hours.
    pub holidays: Vec<String>,
    pub version: i32,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<Row> for BusinessCalendar {
    fn from(r: Row) -> Self {
        BusinessCalendar {
            id: r.id,
            name: r.name,
            time_zone: r.time_zone,
            weekly_hours: parse_json(&r.weekly_hours),
            holidays: parse_json(&r.holidays),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            archived_at: r.archived_at,
        }
    }
}

/// A calendar as sent.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarInput {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(min_length = 1, max_length = 64)]
    pub time_zone: Option<String>,
    #[validate(length(min = 1, max = 50))]
    #[schema(min_items = 1, max_items = 50)]
    pub weekly_hours: Option<Vec<Hours>>,
    #[validate(length(max = 400))]
    #[schema(max_items = 400, format = Date)]
    pub holidays: Option<Vec<String>>,
}

/// A calendar ready for arithmetic.
#[derive(Debug, Clone)]
pub struct Clock {
    tz: Tz,
    /// Per weekday (Monday = 0), sorted intervals in minutes from local midnight.
    week: [Vec<(u32, u32)>; 7],
    holidays: Vec<NaiveDate>,
}

fn weekday(day: &str) -> Option<Weekday> {
    Some(match day {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn minute_of_day(raw: &str) -> Option<u32> {
    if raw == "24:00" {
        return Some(24 * 60);
    }
    NaiveTime::parse_from_str(raw, "%H:%M")
        .ok()
        .map(|t| t.hour_minutes())
}

trait HourMinutes {
    fn hour_minutes(&self) -> u32;
}

impl HourMinutes for NaiveTime {
    fn hour_minutes(&self) -> u32 {
        use chrono::Timelike;
        self.hour() * 60 + self.minute()
    }
}

/// Refuse what a calendar may not hold: an unknown zone, an interval ending before it
/// starts, two intervals of one day overlapping, a date that isn't one (422 naming each).
fn check(tz: &str, hours: &[Hours], holidays: &[String]) -> Result<Clock, Vec<FieldError>> {
    let mut errors = vec![];
    let zone = tz.parse::<Tz>().ok();
    if zone.is_none() {
        errors.push(FieldError::new(
            "time_zone",
            "unknown",
            format!("{tz:?} is not an IANA time zone (Europe/Oslo, America/New_York, …)"),
        ));
    }
    let mut week: [Vec<(u32, u32)>; 7] = Default::default();
    for (i, h) in hours.iter().enumerate() {
        let day = weekday(&h.day);
        let (start, end) = (minute_of_day(&h.start), minute_of_day(&h.end));
        match (day, start, end) {
            (Some(d), Some(s), Some(e)) if s < e => {
                if let Some(slot) = week.get_mut(d.num_days_from_monday() as usize) {
                    slot.push((s, e));
                }
            }
            (None, _, _) => errors.push(FieldError::new(
                &format!("weekly_hours[{i}].day"),
                "invalid",
                "must be mon, tue, wed, thu, fri, sat or sun",
            )),
            (_, Some(_), Some(_)) => errors.push(FieldError::new(
                &format!("weekly_hours[{i}].end"),
                "before_start",
                "must be after start",
            )),
            _ => errors.push(FieldError::new(
                &format!("weekly_hours[{i}]"),
                "invalid",
                "start and end must be HH:MM",
            )),
        }
    }
    for (d, slots) in week.iter_mut().enumerate() {
        slots.sort();
        if slots.windows(2).any(|w| matches!(w, [a, b] if b.0 < a.1)) {
            errors.push(FieldError::new(
                "weekly_hours",
                "overlap",
                format!(
                    "two intervals on {} overlap",
                    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                        .get(d)
                        .copied()
                        .unwrap_or("?")
                ),
            ));
        }
    }
    let mut dates = vec![];
    for (i, raw) in holidays.iter().enumerate() {
        match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => dates.push(d),
            Err(_) => errors.push(FieldError::new(
                &format!("holidays[{i}]"),
                "date",
                "must be a date (2026-12-25)",
            )),
        }
    }
    match zone {
        Some(tz) if errors.is_empty() => Ok(Clock {
            tz,
            week,
            holidays: dates,
        }),
        _ => Err(errors),
    }
}

impl Clock {
    pub fn of(cal: &BusinessCalendar) -> ApiResult<Clock> {
        check(&cal.time_zone, &cal.weekly_hours, &cal.holidays)
            .map_err(|_| ApiError::Internal(format!("calendar {} is not valid", cal.id)))
    }

    /// The UTC instant of a local date and minute of day. A wall time skipped by a DST
    /// change counts from the instant the clocks jumped to; a repeated one, its first.
    fn instant(&self, date: NaiveDate, minute: u32) -> DateTime<Utc> {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        let mut local = midnight + Duration::minutes(i64::from(minute));
        for _ in 0..4 {
            if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                return t.with_timezone(&Utc);
            }
            local += Duration::minutes(30);
        }
        Utc.from_utc_datetime(&local)
    }

    /// Business intervals of one local date, as UTC instants.
    fn intervals(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&date) {
            return vec![];
        }
        let day = date.weekday().num_days_from_monday() as usize;
        self.week
            .get(day)
            .map(|slots| {
                slots
                    .iter()
                    .map(|&(s, e)| (self.instant(date, s), self.instant(date, e)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn has_hours(&self) -> bool {
        self.week.iter().any(|d| !d.is_empty())
    }

    /// The instant `minutes` business minutes after `from`.
    pub fn add(&self, from: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
        let mut left = Duration::minutes(minutes.max(0));
        if !self.has_hours() {
            return from + left;
        }
        let mut date = from.with_timezone(&self.tz).date_naive();
        // Ten years of days is far beyond any target; it only bounds a calendar whose
        // every day is a holiday.
        for _ in 0..3660 {
            for (start, end) in self.intervals(date) {
                let begin = start.max(from);
                if begin >= end {
                    continue;
                }
                let open = end - begin;
                if left <= open {
                    return begin + left;
                }
                left -= open;
            }
            date = date.succ_opt().unwrap_or(date);
        }
        from + left
    }

    /// Business minutes from `a` to `b` (0 when `b` is not after `a`).
    pub fn between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
        if b <= a {
            return 0;
        }
        if !self.has_hours() {
            return (b - a).num_minutes();
        }
        let mut total = Duration::zero();
        let mut date = a.with_timezone(&self.tz).date_naive();
        let last = b.with_timezone(&self.tz).date_naive();
        while date <= last {
            for (start, end) in self.intervals(date) {
                let (s, e) = (start.max(a), end.min(b));
                if s < e {
                    total += e - s;
                }
            }
            match date.succ_opt() {
                Some(d) => date = d,
                None => break,
            }
        }
        total.num_minutes()
    }
}

pub const LIST: ListSpec = ListSpec {
    sort_fields: &["name", "created_at"],
    default_sort: "name",
    filters: &[],
    search: None,
    null_sorts_as: &[],
};

crm_core::sortable!(business_calendars::table, business_calendars::BoxedQuery<'static, MultiBackend>, {
    "name" => business_calendars::name,
    "created_at" => business_calendars::created_at,
    "id" => business_calendars::id,
});

pub fn find(c: &mut DbConn, id: &str) -> ApiResult<BusinessCalendar> {
    business_calendars::table
        .find(id)
        .select(Row::as_select())
        .first(c)
        .optional()?
        .map(BusinessCalendar::from)
        .ok_or_else(|| ApiError::not_found("business calendar"))
}

fn create(c: &mut DbConn, me: &Principal, input: &CalendarInput) -> ApiResult<BusinessCalendar> {
    input.validate()?;
    let mut errors = required(&[
        ("name", input.name.is_none()),
        ("time_zone", input.time_zone.is_none()),
        ("weekly_hours", input.weekly_hours.is_none()),
    ]);
    let hours = input.weekly_hours.clone().unwrap_or_default();
    let holidays = input.holidays.clone().unwrap_or_default();
    if let Err(mut e) = check(
        input.time_zone.as_deref().unwrap_or("UTC"),
        &hours,
        &holidays,
    ) {
        errors.append(&mut e);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    db::write_tx(c, |c| {
        let (id, now) = (ids::new_id(), ids::now());
        diesel::insert_into(business_calendars::table)
            .values((
                business_calendars::id.eq(&id),
                business_calendars::name.eq(input.name.as_deref().unwrap_or_default().trim()),
                business_calendars::time_zone.eq(input.time_zone.as_deref().unwrap_or_default()),
                business_calendars::weekly_hours.eq(json_text(&hours)),
                business_calendars::holidays.eq(json_text(&holidays)),
                business_calendars::version.eq(1),
                business_calendars::created_at.eq(&now),
                business_calendars::updated_at.eq(&now),
            ))
            .execute(c)?;
        let cal = find(c, &id)?;
        audit_change(
            c,
            me,
            "business_calendar",
            "created",
            &id,
            to_json(&cal),
            &cal,
        )?;
        Ok(cal)
    })
}

fn update(
    c: &mut DbConn,
    me: &Principal,
    id: &str,
    expected: Option<i32>,
    raw: &Value,
) -> ApiResult<BusinessCalendar> {
    let input: CalendarInput = crm_core::objects::input(raw)?;
    input.validate()?;
    db::write_tx(c, |c| {
        let before = resource::find_for_write::<Calendars>(c, me, id)?;
        etag::check(expected, before.version)?;
        let name = input.name.clone().unwrap_or(before.name.clone());
        let tz = input.time_zone.clone().unwrap_or(before.time_zone.clone());
        let hours = input
            .weekly_hours
            .clone()
            .unwrap_or(before.weekly_hours.clone());
        let holidays = input.holidays.clone().unwrap_or(before.holidays.clone());
        check(&tz, &hours, &holidays).map_err(ApiError::validation)?;
        let changed = diesel::update(business_calendars::table.find(id))
            .filter(business_calendars::version.eq(before.version))
            .set((
                business_calendars::name.eq(name.trim()),
                business_calendars::time_zone.eq(&tz),
                business_calendars::weekly_hours.eq(json_text(&hours)),
                business_calendars::holidays.eq(json_text(&holidays)),
                business_calendars::version.eq(before.version + 1),
                business_calendars::updated_at.eq(ids::now()),
            ))
            .execute(c)?;
        resource::changed_one(changed)?;
        let after = find(c, id)?;
        let changes = crm_core::audit::diff(&to_json(&before), &to_json(&after), &[]);
        audit_change(c, me, "business_calendar", "updated", id, changes, &after)?;
        Ok(after)
    })
}

/// Business calendars on the resource kernel: service managers keep them.
pub struct Calendars;

impl Resource for Calendars {
    type Record = BusinessCalendar;
    type Input = CalendarInput;
    type Patch = CalendarInput;
    crm_core::resource_paths!("business-calendars");
    const ENTITY: &'static str = "business_calendar";
    const TABLE: &'static str = "business_calendars";
    const TAG: &'static str = "sla";
    const READ: Permission = Permission::ServiceRead;
    const WRITE: Permission = Permission::ServiceManage;
    const LIST: &'static ListSpec = &LIST;
    const REQUIRED: &'static [&'static str] = &["name", "time_zone", "weekly_hours"];

    crm_core::record_meta!(BusinessCalendar);

    fn find(c: &mut DbConn, _me: &Principal, id: &str) -> ApiResult<BusinessCalendar> {
        find(c, id)
    }

    fn page(c: &mut DbConn, _me: &Principal, p: &ListParams) -> ApiResult<Page<BusinessCalendar>> {
        let mut q = business_calendars::table.into_boxed::<MultiBackend>();
        if !p.include_archived {
            q = q.filter(business_calendars::archived_at.is_null());
        }
        let rows: Vec<Row> = apply_sort(q, p)?.select(Row::as_select()).load(c)?;
        list::page(rows.into_iter().map(BusinessCalendar::from).collect(), p)
    }

    fn create(
        c: &mut DbConn,
        me: &Principal,
        input: &CalendarInput,
    ) -> ApiResult<BusinessCalendar> {
        create(c, me, input)
    }

    fn update(
        c: &mut DbConn,
        me: &Principal,
        id: &str,
        expected: Option<i32>,
        patch: &Value,
    ) -> ApiResult<BusinessCalendar> {
        update(c, me, id, expected, patch)
    }

    crm_core::archive_stamp!(business_calendars);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(days: &[&str], start: &str, end: &str) -> Vec<Hours> {
        days.iter()
            .map(|d| Hours {
                day: d.to_string(),
                start: start.into(),
                end: end.into(),
            })
            .collect()
    }

    fn at(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap_or_default()
    }

    const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri"];

    #[test]
    fn adds_across_a_weekend_a_holiday_and_dst_in_another_zone() {
        // New York, 09:00-17:00 on weekdays; DST ended Sunday 2026-11-01 (EDT → EST).
        let clock = check(
            "America/New_York",
            &hours(WEEKDAYS, "09:00", "17:00"),
            &["2026-11-02".into()],
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        // Friday 2026-10-30 16:00 EDT (20:00Z) + 120 business minutes: one hour on Friday,
        // Monday is a holiday, so 10:00 EST on Tuesday = 15:00Z.
        assert_eq!(
            clock.add(at("2026-10-30T20:00:00Z"), 120),
            at("2026-11-03T15:00:00Z")
        );
        assert_eq!(
            clock.between(at("2026-10-30T20:00:00Z"), at("2026-11-03T15:00:00Z")),
            120
        );
        // Outside hours, the clock starts at the next opening: Saturday → Tuesday 09:00 EST.
        assert_eq!(
            clock.add(at("2026-10-31T12:00:00Z"), 1),
            at("2026-11-03T14:01:00Z")
        );
    }

    #[test]
    fn refuses_overlaps_reversed_hours_and_unknown_zones() {
        let mut h = hours(&["mon"], "09:00", "12:00");
        h.extend(hours(&["mon"], "11:00", "13:00"));
        h.extend(hours(&["tue"], "10:00", "09:00"));
        let errors = check("Mars/Olympus", &h, &["soon".into()])
            .err()
            .unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "time_zone",
                "weekly_hours[2].end",
                "weekly_hours",
                "holidays[0]"
            ]
        );
    }
}
