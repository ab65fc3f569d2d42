//! A sync window's `duration`, read as Go's `time.ParseDuration` reads it (Argo CD's reader): a sign, then
//! one or more decimal numbers each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `1h`,
//! `30m`, `1h30m` or `1.5h`; `0` alone needs no unit. There are no days: `24h`, not `1d`.

use jiff::SignedDuration;

const NANOS_PER_UNIT: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The duration `text` writes; the error says what in it is not a Go duration.
pub fn parse(text: &str) -> Result<SignedDuration, String> {
    let invalid = |why: &str| Err(format!("'{text}' is not a duration such as 1h, 30m or 1h30m: {why}"));
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if rest.is_empty() {
        return invalid("it is empty");
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (whole, after) = rest.split_at(whole_len);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => {
                let len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(len)
            }
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return invalid("a number must come before each unit");
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        if unit_len == 0 {
            return invalid("a number has no unit (ns, us, ms, s, m or h)");
        }
        let (unit, next) = after.split_at(unit_len);
        let Some((_, per_unit)) = NANOS_PER_UNIT.iter().find(|(name, _)| *name == unit) else {
            return invalid(&format!("unknown unit '{unit}' (use ns, us, ms, s, m or h)"));
        };
        let (Some(whole), Some(fraction_digits)) =
            (digits(whole), digits(&fraction[..fraction.len().min(19)]))
        else {
            return invalid("a number is too long");
        };
        // Digits past nanoseconds cannot change the sum: 19 keep the arithmetic within u128.
        let scale = 10u128.pow(fraction.len().min(19) as u32);
        let fraction = fraction_digits;
        let sum = whole
            .checked_mul(*per_unit)
            .and_then(|n| n.checked_add(fraction * per_unit / scale))
            .and_then(|n| total.checked_add(n))
            .filter(|n| *n <= i64::MAX as u128 + u128::from(negative));
        let Some(sum) = sum else { return invalid("it is too long") };
        total = sum;
        rest = next;
    }
    let nanos = if negative { (total as i128).wrapping_neg() as i64 } else { total as i64 };
    Ok(SignedDuration::from_nanos(nanos))
}

/// A run of ASCII digits as a number (none is 0); `None` when it is too long for any duration.
fn digits(text: &str) -> Option<u128> {
    if text.is_empty() { Some(0) } else { text.parse().ok() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> SignedDuration {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn hours_minutes_and_their_sums_read_as_in_go() {
        assert_eq!(ok("1h"), SignedDuration::from_hours(1));
        assert_eq!(ok("30m"), SignedDuration::from_mins(30));
        assert_eq!(ok("1h30m"), SignedDuration::from_mins(90));
        assert_eq!(ok("2h45m30s"), SignedDuration::from_secs(2 * 3600 + 45 * 60 + 30));
        assert_eq!(ok("1.5h"), SignedDuration::from_mins(90));
        assert_eq!(ok(".5m"), SignedDuration::from_secs(30));
        assert_eq!(ok("1.m"), SignedDuration::from_mins(1));
        assert_eq!(ok("300ms"), SignedDuration::from_millis(300));
        assert_eq!(ok("1us"), ok("1\u{b5}s"));
        assert_eq!(ok("1us"), ok("1\u{3bc}s"));
        assert_eq!(ok("1m1m"), SignedDuration::from_mins(2), "a unit may repeat");
        assert_eq!(ok("0"), SignedDuration::ZERO);
        assert_eq!(ok("+0"), SignedDuration::ZERO);
        assert_eq!(ok("0s"), SignedDuration::ZERO);
        assert_eq!(ok("-1h"), SignedDuration::from_hours(-1));
        assert_eq!(ok("+2m"), SignedDuration::from_mins(2));
        assert_eq!(ok("1.000000001s"), SignedDuration::new(1, 1));
        assert_eq!(ok("1.0000000019s"), SignedDuration::new(1, 1), "past nanoseconds is cut off");
    }

    #[test]
    fn what_go_refuses_is_refused_with_the_reason() {
        for (text, why) in [
            ("", "empty"),
            ("-", "empty"),
            ("1", "no unit"),
            ("00", "no unit"),
            ("1d", "unknown unit 'd'"),
            ("1h 30m", "unknown unit 'h '"),
            ("h", "number must come before"),
            (".h", "number must come before"),
            ("1H", "unknown unit 'H'"),
            ("99999999999999999999999h", "too long"),
            ("2562048h", "too long"),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.starts_with(&format!("'{text}' is not a duration")), "{e}");
        }
    }

    #[test]
    fn the_longest_duration_is_about_292_years_either_way() {
        assert_eq!(ok("9223372036854775807ns"), SignedDuration::from_nanos(i64::MAX));
        assert_eq!(ok("-9223372036854775808ns"), SignedDuration::from_nanos(i64::MIN));
        assert!(parse("9223372036854775808ns").is_err());
        assert_eq!(ok("2562047h"), SignedDuration::from_hours(2_562_047));
    }
}
