//! Bound, typed expressions. Columns are referenced by their index in the
//! input schema of the node that evaluates the expression.

use std::fmt;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    Plus,
    Minus,
    Multiply,
    Divide,
    Modulo,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }

    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Plus
                | BinaryOp::Minus
                | BinaryOp::Multiply
                | BinaryOp::Divide
                | BinaryOp::Modulo
        )
    }

    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Plus => "+",
            BinaryOp::Minus => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Concat => "||",
        }
    }

    /// The operator with its operands swapped (`a < b` ⇔ `b > a`).
    pub fn swap(self) -> BinaryOp {
        match self {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            other => other,
        }
    }
}

/// Scalar functions with a fixed meaning; the binder checks their arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScalarFunc {
    /// extract(part from date | timestamp) → BIGINT (DOUBLE for epoch)
    Extract(DatePart),
    /// date_trunc(part, timestamp) → the timestamp's type
    DateTrunc(DatePart),
    /// strftime(timestamp, format) → VARCHAR; the format a constant
    Strftime,
    /// strptime(text, format) → TIMESTAMP; the format a constant
    Strptime,
    /// age(a, b) → INTERVAL: years, months, days and time from b to a
    Age,
    /// make_timestamp(y, m, d, h, min, s) or make_timestamp(micros)
    MakeTimestamp,
    /// epoch_ms(ms) → TIMESTAMP, epoch_ms(timestamp) → BIGINT
    EpochMs,
    /// to_timestamp(seconds) → TIMESTAMP WITH TIME ZONE
    ToTimestamp,
    /// epoch(timestamp) → DOUBLE seconds since 1970
    Epoch,
    /// substring(string, start [, length]), 1-based
    Substring,
    Upper,
    Lower,
    Length,
    Abs,
    Round,
    Coalesce,
    /// (row count, value): the value, or an error when the count says a
    /// scalar subquery returned more than one row.
    AssertSingleRow,
    /// concat(a, …): the arguments as text, NULLs skipped
    Concat,
    Replace,
    /// split_part(s, separator, n): the n-th piece (from the end for n < 0)
    SplitPart,
    /// regexp_matches(s, pattern [, options]) → BOOLEAN: a match anywhere
    RegexpMatches,
    /// regexp_full_match(s, pattern [, options]) → BOOLEAN: the whole of s
    RegexpFullMatch,
    /// regexp_replace(s, pattern, replacement [, options]): the first match
    /// (every one with option 'g'), `\1` for a group
    RegexpReplace,
    /// regexp_extract(s, pattern [, group [, options]]): the group of the
    /// first match, '' when none
    RegexpExtract,
    /// trim(s [, characters]) from both ends, the start or the end
    Trim(TrimSide),
    StartsWith,
    EndsWith,
    Contains,
    /// strpos(s, part): 1-based position in characters, 0 when absent
    Strpos,
    Left,
    Right,
    Repeat,
    Reverse,
    Lpad,
    Rpad,
    NullIf,
    /// greatest / least of the arguments, NULLs ignored
    Greatest,
    Least,
    Sqrt,
    Power,
    Exp,
    Ln,
    Log10,
    Floor,
    Ceil,
    Sign,
    /// TRY_CAST(x AS type): the function's type is the target
    TryCast,
    /// make_date(year, month, day) → DATE; an error for a day that does
    /// not exist
    MakeDate,
    /// (sum, count) → DOUBLE: the average that `avg` gives for a group with
    /// that sum and count, NULL for no rows. Not callable from SQL: the
    /// optimizer computes an `avg` from a `sum` of the same values with it.
    AverageOf,
    /// grouping(x, …) → BIGINT: a 1 bit for each argument the row's
    /// grouping set does not group by. The binder replaces it by a column
    /// of the grouping sets' plan; it never runs.
    Grouping,
    /// (arg, val) → a STRUCT of the two. Not callable from SQL: the one
    /// argument of arg_min / arg_max.
    Row,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrimSide {
    Both,
    Leading,
    Trailing,
}

impl ScalarFunc {
    /// The function's name in SQL.
    pub fn name(self) -> &'static str {
        use ScalarFunc::*;
        match self {
            Extract(_) => "extract",
            DateTrunc(_) => "date_trunc",
            Strftime => "strftime",
            Strptime => "strptime",
            Age => "age",
            MakeTimestamp => "make_timestamp",
            EpochMs => "epoch_ms",
            ToTimestamp => "to_timestamp",
            Epoch => "epoch",
            Substring => "substring",
            Upper => "upper",
            Lower => "lower",
            Length => "length",
            Abs => "abs",
            Round => "round",
            Coalesce => "coalesce",
            AssertSingleRow => "assert_single_row",
            Concat => "concat",
            Replace => "replace",
            SplitPart => "split_part",
            RegexpMatches => "regexp_matches",
            RegexpFullMatch => "regexp_full_match",
            RegexpReplace => "regexp_replace",
            RegexpExtract => "regexp_extract",
            Trim(TrimSide::Both) => "trim",
            Trim(TrimSide::Leading) => "ltrim",
            Trim(TrimSide::Trailing) => "rtrim",
            StartsWith => "starts_with",
            EndsWith => "ends_with",
            Contains => "contains",
            Strpos => "strpos",
            Left => "left",
            Right => "right",
            Repeat => "repeat",
            Reverse => "reverse",
            Lpad => "lpad",
            Rpad => "rpad",
            NullIf => "nullif",
            Greatest => "greatest",
            Least => "least",
            Sqrt => "sqrt",
            Power => "power",
            Exp => "exp",
            Ln => "ln",
            Log10 => "log10",
            Floor => "floor",
            Ceil => "ceil",
            Sign => "sign",
            TryCast => "try_cast",
            MakeDate => "make_date",
            AverageOf => "average_of",
            Grouping => "grouping",
            Row => "row",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DatePart {
    Millennium,
    Century,
    Decade,
    Year,
    /// the year of the ISO week
    IsoYear,
    Quarter,
    Month,
    /// the ISO week (weeks start on Monday)
    Week,
    Day,
    /// 0 (Sunday) to 6
    DayOfWeek,
    /// 1 (Monday) to 7
    IsoDayOfWeek,
    DayOfYear,
    Hour,
    Minute,
    /// whole seconds of the minute
    Second,
    /// the second's milliseconds, whole seconds included (DuckDB's)
    Millisecond,
    Microsecond,
    /// seconds since 1970, a DOUBLE
    Epoch,
}

impl DatePart {
    /// Whether an INTERVAL has this part (as in DuckDB: not the calendar's
    /// weeks, weekdays and days of the year).
    pub fn of_intervals(self) -> bool {
        use DatePart::*;
        !matches!(self, IsoYear | Week | DayOfWeek | IsoDayOfWeek | DayOfYear)
    }

    /// A part by one of its SQL names (`year`, `years`, `y`, `dow`, …).
    pub fn from_name(name: &str) -> Option<DatePart> {
        use DatePart::*;
        Some(match name.to_lowercase().as_str() {
            "millennium" | "millennia" | "millenniums" | "mil" | "mils" => Millennium,
            "century" | "centuries" | "c" | "cent" => Century,
            "decade" | "decades" | "dec" | "decs" => Decade,
            "year" | "years" | "y" | "yr" | "yrs" => Year,
            "isoyear" => IsoYear,
            "quarter" | "quarters" => Quarter,
            "month" | "months" | "mon" | "mons" => Month,
            "week" | "weeks" | "w" | "weekofyear" => Week,
            "day" | "days" | "d" | "dayofmonth" => Day,
            "dow" | "dayofweek" | "weekday" => DayOfWeek,
            "isodow" => IsoDayOfWeek,
            "doy" | "dayofyear" => DayOfYear,
            "hour" | "hours" | "h" | "hr" | "hrs" => Hour,
            "minute" | "minutes" | "m" | "min" | "mins" => Minute,
            "second" | "seconds" | "s" | "sec" | "secs" => Second,
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => Millisecond,
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => Microsecond,
            "epoch" => Epoch,
            _ => return None,
        })
    }

    /// Whether arrow's kernel gives this part of a DATE as DuckDB does.
    pub fn is_arrow_date_part(self) -> bool {
        use DatePart::*;
        matches!(self, Year | Quarter | Month | Day | DayOfWeek | DayOfYear)
    }

    /// Whether date_trunc can cut a timestamp at this part.
    pub fn truncates(self) -> bool {
        use DatePart::*;
        !matches!(self, DayOfWeek | IsoDayOfWeek | DayOfYear | Epoch)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Column(usize),
    Literal(#[serde(with = "super::arrow_serde::scalar")] ScalarValue),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Not(Box<Expr>),
    Negative(Box<Expr>),
    IsNull(Box<Expr>),
    IsNotNull(Box<Expr>),
    Cast {
        expr: Box<Expr>,
        to: DataType,
    },
    /// Searched CASE; a simple CASE is bound as comparisons.
    Case {
        branches: Vec<(Expr, Expr)>,
        else_expr: Option<Box<Expr>>,
        data_type: DataType,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    Function {
        func: ScalarFunc,
        args: Vec<Expr>,
        data_type: DataType,
    },
    /// An aggregate call met while binding SELECT/HAVING/ORDER BY; the binder
    /// replaces it by a column of the Aggregate node before the plan is built.
    Aggregate(Box<AggregateExpr>),
    /// A window function call met while binding SELECT/QUALIFY/ORDER BY;
    /// the binder replaces it by a column of a Window node.
    Window(Box<super::window::WindowExpr>),
    /// A column of the enclosing query, met while binding a correlated
    /// subquery; decorrelation turns it into a join key or join filter.
    OuterColumn {
        index: usize,
        data_type: DataType,
    },
    /// The value of a subquery that the binder turns into a join; replaced
    /// by the join's output column before the plan is built.
    SubqueryRef {
        id: usize,
        data_type: DataType,
    },
}

impl Expr {
    pub fn lit(v: ScalarValue) -> Expr {
        Expr::Literal(v)
    }

    pub fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        }
    }

    pub fn cast(self, to: DataType) -> Expr {
        Expr::Cast {
            expr: Box::new(self),
            to,
        }
    }

    /// The conjunction of `exprs` (`true` when empty).
    pub fn and_all(exprs: Vec<Expr>) -> Expr {
        exprs
            .into_iter()
            .reduce(|a, b| Expr::binary(BinaryOp::And, a, b))
            .unwrap_or(Expr::Literal(ScalarValue::Boolean(Some(true))))
    }

    /// Splits `a AND b AND c` into its conjuncts.
    pub fn split_conjunction(self) -> Vec<Expr> {
        match self {
            Expr::Binary {
                op: BinaryOp::And,
                left,
                right,
            } => {
                let mut v = left.split_conjunction();
                v.extend(right.split_conjunction());
                v
            }
            other => vec![other],
        }
    }

    /// The type this expression produces over `input`.
    pub fn data_type(&self, input: &Schema) -> Result<DataType> {
        Ok(match self {
            Expr::Column(i) => input.field(*i).data_type().clone(),
            Expr::Literal(v) => v.data_type(),
            Expr::Binary { op, left, right } => {
                if op.is_comparison() || matches!(op, BinaryOp::And | BinaryOp::Or) {
                    DataType::Boolean
                } else if *op == BinaryOp::Concat {
                    DataType::Utf8
                } else {
                    arithmetic_result_type(*op, &left.data_type(input)?, &right.data_type(input)?)
                }
            }
            Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::InList { .. }
            | Expr::Like { .. } => DataType::Boolean,
            Expr::Negative(e) => e.data_type(input)?,
            Expr::Cast { to, .. } => to.clone(),
            Expr::Case { data_type, .. } | Expr::Function { data_type, .. } => data_type.clone(),
            Expr::Aggregate(a) => a.data_type(input)?,
            Expr::Window(w) => w.data_type(input)?,
            Expr::OuterColumn { data_type, .. } | Expr::SubqueryRef { data_type, .. } => {
                data_type.clone()
            }
        })
    }

    pub fn nullable(&self, input: &Schema) -> bool {
        match self {
            Expr::Column(i) => input.field(*i).is_nullable(),
            Expr::Literal(v) => v.is_null(),
            Expr::IsNull(_) | Expr::IsNotNull(_) => false,
            _ => true,
        }
    }

    /// A field for this expression's output column.
    pub fn to_field(&self, name: &str, input: &Schema) -> Result<Field> {
        Ok(Field::new(
            name,
            self.data_type(input)?,
            self.nullable(input),
        ))
    }

    /// Every column index this expression reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        self.visit(&mut |e| {
            if let Expr::Column(i) = e {
                out.push(*i);
            }
        });
    }

    /// Calls `f` on this expression and every sub-expression (pre-order).
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        for child in self.children() {
            child.visit(f);
        }
    }

    /// The expression's direct sub-expressions, in order.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column(_)
            | Expr::Literal(_)
            | Expr::OuterColumn { .. }
            | Expr::SubqueryRef { .. } => vec![],
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::Not(e) | Expr::Negative(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => vec![e],
            Expr::Cast { expr, .. } => vec![expr],
            Expr::Case {
                branches,
                else_expr,
                ..
            } => branches
                .iter()
                .flat_map(|(w, t)| [w, t])
                .chain(else_expr.as_deref())
                .collect(),
            Expr::InList { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
            Expr::Like { expr, pattern, .. } => vec![expr, pattern],
            Expr::Function { args, .. } => args.iter().collect(),
            Expr::Aggregate(a) => a.arg.iter().collect(),
            Expr::Window(w) => w.exprs().collect(),
        }
    }

    /// Rebuilds the expression bottom-up: `f` sees each node after its children
    /// were rewritten, and returns its replacement.
    pub fn transform_up(self, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Expr> {
        let rebuilt = self.map_children(&mut |c| c.transform_up(f))?;
        f(rebuilt)
    }

    /// Rebuilds top-down: `f` returns `Ok(Some(e))` to replace a node (its
    /// children are not visited), `Ok(None)` to descend.
    pub fn transform_down(self, f: &mut dyn FnMut(&Expr) -> Result<Option<Expr>>) -> Result<Expr> {
        if let Some(replaced) = f(&self)? {
            return Ok(replaced);
        }
        self.map_children(&mut |c| c.transform_down(f))
    }

    fn map_children(self, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Expr> {
        let bx = |e: Box<Expr>, f: &mut dyn FnMut(Expr) -> Result<Expr>| -> Result<Box<Expr>> {
            Ok(Box::new(f(*e)?))
        };
        Ok(match self {
            Expr::Column(_)
            | Expr::Literal(_)
            | Expr::OuterColumn { .. }
            | Expr::SubqueryRef { .. } => self,
            Expr::Binary { op, left, right } => Expr::Binary {
                op,
                left: bx(left, f)?,
                right: bx(right, f)?,
            },
            Expr::Not(e) => Expr::Not(bx(e, f)?),
            Expr::Negative(e) => Expr::Negative(bx(e, f)?),
            Expr::IsNull(e) => Expr::IsNull(bx(e, f)?),
            Expr::IsNotNull(e) => Expr::IsNotNull(bx(e, f)?),
            Expr::Cast { expr, to } => Expr::Cast {
                expr: bx(expr, f)?,
                to,
            },
            Expr::Case {
                branches,
                else_expr,
                data_type,
            } => Expr::Case {
                branches: branches
                    .into_iter()
                    .map(|(w, t)| Ok((f(w)?, f(t)?)))
                    .collect::<Result<_>>()?,
                else_expr: else_expr.map(|e| bx(e, f)).transpose()?,
                data_type,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: bx(expr, f)?,
                list: list.into_iter().map(&mut *f).collect::<Result<_>>()?,
                negated,
            },
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => Expr::Like {
                expr: bx(expr, f)?,
                pattern: bx(pattern, f)?,
                negated,
                case_insensitive,
            },
            Expr::Function {
                func,
                args,
                data_type,
            } => Expr::Function {
                func,
                args: args.into_iter().map(&mut *f).collect::<Result<_>>()?,
                data_type,
            },
            Expr::Aggregate(mut a) => {
                a.arg = a.arg.map(&mut *f).transpose()?;
                Expr::Aggregate(a)
            }
            Expr::Window(mut w) => {
                w.args = std::mem::take(&mut w.args)
                    .into_iter()
                    .map(&mut *f)
                    .collect::<Result<_>>()?;
                w.partition_by = std::mem::take(&mut w.partition_by)
                    .into_iter()
                    .map(&mut *f)
                    .collect::<Result<_>>()?;
                for k in &mut w.order_by {
                    let e = std::mem::replace(&mut k.expr, Expr::Column(0));
                    k.expr = f(e)?;
                }
                let frame =
                    std::mem::replace(&mut w.frame, super::window::WindowFrame::default_for(false));
                w.frame = frame.map_reaches(&mut *f)?;
                Expr::Window(w)
            }
        })
    }

    /// Replaces each column index `i` by `map(i)`.
    pub fn remap_columns(self, map: &dyn Fn(usize) -> usize) -> Expr {
        self.transform_up(&mut |e| {
            Ok(match e {
                Expr::Column(i) => Expr::Column(map(i)),
                other => other,
            })
        })
        .unwrap_or_else(|_| unreachable!("remapping columns cannot fail"))
    }

    /// `a = b` where one side reads only columns below `nl` (a join's left
    /// input) and the other only columns from `nl` on (its right input):
    /// the pair (left key, right key over the right input's columns).
    pub fn as_equi_key(&self, nl: usize) -> Option<(Expr, Expr)> {
        let Expr::Binary {
            op: BinaryOp::Eq,
            left,
            right,
        } = self
        else {
            return None;
        };
        // Some(true) for the right input, Some(false) for the left.
        let side = |x: &Expr| {
            let mut cols = Vec::new();
            x.columns(&mut cols);
            if cols.is_empty() {
                None
            } else if cols.iter().all(|&c| c < nl) {
                Some(false)
            } else if cols.iter().all(|&c| c >= nl) {
                Some(true)
            } else {
                None
            }
        };
        let shift = |x: &Expr| x.clone().remap_columns(&|i| i - nl);
        match (side(left), side(right)) {
            (Some(false), Some(true)) => Some(((**left).clone(), shift(right))),
            (Some(true), Some(false)) => Some(((**right).clone(), shift(left))),
            _ => None,
        }
    }

    /// Whether the expression reads no column (so it can be folded).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.visit(&mut |e| {
            if matches!(
                e,
                Expr::Column(_)
                    | Expr::Aggregate(_)
                    | Expr::Window(_)
                    | Expr::OuterColumn { .. }
                    | Expr::SubqueryRef { .. }
            ) {
                constant = false;
            }
        });
        constant
    }
}

/// Result type of `+ - * / %` once the binder has coerced both sides.
pub fn arithmetic_result_type(op: BinaryOp, l: &DataType, r: &DataType) -> DataType {
    use arrow::datatypes::IntervalUnit;
    use DataType::*;
    match (l, r) {
        (Decimal128(p1, s1), Decimal128(p2, s2)) => match op {
            BinaryOp::Plus | BinaryOp::Minus => {
                let s = *s1.max(s2);
                let p = (s as i16 + (*p1 as i16 - *s1 as i16).max(*p2 as i16 - *s2 as i16) + 1)
                    .min(38) as u8;
                Decimal128(p, s)
            }
            BinaryOp::Multiply => Decimal128((*p1 + *p2 + 1).min(38), s1 + s2),
            _ => Decimal128(*p1.max(p2), *s1.max(s2)),
        },
        (Date32, Interval(_)) | (Interval(_), Date32) => Date32,
        (Date32, Date32) => Int64,
        (Timestamp(_, _), Timestamp(_, _)) => Interval(IntervalUnit::MonthDayNano),
        // (number × interval; the binder puts a timestamp or interval left
        // otherwise, so the left type is the result's)
        (n, Interval(_)) if n.is_numeric() => r.clone(),
        _ => l.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggFunc {
    Count,
    CountStar,
    Sum,
    Avg,
    Min,
    Max,
    /// var_samp / variance
    VarSamp,
    VarPop,
    /// stddev_samp / stddev
    StddevSamp,
    StddevPop,
    /// string_agg(x, separator) / listagg: the non-NULL values as text,
    /// joined by the separator (`AggParam::Separator`)
    StringAgg,
    /// arg_min(arg, val) / min_by / argmin: `arg` of the row with the least
    /// `val`, rows with a NULL in either skipped. The aggregate's argument
    /// is `row(arg, val)`.
    ArgMin,
    /// arg_max(arg, val) / max_by / argmax
    ArgMax,
    /// quantile_cont(x, q) and median: interpolated between the two
    /// nearest values (`AggParam::Quantile`)
    QuantileCont,
    /// quantile_disc(x, q): the nearest value itself
    QuantileDisc,
    /// approx_count_distinct(x): a HyperLogLog estimate
    ApproxCountDistinct,
}

/// The constant argument of an aggregate after its column. Kept beside the
/// `AggFunc` rather than in it, so that the function stays `Copy`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggParam {
    /// string_agg's separator; None: a NULL separator, whose result is NULL
    /// (as in DuckDB)
    Separator(Option<String>),
    /// string_agg(x, separator ORDER BY …): the argument is
    /// `row(x, key, …)` (NULL where x is), joined in the keys' order;
    /// per key (descending, NULLs first)
    OrderedSeparator {
        separator: Option<String>,
        keys: Vec<(bool, bool)>,
    },
    Quantile(Quantile),
}

impl fmt::Display for AggParam {
    /// As SQL (for EXPLAIN).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AggParam::Separator(Some(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            AggParam::Separator(None) => write!(f, "NULL"),
            AggParam::OrderedSeparator { separator, keys } => {
                write!(f, "{} ORDER BY", AggParam::Separator(separator.clone()))?;
                for (i, (descending, nulls_first)) in keys.iter().enumerate() {
                    let comma = if i > 0 { "," } else { "" };
                    let dir = if *descending { " DESC" } else { "" };
                    let nulls = if *nulls_first { " NULLS FIRST" } else { "" };
                    write!(f, "{comma} #{}{dir}{nulls}", i + 1)?;
                }
                Ok(())
            }
            AggParam::Quantile(q) => write!(f, "{}", q.value()),
        }
    }
}

/// The fraction `q` of quantile_cont / quantile_disc, in [-1, 1] (a
/// negative one counts from the top, as DuckDB's does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Quantile {
    /// A decimal literal, q = unscaled / 10^scale: quantile_disc picks its
    /// value by exact arithmetic then, as DuckDB does (0.3 of 10 values is
    /// exactly 3, where 10 * 0.3f64 is not).
    Decimal { unscaled: i64, scale: u8 },
    /// Any other number, as the bits of the f64 (for Eq and Hash).
    Double(u64),
}

impl Quantile {
    pub fn value(self) -> f64 {
        match self {
            Quantile::Decimal { unscaled, scale } => unscaled as f64 / 10f64.powi(scale as i32),
            Quantile::Double(bits) => f64::from_bits(bits),
        }
    }
}

impl AggFunc {
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::CountStar => "count_star",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::VarSamp => "var_samp",
            AggFunc::VarPop => "var_pop",
            AggFunc::StddevSamp => "stddev_samp",
            AggFunc::StddevPop => "stddev_pop",
            AggFunc::StringAgg => "string_agg",
            AggFunc::ArgMin => "arg_min",
            AggFunc::ArgMax => "arg_max",
            AggFunc::QuantileCont => "quantile_cont",
            AggFunc::QuantileDisc => "quantile_disc",
            AggFunc::ApproxCountDistinct => "approx_count_distinct",
        }
    }

    /// The variance and standard deviation family.
    pub fn is_variance(self) -> bool {
        matches!(
            self,
            AggFunc::VarSamp | AggFunc::VarPop | AggFunc::StddevSamp | AggFunc::StddevPop
        )
    }

    /// count and approx_count_distinct: 0 over no rows, never NULL.
    pub fn is_count(self) -> bool {
        matches!(
            self,
            AggFunc::Count | AggFunc::CountStar | AggFunc::ApproxCountDistinct
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateExpr {
    pub func: AggFunc,
    /// None only for count(*).
    pub arg: Option<Expr>,
    pub distinct: bool,
    /// The constant argument of string_agg and the quantiles.
    pub param: Option<AggParam>,
}

impl AggregateExpr {
    pub fn data_type(&self, input: &Schema) -> Result<DataType> {
        let arg_type = match &self.arg {
            Some(a) => a.data_type(input)?,
            None => DataType::Int64,
        };
        Ok(aggregate_result_type(self.func, &arg_type))
    }
}

pub fn aggregate_result_type(func: AggFunc, arg: &DataType) -> DataType {
    match func {
        AggFunc::Count | AggFunc::CountStar | AggFunc::ApproxCountDistinct => DataType::Int64,
        AggFunc::StringAgg => DataType::Utf8,
        // the argument is row(arg, val)
        AggFunc::ArgMin | AggFunc::ArgMax => match arg {
            DataType::Struct(fields) if !fields.is_empty() => fields[0].data_type().clone(),
            other => other.clone(),
        },
        // integers interpolate to DOUBLE, decimals and floats keep their type
        AggFunc::QuantileCont if arg.is_integer() || arg == &DataType::Null => DataType::Float64,
        AggFunc::QuantileCont | AggFunc::QuantileDisc => arg.clone(),
        AggFunc::Avg
        | AggFunc::VarSamp
        | AggFunc::VarPop
        | AggFunc::StddevSamp
        | AggFunc::StddevPop => DataType::Float64,
        AggFunc::Sum => match arg {
            DataType::Decimal128(_, s) => DataType::Decimal128(38, *s),
            t if t.is_floating() => DataType::Float64,
            _ => DataType::Int64,
        },
        AggFunc::Min | AggFunc::Max => arg.clone(),
    }
}

/// How a join combines its left (probe) and right (build) inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// Left rows with at least one match (EXISTS, IN).
    Semi,
    /// Left rows without a match (NOT EXISTS).
    Anti,
    /// Right rows with at least one match: a semi join that hashes the left
    /// side when it is the smaller one, and streams the right side.
    RightSemi,
    /// Right rows without a match (the anti join hashing the left side).
    RightAnti,
    /// Every left row plus a boolean `mark`: true if it has a match; for
    /// rows without one, NULL when the left key is NULL (and the right side
    /// is not empty) or the right side has a NULL key, else false. This is
    /// what `x IN (subquery)` means as a value, and `NOT` of it `NOT IN`.
    Mark,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortKey {
    pub expr: Expr,
    pub asc: bool,
    pub nulls_first: bool,
}
