//! Billing periods in a local time zone: named by their first month (`2026-11`), closed at
//! local midnight starting the deadline day after their last month.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::settings::{BillingSection, PeriodKind};

/// Why a period name or time cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("period {0:?} is not YYYY-MM")]
    BadName(String),
    #[error("period {name} does not start a {kind} term (terms start in month {first} and every {months} month(s) after)")]
    NotATerm {
        name: String,
        kind: &'static str,
        first: u32,
        months: u32,
    },
    #[error("time zone {0:?} is unknown")]
    TimeZone(String),
    #[error("date out of range: {0}")]
    Range(String),
    #[error("date {0:?} is not YYYY-MM-DD")]
    BadDate(String),
}

/// One billing period: the year and month it starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub year: i16,
    pub month: i8,
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The period rules of a `[billing]` section.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub kind: PeriodKind,
    pub first_month: u32,
    pub deadline_day: u32,
    pub tz: TimeZone,
}

fn kind_name(kind: PeriodKind) -> &'static str {
    match kind {
        PeriodKind::Monthly => "monthly",
        PeriodKind::Bimonthly => "bimonthly",
        PeriodKind::Quarterly => "quarterly",
        PeriodKind::Yearly => "yearly",
    }
}

impl Calendar {
    pub fn new(cfg: &BillingSection) -> Result<Calendar, PeriodError> {
        let tz = TimeZone::get(&cfg.timezone)
            .map_err(|_| PeriodError::TimeZone(cfg.timezone.clone()))?;
        Ok(Calendar {
            kind: cfg.period,
            first_month: cfg.first_month,
            deadline_day: cfg.deadline_day,
            tz,
        })
    }

    fn months(&self) -> i32 {
        self.kind.months() as i32
    }

    /// Months since year 0 of a period's first month.
    fn index(p: Period) -> i32 {
        i32::from(p.year) * 12 + i32::from(p.month) - 1
    }

    fn from_index(i: i32) -> Result<Period, PeriodError> {
        let year = i16::try_from(i.div_euclid(12))
            .map_err(|_| PeriodError::Range(format!("month index {i}")))?;
        Ok(Period {
            year,
            month: (i.rem_euclid(12) + 1) as i8,
        })
    }

    /// Parses `YYYY-MM` and checks that it starts a term.
    pub fn parse(&self, name: &str) -> Result<Period, PeriodError> {
        let bad = || PeriodError::BadName(name.to_owned());
        let (y, m) = name.trim().split_once('-').ok_or_else(bad)?;
        let (year, month): (i16, i8) =
            (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if y.len() != 4 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        let p = Period { year, month };
        if (Self::index(p) - (self.first_month as i32 - 1)).rem_euclid(self.months()) != 0 {
            return Err(PeriodError::NotATerm {
                name: name.to_owned(),
                kind: kind_name(self.kind),
                first: self.first_month,
                months: self.kind.months(),
            });
        }
        Ok(p)
    }

    pub fn next(&self, p: Period) -> Result<Period, PeriodError> {
        Self::from_index(Self::index(p) + self.months())
    }

    pub fn previous(&self, p: Period) -> Result<Period, PeriodError> {
        Self::from_index(Self::index(p) - self.months())
    }

    /// The deadline opening period `p`: local midnight of the deadline day of its first
    /// month (a midnight skipped by a DST change is the first instant after it).
    pub fn start(&self, p: Period) -> Result<Timestamp, PeriodError> {
        let date = Date::new(p.year, p.month, self.deadline_day as i8)
            .map_err(|e| PeriodError::Range(e.to_string()))?;
        self.midnight(date)
    }

    /// The deadline closing `p` (the next period's start).
    pub fn end(&self, p: Period) -> Result<Timestamp, PeriodError> {
        self.start(self.next(p)?)
    }

    /// Local midnight starting `date`.
    pub fn midnight(&self, date: Date) -> Result<Timestamp, PeriodError> {
        date.to_zoned(self.tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| PeriodError::Range(e.to_string()))
    }

    /// The period `t` lies in.
    pub fn containing(&self, t: Timestamp) -> Result<Period, PeriodError> {
        let local = t.to_zoned(self.tz.clone());
        let guess = Period {
            year: local.year(),
            month: local.month(),
        };
        let offset = (Self::index(guess) - (self.first_month as i32 - 1)).rem_euclid(self.months());
        let mut p = Self::from_index(Self::index(guess) - offset)?;
        // Before the deadline day the time still belongs to the term before.
        while self.start(p)? > t {
            p = self.previous(p)?;
        }
        while self.end(p)? <= t {
            p = self.next(p)?;
        }
        Ok(p)
    }

    /// The local date of `t`.
    pub fn local_date(&self, t: Timestamp) -> Date {
        t.to_zoned(self.tz.clone()).date()
    }

    /// Local days from the start to the end deadline of `p` (the days a meter should be
    /// heard on).
    pub fn days(&self, p: Period) -> Result<(Date, Date), PeriodError> {
        Ok((
            self.local_date(self.start(p)?),
            self.local_date(self.end(p)?),
        ))
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<Date, PeriodError> {
    s.trim()
        .parse::<Date>()
        .map_err(|_| PeriodError::BadDate(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(kind: PeriodKind, tz: &str) -> Calendar {
        Calendar::new(&BillingSection {
            period: kind,
            timezone: tz.into(),
            ..BillingSection::default()
        })
        .unwrap()
    }

    #[test]
    fn monthly_utc() {
        let c = cal(PeriodKind::Monthly, "UTC");
        let p = c.parse("2026-11").unwrap();
        assert_eq!(c.start(p).unwrap().to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(c.end(p).unwrap().to_string(), "2026-12-01T00:00:00Z");
        let t: Timestamp = "2026-11-30T23:59:59Z".parse().unwrap();
        assert_eq!(c.containing(t).unwrap(), p);
        let t: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(c.containing(t).unwrap().to_string(), "2026-12");
        assert!(c.parse("2026-13").is_err());
        assert!(c.parse("26-11").is_err());
    }

    #[test]
    fn bimonthly_oslo_across_dst() {
        let c = cal(PeriodKind::Bimonthly, "Europe/Oslo");
        assert!(matches!(
            c.parse("2026-02"),
            Err(PeriodError::NotATerm { .. })
        ));
        let p = c.parse("2026-03").unwrap();
        // 1 March is winter time (+01:00), 1 May summer time (+02:00).
        assert_eq!(c.start(p).unwrap().to_string(), "2026-02-28T23:00:00Z");
        assert_eq!(c.end(p).unwrap().to_string(), "2026-04-30T22:00:00Z");
        let t: Timestamp = "2026-02-28T23:30:00Z".parse().unwrap();
        assert_eq!(c.containing(t).unwrap(), p);
        let t: Timestamp = "2026-02-28T22:30:00Z".parse().unwrap();
        assert_eq!(c.containing(t).unwrap().to_string(), "2026-01");
        let (from, to) = c.days(p).unwrap();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2026-03-01".into(), "2026-05-01".into())
        );
    }

    #[test]
    fn deadline_day_and_quarters() {
        let mut cfg = BillingSection {
            period: PeriodKind::Quarterly,
            first_month: 2,
            deadline_day: 15,
            ..BillingSection::default()
        };
        let c = Calendar::new(&cfg).unwrap();
        let p = c.parse("2026-11").unwrap();
        assert_eq!(c.end(p).unwrap().to_string(), "2027-02-15T00:00:00Z");
        let t: Timestamp = "2026-11-14T00:00:00Z".parse().unwrap();
        assert_eq!(c.containing(t).unwrap().to_string(), "2026-08");
        cfg.period = PeriodKind::Yearly;
        let c = Calendar::new(&cfg).unwrap();
        assert!(c.parse("2026-02").is_ok());
        assert!(c.parse("2026-01").is_err());
    }
}
