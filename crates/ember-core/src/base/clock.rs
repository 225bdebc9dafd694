//! The current UTC date and time from the system clock, without a time-zone database (for
//! reports and chat templates' `strftime_now`).

/// A UTC date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// e.g. 2026
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    /// 0..=23
    pub hour: u32,
    /// 0..=59
    pub minute: u32,
    /// 0..=59
    pub second: u32,
    /// 0 = Monday .. 6 = Sunday
    pub weekday: u32,
}

impl UtcTime {
    /// Now (the Unix epoch if the clock is before it).
    pub fn now() -> UtcTime {
        let secs = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UtcTime::from_unix(secs)
    }

    /// The time `secs` seconds after 1970-01-01 00:00:00 UTC.
    ///
    /// ```
    /// let t = ember_core::clock::UtcTime::from_unix(1_795_651_200);
    /// assert_eq!((t.year, t.month, t.day, t.weekday), (2026, 11, 26, 3));
    /// ```
    pub fn from_unix(secs: u64) -> UtcTime {
        let days = (secs / 86_400) as i64;
        // Days to a civil date (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: (secs / 3600 % 24) as u32,
            minute: (secs / 60 % 60) as u32,
            second: (secs % 60) as u32,
            // 1970-01-01 was a Thursday.
            weekday: (days + 3).rem_euclid(7) as u32,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}
