use super::*;
use jiff::civil::{date, datetime};
use proptest::prelude::*;

fn schedule(text: &str) -> Schedule {
    Schedule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn next(text: &str, after: DateTime) -> DateTime {
    schedule(text).next_after(after).unwrap_or_else(|| panic!("{text} never starts after {after}"))
}

/// The starts of `text` after `after`, `count` of them.
fn starts(text: &str, after: DateTime, count: usize) -> Vec<DateTime> {
    let s = schedule(text);
    std::iter::successors(s.next_after(after), |t| s.next_after(*t)).take(count).collect()
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

#[test]
fn every_minute_starts_at_the_next_whole_minute() {
    let at = datetime(2025, 6, 1, 10, 15, 30, 0);
    assert_eq!(next("* * * * *", at), datetime(2025, 6, 1, 10, 16, 0, 0));
    assert_eq!(next("* * * * *", datetime(2025, 6, 1, 10, 15, 0, 0)), datetime(2025, 6, 1, 10, 16, 0, 0));
    assert_eq!(next("? ? ? ? ?", at), datetime(2025, 6, 1, 10, 16, 0, 0), "? is any, as *");
}

#[test]
fn steps_ranges_and_lists_name_their_minutes() {
    let at = datetime(2025, 6, 1, 10, 0, 0, 0);
    let minutes = |text: &str| starts(text, at, 6).iter().map(|t| t.minute()).collect::<Vec<_>>();
    assert_eq!(minutes("*/15 * * * *"), [15, 30, 45, 0, 15, 30]);
    assert_eq!(minutes("10-20/5 * * * *"), [10, 15, 20, 10, 15, 20]);
    assert_eq!(minutes("50/4 * * * *"), [50, 54, 58, 50, 54, 58], "a/n runs to the field's end");
    assert_eq!(minutes("1,2,58 * * * *"), [1, 2, 58, 1, 2, 58]);
    assert_eq!(minutes("0-5/2,30 * * * *"), [2, 4, 30, 0, 2, 4]);
    assert_eq!(minutes("7-7 * * * *"), [7, 7, 7, 7, 7, 7]);
    let hours = starts("0 8-18/4 * * *", at, 4).iter().map(|t| t.hour()).collect::<Vec<_>>();
    assert_eq!(hours, [12, 16, 8, 12]);
}

#[test]
fn months_and_weekdays_may_be_named_in_any_case() {
    assert_eq!(schedule("0 0 1 JAN-mar *"), schedule("0 0 1 1-3 *"));
    assert_eq!(schedule("0 0 * * Mon-FRI"), schedule("0 0 * * 1-5"));
    assert_eq!(schedule("0 0 * * sun,sat"), schedule("0 0 * * 0,6"));
    // 2025-06-06 is a Friday.
    assert_eq!(next("0 9 * * fri", datetime(2025, 6, 2, 0, 0, 0, 0)), datetime(2025, 6, 6, 9, 0, 0, 0));
}

#[test]
fn day_of_month_or_day_of_week_either_matches_when_both_are_restricted() {
    // The 13th, and every Friday: June 2025 has Friday the 6th before the 13th (a Friday too) and the 20th.
    let days =
        starts("0 0 13 * 5", datetime(2025, 6, 1, 0, 0, 0, 0), 4).iter().map(|t| t.day()).collect::<Vec<_>>();
    assert_eq!(days, [6, 13, 20, 27]);
    let days =
        starts("0 0 1 * 1", datetime(2025, 6, 1, 0, 0, 0, 0), 3).iter().map(|t| t.day()).collect::<Vec<_>>();
    assert_eq!(days, [2, 9, 16], "Mondays (June 1 itself is past)");
}

#[test]
fn day_of_month_and_day_of_week_must_both_match_when_either_is_a_star() {
    // Fridays only, whatever the day of month.
    let days =
        starts("0 0 * * 5", datetime(2025, 6, 1, 0, 0, 0, 0), 2).iter().map(|t| t.day()).collect::<Vec<_>>();
    assert_eq!(days, [6, 13]);
    // A day of month with `*` as day of week: the 13th, whatever weekday it is.
    let days = starts("0 0 13 * *", datetime(2025, 6, 1, 0, 0, 0, 0), 2);
    assert_eq!(days, [datetime(2025, 6, 13, 0, 0, 0, 0), datetime(2025, 7, 13, 0, 0, 0, 0)]);
    // `?` counts as `*`, and `*/1` too.
    let days = starts("0 0 13 * ?", datetime(2025, 6, 1, 0, 0, 0, 0), 1);
    assert_eq!(days, [datetime(2025, 6, 13, 0, 0, 0, 0)]);
    let days = starts("0 0 13 * */1", datetime(2025, 6, 1, 0, 0, 0, 0), 1);
    assert_eq!(days, [datetime(2025, 6, 13, 0, 0, 0, 0)]);
}

#[test]
fn a_stepped_star_restricts_its_day_field_as_robfig_cron_reads_it() {
    // `*/2` in day of week is not a star: the 13th or an even weekday (Sun, Tue, Thu, Sat).
    let days = starts("0 0 13 * */2", datetime(2025, 6, 1, 0, 0, 0, 0), 5)
        .iter()
        .map(|t| t.day())
        .collect::<Vec<_>>();
    // June 2025: Sun 1 is past; Tue 3, Thu 5, Sat 7, Sun 8, Tue 10 …
    assert_eq!(days, [3, 5, 7, 8, 10]);
}

#[test]
fn a_search_crosses_months_years_and_leap_days() {
    assert_eq!(next("0 0 1 * *", datetime(2025, 12, 15, 0, 0, 0, 0)), datetime(2026, 1, 1, 0, 0, 0, 0));
    assert_eq!(next("59 23 31 * *", datetime(2025, 4, 1, 0, 0, 0, 0)), datetime(2025, 5, 31, 23, 59, 0, 0));
    assert_eq!(next("0 12 29 2 *", datetime(2025, 1, 1, 0, 0, 0, 0)), datetime(2028, 2, 29, 12, 0, 0, 0));
    // 2100 is not a leap year: the next leap day after 2096 is in 2104.
    assert_eq!(next("0 0 29 feb *", datetime(2096, 3, 1, 0, 0, 0, 0)), datetime(2104, 2, 29, 0, 0, 0, 0));
    assert_eq!(next("0 0 * * *", datetime(2025, 12, 31, 23, 59, 0, 0)), datetime(2026, 1, 1, 0, 0, 0, 0));
}

#[test]
fn refusals_name_the_field_and_what_is_wrong() {
    for (text, why) in [
        ("", "expected 5 fields"),
        ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), found 4"),
        ("0 * * * * *", "found 6"),
        ("@daily", "descriptors such as @daily are not accepted"),
        ("@every 1h", "descriptors"),
        ("60 * * * *", "minute field '60': 60 is above the maximum 59"),
        ("* 24 * * *", "hour field '24': 24 is above the maximum 23"),
        ("* * 0 * *", "day of month field '0': 0 is below the minimum 1"),
        ("* * 32 * *", "day of month field '32'"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 7", "day of week field '7': 7 is above the maximum 6"),
        ("* * * * mon-sun", "the range starts (1) after it ends (0)"),
        ("5-1 * * * *", "the range starts (5) after it ends (1)"),
        ("*/0 * * * *", "the step must be a positive number"),
        ("1/2/3 * * * *", "more than one '/'"),
        ("1-2-3 * * * *", "more than one '-'"),
        ("a * * * *", "'a' is not a number"),
        ("1,,2 * * * *", "'' is not a number"),
        ("-1 * * * *", "'' is not a number"),
        ("* * * january *", "'january' is not a number"),
        ("* * * * */x", "'x' is not a number"),
        ("0 0 30 2 *", "no month has such a day"),
        ("0 0 31 4,6,9,11 *", "no month has such a day"),
    ] {
        let e = Schedule::parse(text).expect_err(text);
        assert!(e.contains(why), "{text:?}: {e}");
    }
}

#[test]
fn a_day_no_month_has_is_fine_when_the_weekday_may_match_instead() {
    // Both restricted: either matches, so the Mondays of February still start it.
    assert_eq!(next("0 0 30 2 1", datetime(2025, 2, 1, 0, 0, 0, 0)), datetime(2025, 2, 3, 0, 0, 0, 0));
    assert!(Schedule::parse("0 0 31 * *").is_ok(), "some months have a 31st");
}

#[test]
fn a_cron_tz_prefix_names_the_zone() {
    assert_eq!(schedule("CRON_TZ=Europe/Berlin 0 22 * * *").zone(), Some("Europe/Berlin"));
    assert_eq!(schedule("TZ=UTC 0 22 * * *").zone(), Some("UTC"));
    assert_eq!(schedule("0 22 * * *").zone(), None);
    assert_eq!(schedule("  0 22 * * *  "), schedule("0 22 * * *"), "surrounding space is ignored");
}

#[test]
fn starts_are_read_on_the_zones_clock() {
    let s = schedule("0 22 * * *");
    // Amsterdam is UTC+2 in summer, UTC+1 in winter.
    assert_eq!(
        s.next_start(ts("2025-07-01T12:00:00Z"), &tz("Europe/Amsterdam")),
        Some(ts("2025-07-01T20:00:00Z"))
    );
    assert_eq!(
        s.next_start(ts("2025-01-01T12:00:00Z"), &tz("Europe/Amsterdam")),
        Some(ts("2025-01-01T21:00:00Z"))
    );
    assert_eq!(s.next_start(ts("2025-01-01T12:00:00Z"), &TimeZone::UTC), Some(ts("2025-01-01T22:00:00Z")));
    assert_eq!(
        s.next_start(ts("2025-01-01T12:00:00Z"), &tz("Asia/Kolkata")),
        Some(ts("2025-01-01T16:30:00Z"))
    );
    // The start itself is not "after" it.
    assert_eq!(s.next_start(ts("2025-01-01T22:00:00Z"), &TimeZone::UTC), Some(ts("2025-01-02T22:00:00Z")));
}

#[test]
fn a_time_the_clock_skips_starts_when_it_would_have_been() {
    // Berlin, 2025-03-30: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 is never on the clock.
    let berlin = tz("Europe/Berlin");
    let at = schedule("30 2 * * *").next_start(ts("2025-03-29T12:00:00Z"), &berlin);
    assert_eq!(at, Some(ts("2025-03-30T01:30:00Z")), "03:30 CEST, as 02:30 CET would have been");
    let after = schedule("30 2 * * *").next_start(ts("2025-03-30T01:30:00Z"), &berlin);
    assert_eq!(after, Some(ts("2025-03-31T00:30:00Z")), "the next day at 02:30 CEST");
    // Every 15 minutes: the skipped hour starts nothing twice and nothing out of order.
    let s = schedule("*/15 * * * *");
    let mut t = ts("2025-03-30T00:40:00Z");
    let mut seen = vec![];
    for _ in 0..5 {
        t = s.next_start(t, &berlin).unwrap();
        seen.push(t);
    }
    let expected = ["00:45", "01:00", "01:15", "01:30", "01:45"].map(|m| ts(&format!("2025-03-30T{m}:00Z")));
    assert_eq!(seen, expected);
}

#[test]
fn a_time_the_clock_passes_twice_starts_both_times() {
    // Berlin, 2025-10-26: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 is on the clock twice.
    let berlin = tz("Europe/Berlin");
    let s = schedule("30 2 * * *");
    let first = s.next_start(ts("2025-10-25T12:00:00Z"), &berlin).unwrap();
    assert_eq!(first, ts("2025-10-26T00:30:00Z"), "02:30 CEST");
    let second = s.next_start(first, &berlin).unwrap();
    assert_eq!(second, ts("2025-10-26T01:30:00Z"), "02:30 CET");
    assert_eq!(s.next_start(second, &berlin), Some(ts("2025-10-27T01:30:00Z")));
    // New York, 2025-11-02: 01:xx passes twice.
    let ny = tz("America/New_York");
    let s = schedule("15 1 * * *");
    let first = s.next_start(ts("2025-11-02T04:00:00Z"), &ny).unwrap();
    assert_eq!(first, ts("2025-11-02T05:15:00Z"), "01:15 EDT");
    assert_eq!(s.next_start(first, &ny), Some(ts("2025-11-02T06:15:00Z")), "01:15 EST");
}

#[test]
fn a_start_in_the_second_pass_is_found_from_within_the_first() {
    // At 02:45 CEST (00:45 UTC) the next 02:30 is the one an hour and three quarters later, on CET.
    let berlin = tz("Europe/Berlin");
    let at = schedule("30 2 * * *").next_start(ts("2025-10-26T00:45:00Z"), &berlin);
    assert_eq!(at, Some(ts("2025-10-26T01:30:00Z")));
}

/// Day by day, then minute by minute: a slow search that is plainly right.
fn slow_next(s: &Schedule, after: DateTime) -> Option<DateTime> {
    let mut day = after.date();
    let end = day.checked_add(jiff::Span::new().years(HORIZON_YEARS)).unwrap();
    while day <= end {
        if s.months & (1u64 << day.month()) != 0 && s.day_matches(day) {
            for minute in 0..24 * 60 {
                let t = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
                if t > after && s.hours & (1u64 << t.hour()) != 0 && s.minutes & (1u64 << t.minute()) != 0 {
                    return Some(t);
                }
            }
        }
        day = day.tomorrow().unwrap();
    }
    None
}

fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
    let value = move || min..=max;
    prop_oneof![
        Just("*".to_string()),
        value().prop_map(|v| v.to_string()),
        (value(), value()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (value(), 1..=(max - min + 1)).prop_map(|(a, s)| format!("{a}/{s}")),
        (1..=(max - min + 1)).prop_map(|s| format!("*/{s}")),
        prop::collection::vec(value(), 1..4).prop_map(|v| v
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")),
    ]
}

fn spec() -> impl Strategy<Value = String> {
    (field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 6))
        .prop_map(|(mi, h, d, mo, w)| format!("{mi} {h} {d} {mo} {w}"))
}

fn civil() -> impl Strategy<Value = DateTime> {
    (2000i16..2090, 1i8..=12, 1i8..=28, 0i8..24, 0i8..60, 0i8..60)
        .prop_map(|(y, mo, d, h, mi, s)| date(y, mo, d).at(h, mi, s, 0))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_next_start_is_the_first_minute_after_that_the_schedule_names(text in spec(), after in civil()) {
        let Ok(s) = Schedule::parse(&text) else { return Ok(()) };
        prop_assert_eq!(s.next_after(after), slow_next(&s, after), "{}", text);
    }

    #[test]
    fn in_utc_an_instant_start_is_the_wall_clock_start(text in spec(), after in civil()) {
        let Ok(s) = Schedule::parse(&text) else { return Ok(()) };
        let t = after.to_zoned(TimeZone::UTC).unwrap().timestamp();
        let expected = s.next_after(after).map(|w| w.to_zoned(TimeZone::UTC).unwrap().timestamp());
        prop_assert_eq!(s.next_start(t, &TimeZone::UTC), expected);
    }

    #[test]
    fn starts_in_a_zone_with_dst_come_after_the_instant_and_read_as_the_schedule(
        text in spec(), after in civil(), zone in prop::sample::select(vec!["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
    ) {
        let Ok(s) = Schedule::parse(&text) else { return Ok(()) };
        let zone = tz(zone);
        let t = after.to_zoned(zone.clone()).unwrap().timestamp();
        if let Some(start) = s.next_start(t, &zone) {
            prop_assert!(start > t);
            let wall = zone.to_datetime(start);
            // On the clock as named, or past a skipped time by the skip (at most an hour here).
            let named = s.next_after(wall.checked_sub(SignedDuration::from_secs(1)).unwrap()) == Some(wall);
            let skipped = (1..=60).any(|m| {
                let before = wall.checked_sub(SignedDuration::from_mins(m)).unwrap();
                s.next_after(before.checked_sub(SignedDuration::from_secs(1)).unwrap()) == Some(before)
                    && !matches!(zone.to_ambiguous_timestamp(before).offset(), AmbiguousOffset::Unambiguous { .. })
            });
            prop_assert!(named || skipped, "{} at {}", text, wall);
        }
    }

    #[test]
    fn any_text_is_read_or_refused_without_panicking(text in "\\PC{0,40}") {
        let _ = Schedule::parse(&text);
    }

    #[test]
    fn field_like_text_is_read_or_refused_without_panicking(text in "[0-9*?/,a-z -]{0,30}") {
        let _ = Schedule::parse(&text);
    }
}
