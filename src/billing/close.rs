//! The close value of a billing register at a deadline, and the function check of a
//! meter's period. Pure: the store gathers the candidates, these functions decide.

use serde::Serialize;

/// Where a close value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The meter's own value stored at its due date, which matches the deadline.
    MeterDueDate,
    /// Linear between the last reading before and the first after the deadline.
    Interpolated,
    LastBefore,
    FirstAfter,
    /// The period's highest value (maximum power).
    PeriodMax,
    /// The newest reading of a period still open.
    Latest,
    Missing,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::MeterDueDate => "meter_due_date",
            Source::Interpolated => "interpolated",
            Source::LastBefore => "last_before",
            Source::FirstAfter => "first_after",
            Source::PeriodMax => "period_max",
            Source::Latest => "latest",
            Source::Missing => "missing",
        }
    }

    pub fn parse(s: &str) -> Source {
        match s {
            "meter_due_date" => Source::MeterDueDate,
            "interpolated" => Source::Interpolated,
            "last_before" => Source::LastBefore,
            "first_after" => Source::FirstAfter,
            "period_max" => Source::PeriodMax,
            "latest" => Source::Latest,
            _ => Source::Missing,
        }
    }
}

/// A register value at a time (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub value: f64,
}

/// The meter's stored due-date value and the reading that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueCandidate {
    pub date: String,
    pub value: f64,
    pub heard_t: i64,
}

/// A decided close value with the readings (times) it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Close {
    pub value: Option<f64>,
    pub source: Source,
    pub from: Vec<i64>,
}

impl Close {
    pub fn missing() -> Close {
        Close {
            value: None,
            source: Source::Missing,
            from: Vec::new(),
        }
    }
}

/// What is known around one deadline.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// Local dates `YYYY-MM-DD` a due-date value may carry for this deadline: the deadline
    /// day itself (value at 00:00) and the day before (value at its end).
    pub due_dates: [String; 2],
    pub due: Vec<DueCandidate>,
    pub before: Option<Sample>,
    pub after: Option<Sample>,
}

/// Picks the close value at `deadline` (unix seconds): meter due date, interpolated,
/// nearest within `max_gap_s`, else missing.
pub fn decide(c: &Candidates, deadline: i64, max_gap_s: i64) -> Close {
    for date in &c.due_dates {
        if let Some(d) = c.due.iter().find(|d| &d.date == date) {
            return Close {
                value: Some(d.value),
                source: Source::MeterDueDate,
                from: vec![d.heard_t],
            };
        }
    }
    let near = |s: &Option<Sample>| s.filter(|s| (s.t - deadline).abs() <= max_gap_s);
    match (near(&c.before), near(&c.after)) {
        (Some(b), Some(a)) if a.t > b.t => {
            let share = (deadline - b.t) as f64 / (a.t - b.t) as f64;
            Close {
                value: Some(round(b.value + (a.value - b.value) * share)),
                source: Source::Interpolated,
                from: vec![b.t, a.t],
            }
        }
        (Some(b), _) => Close {
            value: Some(b.value),
            source: Source::LastBefore,
            from: vec![b.t],
        },
        (None, Some(a)) => Close {
            value: Some(a.value),
            source: Source::FirstAfter,
            from: vec![a.t],
        },
        (None, None) => Close::missing(),
    }
}

/// Rounds to 4 decimals (0.1 l of water, 0.1 Wh), the finest register resolution billed.
pub fn round(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// Prints a value with at most 4 decimals and no trailing zeros (`12.3`, `7`).
pub fn format_value(v: f64) -> String {
    let s = format!("{:.4}", round(v));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Result of the function check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
    Open,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Open => "open",
        }
    }
}

/// What the function check looks at for one meter and period.
#[derive(Debug, Clone, Default)]
pub struct CheckInput {
    pub days_in_period: u32,
    pub days_heard: u32,
    pub min_coverage: f64,
    /// Any counter register has no end close value.
    pub no_close: bool,
    /// Event kinds seen in the period: `counter_decreased`, `error_flag:<name>`,
    /// `alarm:<name>`, `clock_drift`.
    pub events: Vec<String>,
    /// Consumption of each counter register this period (when both closes exist).
    pub consumption: Vec<f64>,
    /// Consumption of the previous periods (newest first), per register in the same order.
    pub history: Vec<Vec<f64>>,
    pub max_factor: f64,
}

/// ok / warn / fail with reasons (sorted, distinct). `fail`: no close value, a counter went
/// down, negative consumption; `warn`: anything else found.
pub fn check(input: &CheckInput) -> (Verdict, Vec<String>) {
    let mut reasons: Vec<String> = Vec::new();
    let needed = (f64::from(input.days_in_period) * input.min_coverage).ceil() as u32;
    if input.days_heard < needed {
        reasons.push("missing".into());
    }
    if input.no_close {
        reasons.push("no_close".into());
    }
    reasons.extend(input.events.iter().cloned());
    let mut negative = false;
    for (i, &c) in input.consumption.iter().enumerate() {
        if c < 0.0 {
            negative = true;
            reasons.push("implausible".into());
            continue;
        }
        let history: Vec<f64> = input
            .history
            .get(i)
            .map(|h| h.iter().take(6).copied().collect())
            .unwrap_or_default();
        if history.len() >= 6 {
            let m = median(&history);
            if m > 0.0 && c > input.max_factor * m {
                reasons.push("implausible".into());
            }
        }
    }
    reasons.sort();
    reasons.dedup();
    let fail = negative
        || reasons
            .iter()
            .any(|r| r == "no_close" || r == "counter_decreased");
    let verdict = if fail {
        Verdict::Fail
    } else if reasons.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Warn
    };
    (verdict, reasons)
}

/// Median of a non-empty slice (0 for an empty one).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let upper = v.get(n / 2).copied().unwrap_or_default();
    if n % 2 == 1 {
        upper
    } else {
        // n is even and not zero: n / 2 - 1 is the lower middle.
        let lower = v.get(n / 2 - 1).copied().unwrap_or(upper);
        (lower + upper) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands() -> Candidates {
        Candidates {
            due_dates: ["2026-12-01".into(), "2026-11-30".into()],
            ..Candidates::default()
        }
    }

    #[test]
    fn preference_order() {
        let d = 1_000_000;
        let gap = 48 * 3600;
        let mut c = cands();
        assert_eq!(decide(&c, d, gap), Close::missing());
        c.after = Some(Sample {
            t: d + 3600,
            value: 12.0,
        });
        assert_eq!(decide(&c, d, gap).source, Source::FirstAfter);
        c.before = Some(Sample {
            t: d - 3 * 3600,
            value: 10.0,
        });
        let close = decide(&c, d, gap);
        assert_eq!(close.source, Source::Interpolated);
        assert_eq!(close.value, Some(11.5));
        assert_eq!(close.from, vec![d - 3 * 3600, d + 3600]);
        c.after = Some(Sample {
            t: d + gap + 1,
            value: 12.0,
        });
        assert_eq!(decide(&c, d, gap).source, Source::LastBefore);
        c.due.push(DueCandidate {
            date: "2026-10-31".into(),
            value: 5.0,
            heard_t: d,
        });
        assert_eq!(decide(&c, d, gap).source, Source::LastBefore);
        c.due.push(DueCandidate {
            date: "2026-11-30".into(),
            value: 9.0,
            heard_t: d + 60,
        });
        let close = decide(&c, d, gap);
        assert_eq!(
            (close.source, close.value, close.from),
            (Source::MeterDueDate, Some(9.0), vec![d + 60])
        );
    }

    #[test]
    fn checks() {
        let base = CheckInput {
            days_in_period: 30,
            days_heard: 30,
            min_coverage: 0.8,
            consumption: vec![3.0],
            history: vec![vec![1.0; 6]],
            max_factor: 3.0,
            ..CheckInput::default()
        };
        assert_eq!(check(&base), (Verdict::Ok, vec![]));
        let few = CheckInput {
            days_heard: 23,
            ..base.clone()
        };
        assert_eq!(check(&few), (Verdict::Warn, vec!["missing".to_owned()]));
        let high = CheckInput {
            consumption: vec![3.5],
            ..base.clone()
        };
        assert_eq!(check(&high).1, vec!["implausible".to_owned()]);
        let down = CheckInput {
            events: vec!["counter_decreased".into(), "alarm:leak".into()],
            consumption: vec![-1.0],
            ..base.clone()
        };
        assert_eq!(
            check(&down),
            (
                Verdict::Fail,
                vec![
                    "alarm:leak".into(),
                    "counter_decreased".into(),
                    "implausible".into()
                ]
            )
        );
        assert_eq!(format_value(12.30000000001), "12.3");
        assert_eq!(format_value(7.0), "7");
        assert_eq!(format_value(-0.00001), "0");
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
