//! Period reports: one row per meter and billing register, as CSV (the admin systems'
//! contract) or JSON.

use serde::Serialize;

use super::close::{format_value, Source, Verdict};

/// The CSV header, exactly.
pub const CSV_COLUMNS: [&str; 12] = [
    "meter_id",
    "name",
    "medium",
    "register",
    "unit",
    "start_value",
    "start_source",
    "end_value",
    "end_source",
    "consumption",
    "check",
    "reasons",
];

/// One report row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub meter_id: String,
    pub name: String,
    pub label: String,
    pub medium: String,
    pub register: String,
    pub unit: String,
    pub start_value: Option<f64>,
    pub start_source: Source,
    pub end_value: Option<f64>,
    pub end_source: Source,
    pub consumption: Option<f64>,
    pub check: Verdict,
    pub reasons: Vec<String>,
    /// Times (RFC 3339) of the readings the end value came from.
    pub end_from: Vec<String>,
}

/// A period's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: u32,
    pub period: String,
    /// RFC 3339 start and end deadlines.
    pub start: String,
    pub end: String,
    pub rows: Vec<Row>,
}

fn quote(field: &str, delimiter: char) -> String {
    if field.contains([delimiter, '"', '\n', '\r', ';']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(format_value).unwrap_or_default()
}

/// The report as CSV with `delimiter`; reasons `;`-joined in one (quoted) field.
pub fn to_csv(rows: &[Row], delimiter: char) -> String {
    let d = delimiter.to_string();
    let mut out = CSV_COLUMNS.join(&d);
    out.push('\n');
    for r in rows {
        let fields = [
            r.meter_id.clone(),
            r.name.clone(),
            r.medium.clone(),
            r.register.clone(),
            r.unit.clone(),
            opt(r.start_value),
            r.start_source.as_str().to_owned(),
            opt(r.end_value),
            r.end_source.as_str().to_owned(),
            opt(r.consumption),
            r.check.as_str().to_owned(),
            r.reasons.join(";"),
        ];
        let line: Vec<String> = fields.iter().map(|f| quote(f, delimiter)).collect();
        out.push_str(&line.join(&d));
        out.push('\n');
    }
    out
}

/// One meter's rows as the JSON document published on `<prefix>/<gw>/period/<p>/<id>`.
pub fn meter_json(report: &Report, meter_id: &str) -> String {
    let rows: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.meter_id == meter_id)
        .collect();
    serde_json::json!({
        "schema": report.schema,
        "period": report.period,
        "start": report.start,
        "end": report.end,
        "meter_id": meter_id,
        "rows": rows,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_layout_and_quoting() {
        let row = Row {
            meter_id: "12345678".into(),
            name: "Flat 3, kitchen".into(),
            label: String::new(),
            medium: "water".into(),
            register: "volume".into(),
            unit: "m3".into(),
            start_value: Some(10.0),
            start_source: Source::LastBefore,
            end_value: Some(12.345),
            end_source: Source::Interpolated,
            consumption: Some(2.345),
            check: Verdict::Warn,
            reasons: vec!["alarm:leak".into(), "missing".into()],
            end_from: vec![],
        };
        assert_eq!(
            to_csv(std::slice::from_ref(&row), ','),
            "meter_id,name,medium,register,unit,start_value,start_source,end_value,end_source,consumption,check,reasons\n\
             12345678,\"Flat 3, kitchen\",water,volume,m3,10,last_before,12.345,interpolated,2.345,warn,\"alarm:leak;missing\"\n"
        );
        let semi = to_csv(&[row], ';');
        assert!(semi.starts_with("meter_id;name;"));
        assert!(semi.contains(";\"alarm:leak;missing\"\n"));
        assert!(semi.contains("12345678;Flat 3, kitchen;water"));
    }
}
