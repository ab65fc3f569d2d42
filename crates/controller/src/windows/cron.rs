//! A sync window's `schedule`: the five cron fields Argo CD reads (robfig/cron's parser with minute, hour,
//! day of month, month and day of week; no seconds field and no `@daily` descriptors), and the instants
//! they name in a time zone.
//!
//! Each field is a list (`a,b`) of `*` or `?` (any), a value, a range `a-b`, or either with a step: `*/n`,
//! `a-b/n`, and `a/n` (from `a` to the field's end). Months and days of the week may be named (`jan`,
//! `mon`, any case); Sunday is 0 and 7 is out of range. When day of month or day of week is `*` (or `?`)
//! a day must match both; when both are restricted, either is enough. A stepped `*/n` counts as
//! restricted, as robfig/cron counts it. A `CRON_TZ=Zone ` (or `TZ=Zone `) prefix names the zone the
//! fields are read in, over the window's `timeZone`.
//!
//! ```text
//! let schedule = Schedule::parse("30 2 * * 1-5")?;              // 02:30 on weekdays
//! schedule.next_start(now, &TimeZone::get("Europe/Berlin")?)   // the first start after `now`
//! ```

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// A parsed schedule: one bit a permitted value in each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day of month or day of week is `*`: a day must then match both fields, else either.
    both_days: bool,
    /// The zone a `CRON_TZ=` or `TZ=` prefix names.
    zone: Option<String>,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY_OF_MONTH: Field = Field { name: "day of month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    // Index + 1 is the month's number.
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
const DAY_OF_WEEK: Field =
    Field { name: "day of week", min: 0, max: 6, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

/// How far ahead a start is looked for: a leap day can be eight years away (2096 to 2104).
const HORIZON_YEARS: i16 = 10;

/// The longest a zone's clock is turned back: a start within that much before `t` on the clock may still
/// come after `t`.
const LONGEST_FOLD: SignedDuration = SignedDuration::from_hours(4);

impl Schedule {
    /// Reads a schedule as Argo CD's sync windows do; the error says which field is wrong and why.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut spec = text.trim();
        let mut zone = None;
        if let Some(rest) = spec.strip_prefix("CRON_TZ=").or_else(|| spec.strip_prefix("TZ=")) {
            let (name, fields) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            zone = Some(name.to_string());
            spec = fields.trim();
        }
        if spec.starts_with('@') {
            return Err(format!(
                "'{spec}': descriptors such as @daily are not accepted in sync windows (as in Argo CD); \
                 write the five fields, e.g. '0 0 * * *'"
            ));
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "'{spec}': expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            ));
        };
        let (minutes, _) = parse_field(minute, &MINUTE)?;
        let (hours, _) = parse_field(hour, &HOUR)?;
        let (days, any_day) = parse_field(day, &DAY_OF_MONTH)?;
        let (months, _) = parse_field(month, &MONTH)?;
        let (weekdays, any_weekday) = parse_field(weekday, &DAY_OF_WEEK)?;
        let schedule =
            Schedule { minutes, hours, days, months, weekdays, both_days: any_day || any_weekday, zone };
        if schedule.never_starts() {
            return Err(format!("'{spec}': no month has such a day, so the window would never start"));
        }
        Ok(schedule)
    }

    /// The zone a `CRON_TZ=` prefix names, if the schedule has one.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// A day of month that no permitted month has (`30 2`), with the day of week unrestricted.
    fn never_starts(&self) -> bool {
        if !self.both_days || self.weekdays != bits(0, 6, 1) {
            return false;
        }
        // The longest each month can be (February in a leap year).
        const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        !(1..=12u32)
            .any(|m| self.months & (1u64 << m) != 0 && self.days & bits(1, LONGEST[m as usize - 1], 1) != 0)
    }

    fn day_matches(&self, date: Date) -> bool {
        let by_day = self.days & (1u64 << date.day()) != 0;
        let by_weekday = self.weekdays & (1u64 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.both_days { by_day && by_weekday } else { by_day || by_weekday }
    }

    /// The first wall-clock minute strictly after `after` that the schedule names; `None` when there is none
    /// within ten years.
    pub fn next_after(&self, after: DateTime) -> Option<DateTime> {
        let limit = after.year().saturating_add(HORIZON_YEARS);
        let (mut year, mut month, mut day) = (after.year(), after.month() as u32, after.day() as u32);
        let (mut hour, mut minute) = (after.hour() as u32, after.minute() as u32 + 1);
        'search: loop {
            if year > limit {
                return None;
            }
            match next_bit(self.months, month, 12) {
                Some(m) if m == month => {}
                Some(m) => (month, day, hour, minute) = (m, 1, 0, 0),
                None => {
                    (year, month, day, hour, minute) = (year + 1, 1, 1, 0, 0);
                    continue;
                }
            }
            let first = Date::new(year, month as i8, 1).ok()?;
            let length = first.days_in_month() as u32;
            loop {
                if day > length {
                    (month, day, hour, minute) = (month + 1, 1, 0, 0);
                    continue 'search;
                }
                if self.day_matches(Date::new(year, month as i8, day as i8).ok()?) {
                    break;
                }
                (day, hour, minute) = (day + 1, 0, 0);
            }
            match next_bit(self.hours, hour, 23) {
                Some(h) if h == hour => {}
                Some(h) => (hour, minute) = (h, 0),
                None => {
                    (day, hour, minute) = (day + 1, 0, 0);
                    continue;
                }
            }
            match next_bit(self.minutes, minute, 59) {
                Some(m) => {
                    let date = Date::new(year, month as i8, day as i8).ok()?;
                    return Some(date.at(hour as i8, m as i8, 0, 0));
                }
                None => (hour, minute) = (hour + 1, 0),
            }
        }
    }

    /// The first start strictly after `t`, reading the fields on `zone`'s clock. A named time the clock
    /// passes twice (when it is turned back) starts the window both times, as robfig/cron runs it; a named
    /// time the clock skips (when it is turned forward) starts it when that time would have been, the
    /// skipped length later on the new clock, so a change freeze is not lost to a DST change.
    pub fn next_start(&self, t: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let local = zone.to_datetime(t);
        let mut cursor = local.checked_sub(LONGEST_FOLD).unwrap_or(local);
        let mut best: Option<Timestamp> = None;
        while let Some(wall) = self.next_after(cursor) {
            // Past one fold beyond the best start's own clock time, no wall time maps to an earlier instant.
            if let Some(b) = best
                && zone.to_datetime(b).checked_add(LONGEST_FOLD).is_ok_and(|limit| wall > limit)
            {
                break;
            }
            for start in instants(wall, zone) {
                if start > t && best.is_none_or(|b| start < b) {
                    best = Some(start);
                }
            }
            cursor = wall;
        }
        best
    }
}

/// The instants at which `zone`'s clock reads `wall`: one, two when the clock is turned back over it, and
/// for a time it skips, the instant it would have been on the clock before the change.
fn instants(wall: DateTime, zone: &TimeZone) -> Vec<Timestamp> {
    let at = |offset: jiff::tz::Offset| offset.to_timestamp(wall).ok();
    match zone.to_ambiguous_timestamp(wall).offset() {
        AmbiguousOffset::Unambiguous { offset } => at(offset).into_iter().collect(),
        AmbiguousOffset::Gap { before, .. } => at(before).into_iter().collect(),
        AmbiguousOffset::Fold { before, after } => at(before).into_iter().chain(at(after)).collect(),
    }
}

/// The lowest set bit at or above `from`, if it is at most `max`.
fn next_bit(set: u64, from: u32, max: u32) -> Option<u32> {
    if from > max {
        return None;
    }
    let above = set & (!0u64 << from);
    (above != 0).then(|| above.trailing_zeros()).filter(|b| *b <= max)
}

/// `min..=max` by `step`, as bits.
fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max).step_by(step as usize).fold(0, |set, v| set | (1u64 << v))
}

/// A field's permitted values, and whether it was written as `*` (or `?`) without a step above one.
fn parse_field(text: &str, field: &Field) -> Result<(u64, bool), String> {
    let mut set = 0;
    let mut any = false;
    for part in text.split(',') {
        let (part_set, part_any) =
            parse_part(part, field).map_err(|why| format!("{} field '{text}': {why}", field.name))?;
        set |= part_set;
        any |= part_any;
    }
    Ok((set, any))
}

fn parse_part(part: &str, field: &Field) -> Result<(u64, bool), String> {
    let (range, step) = match part.split_once('/') {
        Some((_, step)) if step.contains('/') => return Err(format!("'{part}' has more than one '/'")),
        Some((range, step)) => (range, Some(number(step)?)),
        None => (part, None),
    };
    let (start, mut end, any) = if range == "*" || range == "?" {
        (field.min, field.max, true)
    } else {
        match range.split_once('-') {
            Some((_, high)) if high.contains('-') => return Err(format!("'{part}' has more than one '-'")),
            Some((low, high)) => (value(low, field)?, value(high, field)?, false),
            None => {
                let v = value(range, field)?;
                (v, v, false)
            }
        }
    };
    let single = !any && !range.contains('-');
    let step = match step {
        None => 1,
        Some(0) => return Err(format!("'{part}': the step must be a positive number")),
        Some(step) => {
            // `a/n` runs from `a` to the field's end.
            if single {
                end = field.max;
            }
            step
        }
    };
    if start < field.min {
        return Err(format!("{start} is below the minimum {}", field.min));
    }
    if end > field.max {
        return Err(format!("{end} is above the maximum {}", field.max));
    }
    if start > end {
        return Err(format!("'{part}': the range starts ({start}) after it ends ({end})"));
    }
    Ok((bits(start, end, step), any && step == 1))
}

/// A value of the field: a number, or a name (any case) where the field has names.
fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        // Months are named from 1, days of the week from 0.
        return Ok(i as u32 + field.min);
    }
    number(text)
}

fn number(text: &str) -> Result<u32, String> {
    text.parse::<u32>().map_err(|_| format!("'{text}' is not a number"))
}

#[cfg(test)]
mod tests;
