//! Window functions: a value per row computed over the rows of its window
//! partition (`PARTITION BY`), in the partition's order (`ORDER BY`), over
//! a frame of rows around it.

use std::fmt;

use arrow::datatypes::{DataType, Schema};
use serde::{Deserialize, Serialize};

use super::expr::{aggregate_result_type, AggFunc, AggParam, Expr, SortKey};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WindowFunc {
    RowNumber,
    Rank,
    DenseRank,
    PercentRank,
    CumeDist,
    /// ntile(n): the bucket, 1 to n, of the row.
    Ntile,
    /// lag(x [, offset [, default]])
    Lag,
    /// lead(x [, offset [, default]])
    Lead,
    FirstValue,
    LastValue,
    /// nth_value(x, n): the frame's n-th row's x (1-based).
    NthValue,
    /// An aggregate over the frame (`sum(x) OVER (…)`).
    Aggregate(AggFunc),
}

impl WindowFunc {
    /// The window functions by name (aggregates are looked up apart).
    pub fn by_name(name: &str) -> Option<WindowFunc> {
        Some(match name {
            "row_number" => WindowFunc::RowNumber,
            "rank" => WindowFunc::Rank,
            "dense_rank" => WindowFunc::DenseRank,
            "percent_rank" => WindowFunc::PercentRank,
            "cume_dist" => WindowFunc::CumeDist,
            "ntile" => WindowFunc::Ntile,
            "lag" => WindowFunc::Lag,
            "lead" => WindowFunc::Lead,
            "first_value" => WindowFunc::FirstValue,
            "last_value" => WindowFunc::LastValue,
            "nth_value" => WindowFunc::NthValue,
            _ => return None,
        })
    }

    pub const NAMES: [&'static str; 11] = [
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
    ];

    pub fn name(self) -> &'static str {
        match self {
            WindowFunc::RowNumber => "row_number",
            WindowFunc::Rank => "rank",
            WindowFunc::DenseRank => "dense_rank",
            WindowFunc::PercentRank => "percent_rank",
            WindowFunc::CumeDist => "cume_dist",
            WindowFunc::Ntile => "ntile",
            WindowFunc::Lag => "lag",
            WindowFunc::Lead => "lead",
            WindowFunc::FirstValue => "first_value",
            WindowFunc::LastValue => "last_value",
            WindowFunc::NthValue => "nth_value",
            WindowFunc::Aggregate(a) => a.name(),
        }
    }

    /// The arguments it takes: (least, most).
    pub fn arity(self) -> (usize, usize) {
        match self {
            WindowFunc::RowNumber
            | WindowFunc::Rank
            | WindowFunc::DenseRank
            | WindowFunc::PercentRank
            | WindowFunc::CumeDist => (0, 0),
            WindowFunc::Ntile | WindowFunc::FirstValue | WindowFunc::LastValue => (1, 1),
            WindowFunc::Lag | WindowFunc::Lead => (1, 3),
            WindowFunc::NthValue => (2, 2),
            WindowFunc::Aggregate(AggFunc::CountStar) => (0, 0),
            WindowFunc::Aggregate(_) => (1, 1),
        }
    }

    /// Whether its value depends on the frame (the others see the whole
    /// partition in order).
    pub fn uses_frame(self) -> bool {
        matches!(
            self,
            WindowFunc::FirstValue
                | WindowFunc::LastValue
                | WindowFunc::NthValue
                | WindowFunc::Aggregate(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FrameUnits {
    Rows,
    /// Peers (rows with equal ORDER BY keys) count as one position.
    Range,
    /// Peer groups count as positions: `n PRECEDING` is the peer group n
    /// groups before the current row's.
    Groups,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FrameBound {
    UnboundedPreceding,
    /// ROWS: this many rows before the current row (GROUPS: peer groups).
    Preceding(u64),
    CurrentRow,
    /// ROWS: this many rows after the current row (GROUPS: peer groups).
    Following(u64),
    UnboundedFollowing,
    /// RANGE `offset` PRECEDING or FOLLOWING: as far as the rows whose
    /// order key reaches `reach`, the current row's key moved by the offset
    /// (back for PRECEDING, in the direction of the sort).
    RangeOffset {
        offset: Box<Expr>,
        preceding: bool,
        reach: Box<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFrame {
    pub units: FrameUnits,
    pub start: FrameBound,
    pub end: FrameBound,
}

impl WindowFrame {
    /// The reach expressions of its RANGE offsets.
    pub fn reaches(&self) -> impl Iterator<Item = &Expr> {
        [&self.start, &self.end]
            .into_iter()
            .filter_map(|b| match b {
                FrameBound::RangeOffset { reach, .. } => Some(&**reach),
                _ => None,
            })
    }

    /// Its reach expressions, mapped by `f`.
    pub fn map_reaches(mut self, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<WindowFrame> {
        for b in [&mut self.start, &mut self.end] {
            if let FrameBound::RangeOffset { reach, .. } = b {
                let e = std::mem::replace(&mut **reach, Expr::Column(0));
                **reach = f(e)?;
            }
        }
        Ok(self)
    }

    /// The frame without a frame clause: with ORDER BY, the rows up to the
    /// current row and its peers; without, the whole partition.
    pub fn default_for(ordered: bool) -> WindowFrame {
        WindowFrame {
            units: FrameUnits::Range,
            start: FrameBound::UnboundedPreceding,
            end: if ordered {
                FrameBound::CurrentRow
            } else {
                FrameBound::UnboundedFollowing
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowExpr {
    pub func: WindowFunc,
    pub args: Vec<Expr>,
    /// An aggregate over the distinct values of its frame.
    #[serde(default)]
    pub distinct: bool,
    /// An aggregate's constant argument (string_agg's separator, a
    /// quantile's fraction).
    #[serde(default)]
    pub param: Option<AggParam>,
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<SortKey>,
    pub frame: WindowFrame,
}

impl WindowExpr {
    pub fn data_type(&self, input: &Schema) -> Result<DataType> {
        let arg = |i: usize| -> Result<DataType> {
            match self.args.get(i) {
                Some(a) => a.data_type(input),
                None => Ok(DataType::Int64),
            }
        };
        Ok(match self.func {
            WindowFunc::RowNumber
            | WindowFunc::Rank
            | WindowFunc::DenseRank
            | WindowFunc::Ntile => DataType::Int64,
            WindowFunc::PercentRank | WindowFunc::CumeDist => DataType::Float64,
            WindowFunc::Lag
            | WindowFunc::Lead
            | WindowFunc::FirstValue
            | WindowFunc::LastValue
            | WindowFunc::NthValue => arg(0)?,
            WindowFunc::Aggregate(f) => aggregate_result_type(f, &arg(0)?),
        })
    }

    /// Whether the result can be NULL.
    pub fn nullable(&self) -> bool {
        !matches!(
            self.func,
            WindowFunc::RowNumber
                | WindowFunc::Rank
                | WindowFunc::DenseRank
                | WindowFunc::PercentRank
                | WindowFunc::CumeDist
                | WindowFunc::Aggregate(AggFunc::Count | AggFunc::CountStar)
        )
    }

    /// Every expression it reads: arguments, partition and order keys,
    /// the reach of RANGE offsets.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.args
            .iter()
            .chain(&self.partition_by)
            .chain(self.order_by.iter().map(|k| &k.expr))
            .chain(self.frame.reaches())
    }

    /// Whether two window expressions share their partitioning and order,
    /// and so one sort.
    pub fn same_window(&self, other: &WindowExpr) -> bool {
        self.partition_by == other.partition_by && self.order_by == other.order_by
    }

    pub fn display<'a>(&'a self, schema: &'a Schema) -> impl fmt::Display + 'a {
        WindowDisplay { w: self, schema }
    }
}

struct WindowDisplay<'a> {
    w: &'a WindowExpr,
    schema: &'a Schema,
}

impl fmt::Display for WindowDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |e: &Expr| e.display(self.schema).to_string();
        let w = self.w;
        let args: Vec<String> = w.args.iter().map(d).collect();
        let distinct = if w.distinct { "DISTINCT " } else { "" };
        let param = w.param.iter().map(|p| format!(", {p}"));
        let args = match w.func {
            WindowFunc::Aggregate(AggFunc::CountStar) => "*".to_string(),
            _ => format!("{distinct}{}{}", args.join(", "), param.collect::<String>()),
        };
        let name = match w.func {
            WindowFunc::Aggregate(AggFunc::CountStar) => "count",
            other => other.name(),
        };
        write!(f, "{name}({args}) OVER (")?;
        let mut parts = Vec::new();
        if !w.partition_by.is_empty() {
            let keys: Vec<String> = w.partition_by.iter().map(d).collect();
            parts.push(format!("PARTITION BY {}", keys.join(", ")));
        }
        if !w.order_by.is_empty() {
            let keys: Vec<String> = w
                .order_by
                .iter()
                .map(|k| {
                    format!(
                        "{}{}{}",
                        d(&k.expr),
                        if k.asc { "" } else { " DESC" },
                        if k.nulls_first { " NULLS FIRST" } else { "" }
                    )
                })
                .collect();
            parts.push(format!("ORDER BY {}", keys.join(", ")));
        }
        if w.frame != WindowFrame::default_for(!w.order_by.is_empty()) {
            let bound = |b: &FrameBound| match b {
                FrameBound::UnboundedPreceding => "UNBOUNDED PRECEDING".to_string(),
                FrameBound::Preceding(n) => format!("{n} PRECEDING"),
                FrameBound::CurrentRow => "CURRENT ROW".to_string(),
                FrameBound::Following(n) => format!("{n} FOLLOWING"),
                FrameBound::UnboundedFollowing => "UNBOUNDED FOLLOWING".to_string(),
                FrameBound::RangeOffset {
                    offset, preceding, ..
                } => format!(
                    "{} {}",
                    d(offset),
                    if *preceding { "PRECEDING" } else { "FOLLOWING" }
                ),
            };
            let units = match w.frame.units {
                FrameUnits::Rows => "ROWS",
                FrameUnits::Range => "RANGE",
                FrameUnits::Groups => "GROUPS",
            };
            parts.push(format!(
                "{units} BETWEEN {} AND {}",
                bound(&w.frame.start),
                bound(&w.frame.end)
            ));
        }
        write!(f, "{})", parts.join(" "))
    }
}
