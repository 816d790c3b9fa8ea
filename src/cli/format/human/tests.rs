use super::*;

#[test]
fn human_size_as_go_units() {
    for (bytes, want) in [
        (0, "0B"),
        (1, "1B"),
        (999, "999B"),
        (1000, "1kB"),
        (1024, "1.02kB"),
        (1500, "1.5kB"),
        (10_500, "10.5kB"),
        (123_456, "123kB"),
        // %.3g rounds 999.999 up to four digits, so Go switches to exponent form.
        (999_999, "1e+03kB"),
        (1_000_000, "1MB"),
        (7_800_000, "7.8MB"),
        (1_234_567_890, "1.23GB"),
        (5_000_000_000_000, "5TB"),
        (2_500_000_000_000_000, "2.5PB"),
        (u64::MAX, "18.4EB"),
    ] {
        assert_eq!(human_size(bytes), want, "{bytes}");
    }
}

#[test]
fn human_duration_as_go_units() {
    const MIN: i64 = 60;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;
    const WEEK: i64 = 7 * DAY;
    const MONTH: i64 = 30 * DAY;
    const YEAR: i64 = 365 * DAY;
    for (secs, want) in [
        (-5, "Less than a second"),
        (0, "Less than a second"),
        (1, "1 second"),
        (2, "2 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * MIN + 59, "59 minutes"),
        (HOUR, "About an hour"),
        (HOUR + 29 * MIN, "About an hour"),
        (HOUR + 30 * MIN, "2 hours"),
        (3 * HOUR + 29 * MIN, "3 hours"),
        (3 * HOUR + 31 * MIN, "4 hours"),
        (47 * HOUR + 29 * MIN, "47 hours"),
        (47 * HOUR + 30 * MIN, "2 days"),
        (2 * DAY + 17 * HOUR, "3 days"),
        (13 * DAY + 12 * HOUR, "14 days"),
        (2 * WEEK - 1, "14 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "3 weeks"),
        (MONTH, "4 weeks"),
        (MONTH + 2 * WEEK, "6 weeks"),
        (8 * WEEK + 3 * DAY, "8 weeks"),
        (2 * MONTH - 1, "9 weeks"),
        (2 * MONTH, "2 months"),
        (3 * MONTH + 20 * DAY, "4 months"),
        (24 * MONTH, "24 months"),
        (2 * YEAR - 1, "24 months"),
        (2 * YEAR, "2 years"),
        (3 * YEAR + 8 * MONTH, "4 years"),
    ] {
        assert_eq!(human_duration(secs), want, "{secs}");
    }
    assert_eq!(human_duration_ago(3 * DAY), "3 days ago");
}

#[test]
fn short_ids() {
    assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
    assert_eq!(truncate_id("0123456789abcdef"), "0123456789ab");
    assert_eq!(truncate_id("abc"), "abc");
    assert_eq!(truncate_id(""), "");
}
