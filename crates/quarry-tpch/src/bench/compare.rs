//! Answers as the engines send them back, and the comparison of two answers
//! of different engines, built on `quarry_tpch::answers`.
//!
//! An answer comes as text with each column's type and *kind* (decimal,
//! float, integer, text). Two values are compared by the kinds of their two
//! columns:
//!
//! - same kind: as [`answers::values_equal`] does (decimals exactly whatever
//!   the scale, floats to a relative 1e-9, integers as integers, the rest as
//!   text);
//! - decimal and integer: exactly, as decimal numbers;
//! - float and decimal or integer (one engine divides decimals into a
//!   double, another into a decimal): as floats, to a relative 1e-9 or one
//!   unit in the last place of the decimal, whichever is larger (a decimal of
//!   scale 10 holds 0.0344358904 for 0.03443589040665…);
//! - anything with text: the text exactly.
//!
//! NULL only equals NULL. Rows are compared in order (the queries' ORDER BY
//! fixes it); column names are compared without case when both are plain
//! identifiers.

use serde::{Deserialize, Serialize};

use crate::answers::{self, ValueKind};

/// A query result as text: column names, types (the engine's own names) and
/// kinds, and the rows (`None` is NULL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WireAnswer {
    pub columns: Vec<String>,
    #[serde(default)]
    pub types: Vec<String>,
    pub kinds: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// The kind name of a [`ValueKind`] on the wire.
pub fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Decimal => "decimal",
        ValueKind::Float => "float",
        ValueKind::Integer => "integer",
        ValueKind::Text => "text",
    }
}

/// The [`ValueKind`] of a kind name; unknown names are text.
pub fn parse_kind(name: &str) -> ValueKind {
    match name {
        "decimal" => ValueKind::Decimal,
        "float" => ValueKind::Float,
        "integer" => ValueKind::Integer,
        _ => ValueKind::Text,
    }
}

impl WireAnswer {
    /// The answer of a quarry result.
    pub fn from_batches(
        schema: &arrow::datatypes::Schema,
        batches: &[arrow::record_batch::RecordBatch],
    ) -> quarry_core::Result<WireAnswer> {
        let (answer, kinds) = answers::Answer::from_batches(schema, batches)?;
        // `Answer` writes NULL as ""; tell it apart from an empty string.
        let mut rows = Vec::with_capacity(answer.rows.len());
        let mut batch_rows = batches
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(move |r| (b, r)));
        for row in answer.rows {
            let (batch, r) = batch_rows.next().ok_or_else(|| {
                quarry_core::QuarryError::exec("result rows and batches disagree")
            })?;
            rows.push(
                row.into_iter()
                    .enumerate()
                    .map(|(c, v)| (!batch.column(c).is_null(r)).then_some(v))
                    .collect(),
            );
        }
        Ok(WireAnswer {
            columns: answer.columns,
            types: schema
                .fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect(),
            kinds: kinds
                .into_iter()
                .map(|k| kind_name(k).to_string())
                .collect(),
            rows,
        })
    }

    fn kind(&self, column: usize) -> ValueKind {
        self.kinds
            .get(column)
            .map(|k| parse_kind(k))
            .unwrap_or(ValueKind::Text)
    }

    /// Checks the shape: as many kinds as columns, rows as wide as the header.
    pub fn validate(&self) -> Result<(), String> {
        if self.kinds.len() != self.columns.len() {
            return Err(format!(
                "{} column kinds for {} columns",
                self.kinds.len(),
                self.columns.len()
            ));
        }
        if let Some((i, row)) = self
            .rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != self.columns.len())
        {
            return Err(format!(
                "row {} has {} values for {} columns",
                i + 1,
                row.len(),
                self.columns.len()
            ));
        }
        Ok(())
    }
}

/// Digits after the decimal point of a plain decimal number.
fn scale_of(text: &str) -> i32 {
    text.trim()
        .split_once('.')
        .map(|(_, f)| f.len() as i32)
        .unwrap_or(0)
}

/// Whether two non-NULL values, of columns of kinds `ka` and `kb`, are equal.
pub fn values_match(ka: ValueKind, a: &str, kb: ValueKind, b: &str) -> bool {
    use ValueKind::*;
    match (ka, kb) {
        _ if ka == kb => answers::values_equal(ka, a, b),
        (Decimal, Integer) | (Integer, Decimal) => answers::values_equal(Decimal, a, b),
        (Float, Decimal | Integer) | (Decimal | Integer, Float) => {
            let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) else {
                return false;
            };
            if answers::floats_close(x, y) {
                return true;
            }
            let exact = if ka == Float { b } else { a };
            let ulp = 10f64.powi(-scale_of(exact));
            x.is_finite() && y.is_finite() && (x - y).abs() <= ulp
        }
        _ => a == b,
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("'{s}'"),
    }
}

fn plain(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Compares the answers of engines `na` and `nb`; the error describes the
/// first difference (with the engine names).
pub fn compare_answers(na: &str, a: &WireAnswer, nb: &str, b: &WireAnswer) -> Result<(), String> {
    if a.columns.len() != b.columns.len() {
        return Err(format!(
            "{na} has {} columns ({}), {nb} {} ({})",
            a.columns.len(),
            a.columns.join(", "),
            b.columns.len(),
            b.columns.join(", ")
        ));
    }
    for (i, (ca, cb)) in a.columns.iter().zip(&b.columns).enumerate() {
        if plain(ca) && plain(cb) && !ca.eq_ignore_ascii_case(cb) {
            return Err(format!(
                "column {}: {na} names it '{ca}', {nb} '{cb}'",
                i + 1
            ));
        }
    }
    for (r, (ra, rb)) in a.rows.iter().zip(&b.rows).enumerate() {
        for (c, (va, vb)) in ra.iter().zip(rb).enumerate() {
            let same = match (va, vb) {
                (None, None) => true,
                (Some(x), Some(y)) => values_match(a.kind(c), x, b.kind(c), y),
                _ => false,
            };
            if !same {
                return Err(format!(
                    "row {}, column {} ({}): {na} {}, {nb} {}",
                    r + 1,
                    c + 1,
                    a.columns[c],
                    show(va),
                    show(vb)
                ));
            }
        }
    }
    if a.rows.len() != b.rows.len() {
        return Err(format!(
            "{na} has {} rows, {nb} {}",
            a.rows.len(),
            b.rows.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(columns: &[&str], kinds: &[&str], rows: &[&[Option<&str>]]) -> WireAnswer {
        WireAnswer {
            columns: columns.iter().map(|s| s.to_string()).collect(),
            types: vec![],
            kinds: kinds.iter().map(|s| s.to_string()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
                .collect(),
        }
    }

    /// Q1-like: decimal sums at different scales, float averages, an integer.
    fn q1(sum: &str, avg: &str, count: &str, scale4: bool) -> WireAnswer {
        let charge = if scale4 {
            "55909065222.8277"
        } else {
            "55909065222.827692"
        };
        answer(
            &[
                "l_returnflag",
                "sum_qty",
                "sum_charge",
                "avg_disc",
                "count_order",
            ],
            &["text", "decimal", "decimal", "float", "integer"],
            &[&[Some("A"), Some(sum), Some(charge), Some(avg), Some(count)]],
        )
    }

    #[test]
    fn decimal_and_float_columns_agree() {
        let quarry = q1("37734107.00", "0.04998529583839761", "1478493", false);
        let duckdb = q1("37734107.0", "0.049985295838397614", "1478493", false);
        compare_answers("quarry", &quarry, "duckdb", &duckdb).unwrap();
        // trailing zeros of a decimal do not count
        let polars = q1("37734107", "0.04998529583839761", "1478493", false);
        compare_answers("quarry", &quarry, "polars", &polars).unwrap();
    }

    #[test]
    fn decimal_and_float_columns_differ() {
        let quarry = q1("37734107.00", "0.04998529583839761", "1478493", false);
        // a decimal one cent off
        let off = q1("37734107.01", "0.04998529583839761", "1478493", false);
        let err = compare_answers("quarry", &quarry, "duckdb", &off).unwrap_err();
        assert_eq!(
            err,
            "row 1, column 2 (sum_qty): quarry '37734107.00', duckdb '37734107.01'"
        );
        // a decimal rounded to fewer places is a different decimal
        let rounded = q1("37734107.00", "0.04998529583839761", "1478493", true);
        let err = compare_answers("quarry", &quarry, "polars", &rounded).unwrap_err();
        assert!(err.contains("column 3 (sum_charge)"), "{err}");
        // a float beyond 1e-9 relative
        let float_off = q1("37734107.00", "0.04998529", "1478493", false);
        let err = compare_answers("quarry", &quarry, "polars", &float_off).unwrap_err();
        assert!(err.contains("column 4 (avg_disc)"), "{err}");
        let count_off = q1("37734107.00", "0.04998529583839761", "1478494", false);
        assert!(compare_answers("a", &quarry, "b", &count_off).is_err());
    }

    #[test]
    fn decimal_against_float_columns() {
        // Q8's mkt_share: a double in quarry and DuckDB, a decimal(38,10) in Polars
        let double = answer(
            &["mkt_share"],
            &["float"],
            &[&[Some("0.03443589040665483")]],
        );
        let decimal = answer(&["mkt_share"], &["decimal"], &[&[Some("0.0344358904")]]);
        compare_answers("quarry", &double, "polars", &decimal).unwrap();
        compare_answers("polars", &decimal, "quarry", &double).unwrap();
        let wrong = answer(&["mkt_share"], &["decimal"], &[&[Some("0.0344358906")]]);
        assert!(compare_answers("quarry", &double, "polars", &wrong).is_err());
        // integers and decimals: exactly
        let int = answer(&["n"], &["integer"], &[&[Some("5")]]);
        let dec = answer(&["n"], &["decimal"], &[&[Some("5.00")]]);
        compare_answers("a", &int, "b", &dec).unwrap();
        let dec = answer(&["n"], &["decimal"], &[&[Some("5.01")]]);
        assert!(compare_answers("a", &int, "b", &dec).is_err());
        // text is compared as text
        assert!(values_match(
            ValueKind::Text,
            "1995-01-01",
            ValueKind::Text,
            "1995-01-01"
        ));
        assert!(!values_match(ValueKind::Text, "1.0", ValueKind::Float, "1"));
    }

    #[test]
    fn nulls_rows_and_names() {
        let a = answer(&["x"], &["decimal"], &[&[None], &[Some("1")]]);
        let b = answer(&["X"], &["decimal"], &[&[None], &[Some("1.0")]]);
        compare_answers("a", &a, "b", &b).unwrap();
        let c = answer(&["x"], &["decimal"], &[&[Some("0")], &[Some("1")]]);
        let err = compare_answers("a", &a, "c", &c).unwrap_err();
        assert!(err.contains("a NULL, c '0'"), "{err}");
        let empty = answer(&["x"], &["text"], &[&[Some("")]]);
        let null = answer(&["x"], &["text"], &[&[None]]);
        assert!(compare_answers("a", &empty, "b", &null).is_err());
        // row order matters
        let swapped = answer(&["x"], &["decimal"], &[&[Some("1")], &[None]]);
        assert!(compare_answers("a", &a, "b", &swapped).is_err());
        let short = answer(&["x"], &["decimal"], &[&[None]]);
        let err = compare_answers("a", &a, "b", &short).unwrap_err();
        assert_eq!(err, "a has 2 rows, b 1");
        let renamed = answer(&["y"], &["decimal"], &[&[None], &[Some("1")]]);
        let err = compare_answers("a", &a, "b", &renamed).unwrap_err();
        assert!(err.contains("names it 'x'"), "{err}");
        // expression names are not compared
        let expr = answer(&["sum(x)"], &["decimal"], &[&[None], &[Some("1")]]);
        compare_answers("a", &a, "b", &expr).unwrap();
        let wide = answer(&["x", "y"], &["decimal", "text"], &[]);
        assert!(compare_answers("a", &a, "b", &wide)
            .unwrap_err()
            .contains("1 columns"));
    }

    #[test]
    fn validates_shape() {
        let mut a = answer(&["x", "y"], &["text", "text"], &[&[None, None]]);
        a.validate().unwrap();
        a.rows.push(vec![None]);
        assert!(a.validate().unwrap_err().contains("row 2"));
        a.kinds.pop();
        assert!(a.validate().is_err());
    }

    #[test]
    fn quarry_results_keep_nulls_apart_from_empty_strings() {
        use arrow::array::{Decimal128Array, Float64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Decimal128(15, 2), true),
            Field::new("f", DataType::Float64, true),
        ]));
        let batch = arrow::record_batch::RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec![Some(""), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(150), None])
                        .with_precision_and_scale(15, 2)
                        .unwrap(),
                ),
                Arc::new(Float64Array::from(vec![None, Some(0.1)])),
            ],
        )
        .unwrap();
        let w = WireAnswer::from_batches(&schema, &[batch]).unwrap();
        assert_eq!(w.kinds, ["text", "decimal", "float"]);
        assert_eq!(w.types[1], "Decimal128(15, 2)");
        assert_eq!(
            w.rows,
            vec![
                vec![Some("".to_string()), Some("1.50".into()), None],
                vec![None, None, Some("0.1".into())],
            ]
        );
    }
}
