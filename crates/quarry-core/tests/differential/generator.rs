//! A seeded random query generator over the TPC-H schema, for the
//! differential test against DuckDB (`crates/quarry-core/tests/differential.rs`).
//!
//! Every query is valid SQL that both engines should answer alike:
//!
//! - joins follow the schema's key relationships (no accidental cross joins),
//!   inner, comma-with-WHERE or LEFT;
//! - filters compare columns with literals of their own type drawn from the
//!   column's domain at SF 0.01 (so that they select something);
//! - GROUP BY over low-cardinality columns and expressions (now and then
//!   as ROLLUP, CUBE or GROUPING SETS), with count, count(DISTINCT), sum,
//!   avg, min, max, stddev_samp and var_pop, and HAVING;
//! - EXISTS / NOT EXISTS / IN / NOT IN subqueries, correlated or not, and
//!   scalar subqueries (aggregates, correlated on a key);
//! - derived tables and CTEs;
//! - UNION [ALL], INTERSECT [ALL] and EXCEPT [ALL] of two selects of the same
//!   columns under different filters;
//! - window functions over PARTITION BY / ORDER BY / frames: those whose
//!   value depends on the order among peers (row_number, lag, ROWS frames
//!   …) order by the window's keys and then every table's primary key, so
//!   that the order is total;
//! - in about one query in five (`TIMESTAMP_PERCENT`), TIMESTAMP and
//!   TIMESTAMPTZ columns made from the tables' dates and keys, which the
//!   query's predicates, group keys, aggregates, select lists, window
//!   orders and RANGE frames prefer: comparisons with timestamps, dates
//!   and text, BETWEEN, IN, extract / date_part, date_trunc, strftime /
//!   strptime, timestamp − timestamp, ± INTERVAL, age, epoch, casts (see
//!   "timestamps" below);
//! - every query ends with ORDER BY over all output columns, and a LIMIT when
//!   it could return many rows, so that the answer is one well-defined list.
//!
//! Known, documented differences are avoided: no division by an expression
//! that can be zero (quarry errors, DuckDB returns NULL), no integer
//! arithmetic that could overflow 32 bits (DuckDB types integer literals
//! INTEGER, quarry BIGINT), no date ± whole days in the output (DuckDB gives
//! a TIMESTAMP, quarry a DATE), output columns always aliased (engines name
//! expressions differently), and the differences of timestamps listed
//! below.

/// A value of a reproducible xorshift generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that nearby seeds differ in every bit
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// 0 ..= n-1
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// lo ..= hi
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    /// true with probability `percent` %
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Int,
    Dec,
    Str,
    Date,
    /// TIMESTAMP: an expression over a table's columns (the tables have
    /// none), see `Gen::timestamp_column`
    Ts,
    /// TIMESTAMP WITH TIME ZONE (UTC, in both engines)
    TsTz,
}

fn is_ts(t: Ty) -> bool {
    matches!(t, Ts | TsTz)
}

/// The values of a column at SF 0.01, for literals that select something.
#[derive(Clone, Copy, Debug)]
pub enum Dom {
    /// integers lo ..= hi
    Ints(i64, i64),
    /// decimals with 2 digits, in cents: lo ..= hi
    Decs(i64, i64),
    /// dates, as days since 1970-01-01
    Dates(i64, i64),
    /// timestamps on these days (since 1970-01-01), at any time of day
    Stamps(i64, i64),
    /// one of these strings
    Set(&'static [&'static str]),
    /// free text: LIKE patterns with one of these words
    Text(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
pub struct ColDef {
    pub name: &'static str,
    pub ty: Ty,
    pub dom: Dom,
    /// few distinct values: fine to GROUP BY
    pub group: bool,
    /// never zero: fine to divide by
    pub nonzero: bool,
}

pub struct TableDef {
    pub name: &'static str,
    pub cols: &'static [ColDef],
}

const fn c(name: &'static str, ty: Ty, dom: Dom, group: bool, nonzero: bool) -> ColDef {
    ColDef {
        name,
        ty,
        dom,
        group,
        nonzero,
    }
}

/// 1992-01-01 and 1998-12-31 as days since the epoch.
const D1992: i64 = 8035;
const D1998: i64 = 10591;

const FLAGS: &[&str] = &["A", "N", "R"];
const LINESTATUS: &[&str] = &["O", "F"];
const SHIPMODES: &[&str] = &["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"];
const INSTRUCT: &[&str] = &[
    "DELIVER IN PERSON",
    "COLLECT COD",
    "NONE",
    "TAKE BACK RETURN",
];
const ORDERSTATUS: &[&str] = &["F", "O", "P"];
const PRIORITIES: &[&str] = &["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"];
const SEGMENTS: &[&str] = &[
    "AUTOMOBILE",
    "BUILDING",
    "FURNITURE",
    "HOUSEHOLD",
    "MACHINERY",
];
const MFGRS: &[&str] = &[
    "Manufacturer#1",
    "Manufacturer#2",
    "Manufacturer#3",
    "Manufacturer#4",
    "Manufacturer#5",
];
const BRANDS: &[&str] = &[
    "Brand#11", "Brand#12", "Brand#13", "Brand#21", "Brand#23", "Brand#32", "Brand#34", "Brand#41",
    "Brand#44", "Brand#45", "Brand#51", "Brand#55",
];
const CONTAINERS: &[&str] = &[
    "SM CASE",
    "SM BOX",
    "MED BAG",
    "MED BOX",
    "LG CASE",
    "LG PKG",
    "JUMBO JAR",
    "WRAP DRUM",
];
const TYPE_WORDS: &[&str] = &[
    "BRASS", "COPPER", "NICKEL", "STEEL", "TIN", "ECONOMY", "STANDARD", "PROMO", "POLISHED",
    "ANODIZED", "SMALL", "LARGE",
];
const NATIONS: &[&str] = &[
    "ALGERIA",
    "ARGENTINA",
    "BRAZIL",
    "CANADA",
    "EGYPT",
    "ETHIOPIA",
    "FRANCE",
    "GERMANY",
    "INDIA",
    "INDONESIA",
    "IRAN",
    "IRAQ",
    "JAPAN",
    "JORDAN",
    "KENYA",
    "MOROCCO",
    "MOZAMBIQUE",
    "PERU",
    "CHINA",
    "ROMANIA",
    "SAUDI ARABIA",
    "VIETNAM",
    "RUSSIA",
    "UNITED KINGDOM",
    "UNITED STATES",
];
const REGIONS: &[&str] = &["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"];
const COMMENT_WORDS: &[&str] = &[
    "special",
    "requests",
    "final",
    "carefully",
    "express",
    "pending",
    "ironic",
    "deposits",
    "blithely",
    "quickly",
    "furiously",
    "accounts",
    "packages",
    "even",
    "regular",
    "bold",
];
const NAME_WORDS: &[&str] = &[
    "green", "blue", "red", "almond", "forest", "lace", "metallic", "navy", "rose", "snow",
];
const CLERKS: &[&str] = &[
    "Clerk#0000001",
    "Clerk#0000005",
    "Clerk#00000099",
    "Clerk#000000951",
];
const PHONE_PREFIXES: &[&str] = &["10-", "13-", "25-", "27-", "33-"];

use Dom::*;
use Ty::*;

pub const TABLES: &[TableDef] = &[
    TableDef {
        name: "lineitem",
        cols: &[
            c("l_orderkey", Int, Ints(1, 60000), false, true),
            c("l_partkey", Int, Ints(1, 2000), false, true),
            c("l_suppkey", Int, Ints(1, 100), false, true),
            c("l_linenumber", Int, Ints(1, 7), true, true),
            c("l_quantity", Dec, Decs(100, 5000), false, true),
            c("l_extendedprice", Dec, Decs(90400, 9494950), false, true),
            c("l_discount", Dec, Decs(0, 10), true, false),
            c("l_tax", Dec, Decs(0, 8), true, false),
            c("l_returnflag", Str, Set(FLAGS), true, false),
            c("l_linestatus", Str, Set(LINESTATUS), true, false),
            c("l_shipdate", Date, Dates(D1992, D1998), false, false),
            c("l_commitdate", Date, Dates(D1992, D1998), false, false),
            c("l_receiptdate", Date, Dates(D1992, D1998), false, false),
            c("l_shipinstruct", Str, Set(INSTRUCT), true, false),
            c("l_shipmode", Str, Set(SHIPMODES), true, false),
            c("l_comment", Str, Text(COMMENT_WORDS), false, false),
        ],
    },
    TableDef {
        name: "orders",
        cols: &[
            c("o_orderkey", Int, Ints(1, 60000), false, true),
            c("o_custkey", Int, Ints(1, 1500), false, true),
            c("o_orderstatus", Str, Set(ORDERSTATUS), true, false),
            c("o_totalprice", Dec, Decs(87489, 46600128), false, true),
            c("o_orderdate", Date, Dates(D1992, D1998 - 150), false, false),
            c("o_orderpriority", Str, Set(PRIORITIES), true, false),
            c("o_clerk", Str, Set(CLERKS), false, false),
            c("o_shippriority", Int, Ints(0, 0), true, false),
            c("o_comment", Str, Text(COMMENT_WORDS), false, false),
        ],
    },
    TableDef {
        name: "customer",
        cols: &[
            c("c_custkey", Int, Ints(1, 1500), false, true),
            c(
                "c_name",
                Str,
                Text(&["Customer#00000", "1", "9"]),
                false,
                false,
            ),
            c("c_nationkey", Int, Ints(0, 24), true, false),
            c("c_phone", Str, Text(PHONE_PREFIXES), false, false),
            c("c_acctbal", Dec, Decs(-99479, 998771), false, false),
            c("c_mktsegment", Str, Set(SEGMENTS), true, false),
            c("c_comment", Str, Text(COMMENT_WORDS), false, false),
        ],
    },
    TableDef {
        name: "part",
        cols: &[
            c("p_partkey", Int, Ints(1, 2000), false, true),
            c("p_name", Str, Text(NAME_WORDS), false, false),
            c("p_mfgr", Str, Set(MFGRS), true, false),
            c("p_brand", Str, Set(BRANDS), true, false),
            c("p_type", Str, Text(TYPE_WORDS), false, false),
            c("p_size", Int, Ints(1, 50), false, true),
            c("p_container", Str, Set(CONTAINERS), false, false),
            c("p_retailprice", Dec, Decs(90100, 190099), false, true),
            c("p_comment", Str, Text(COMMENT_WORDS), false, false),
        ],
    },
    TableDef {
        name: "partsupp",
        cols: &[
            c("ps_partkey", Int, Ints(1, 2000), false, true),
            c("ps_suppkey", Int, Ints(1, 100), false, true),
            c("ps_availqty", Int, Ints(3, 9998), false, true),
            c("ps_supplycost", Dec, Decs(105, 99999), false, true),
            c("ps_comment", Str, Text(COMMENT_WORDS), false, false),
        ],
    },
    TableDef {
        name: "supplier",
        cols: &[
            c("s_suppkey", Int, Ints(1, 100), false, true),
            c(
                "s_name",
                Str,
                Text(&["Supplier#0000000", "1", "5"]),
                false,
                false,
            ),
            c("s_nationkey", Int, Ints(0, 24), true, false),
            c("s_phone", Str, Text(PHONE_PREFIXES), false, false),
            c("s_acctbal", Dec, Decs(-96620, 991524), false, false),
            c("s_comment", Str, Text(COMMENT_WORDS), false, false),
        ],
    },
    TableDef {
        name: "nation",
        cols: &[
            c("n_nationkey", Int, Ints(0, 24), true, false),
            c("n_name", Str, Set(NATIONS), true, false),
            c("n_regionkey", Int, Ints(0, 4), true, false),
            c("n_comment", Str, Text(COMMENT_WORDS), false, false),
        ],
    },
    TableDef {
        name: "region",
        cols: &[
            c("r_regionkey", Int, Ints(0, 4), true, false),
            c("r_name", Str, Set(REGIONS), true, false),
            c("r_comment", Str, Text(COMMENT_WORDS), false, false),
        ],
    },
];

/// Key relationships: (child, foreign key, parent, key). lineitem's key into
/// partsupp is (l_partkey, l_suppkey): see `join_condition`.
pub const EDGES: &[(&str, &str, &str, &str)] = &[
    ("lineitem", "l_orderkey", "orders", "o_orderkey"),
    ("lineitem", "l_partkey", "part", "p_partkey"),
    ("lineitem", "l_suppkey", "supplier", "s_suppkey"),
    ("lineitem", "l_partkey", "partsupp", "ps_partkey"),
    ("orders", "o_custkey", "customer", "c_custkey"),
    ("customer", "c_nationkey", "nation", "n_nationkey"),
    ("supplier", "s_nationkey", "nation", "n_nationkey"),
    ("nation", "n_regionkey", "region", "r_regionkey"),
    ("partsupp", "ps_partkey", "part", "p_partkey"),
    ("partsupp", "ps_suppkey", "supplier", "s_suppkey"),
];

fn table(name: &str) -> &'static TableDef {
    TABLES
        .iter()
        .find(|t| t.name == name)
        .expect("a TPC-H table")
}

/// A column in scope: how to refer to it, and what it holds.
#[derive(Clone, Debug)]
pub struct Col {
    pub sql: String,
    pub def: ColDef,
    /// may be NULL (the outer side of a LEFT JOIN)
    pub nullable: bool,
}

/// A table in the FROM clause: its alias and definition.
#[derive(Clone)]
struct Rel {
    alias: String,
    table: &'static TableDef,
    nullable: bool,
}

/// An output column.
struct Out {
    sql: String,
}

/// Days since 1970-01-01 → YYYY-MM-DD (proleptic Gregorian).
pub fn date_string(days: i64) -> String {
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

pub struct Gen {
    rng: Rng,
    next_alias: usize,
    /// this query is about timestamps: its scopes hold TIMESTAMP columns
    /// (expressions), which the choices below prefer
    ts: bool,
    /// the select list being made is DISTINCT: no intervals that may equal
    /// others spelled differently (see `timestamp_expr`)
    distinct: bool,
    /// `timestamp_expr` made such an interval (for the ORDER BY)
    spelled: bool,
}

/// The share of queries about timestamps, in percent.
const TIMESTAMP_PERCENT: u32 = 22;

/// The query of number `index` in the run of seed `seed`: each query has its
/// own generator, so one can be reproduced alone.
pub fn query(seed: u64, index: u64) -> String {
    let mut g = Gen {
        rng: Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(index)),
        next_alias: 0,
        ts: false,
        distinct: false,
        spelled: false,
    };
    g.ts = g.rng.chance(TIMESTAMP_PERCENT);
    g.top_query()
}

impl Gen {
    fn alias(&mut self, prefix: &str) -> String {
        self.next_alias += 1;
        format!("{prefix}{}", self.next_alias)
    }

    // ------------------------------------------------------------ literals

    fn literal(&mut self, def: &ColDef) -> String {
        match def.dom {
            Ints(lo, hi) => self.rng.range(lo, hi).to_string(),
            Decs(lo, hi) => {
                let v = self.rng.range(lo, hi);
                dec_string(v)
            }
            Dates(lo, hi) => format!("DATE '{}'", date_string(self.rng.range(lo, hi))),
            Stamps(lo, hi) => self.timestamp_literal(lo, hi, def.ty == TsTz),
            Set(values) => format!("'{}'", self.rng.pick(values)),
            Text(words) => format!("'{}'", self.rng.pick(words)),
        }
    }

    /// A literal of a string domain, for `=` and IN (free text: a word).
    fn string_value(&mut self, dom: Dom) -> String {
        match dom {
            Set(values) | Text(values) => format!("'{}'", self.rng.pick(values)),
            _ => unreachable!("a string domain"),
        }
    }

    // ---------------------------------------------------------- predicates

    /// A predicate over one column of `scope`.
    fn column_predicate(&mut self, scope: &[Col]) -> String {
        let c = self.pick_col(scope);
        let d = c.def;
        let x = &c.sql;
        let p = match d.ty {
            Int | Dec => match self.rng.below(9) {
                0 => {
                    let (a, b) = (self.literal(&d), self.literal(&d));
                    let (lo, hi) = order_numbers(&a, &b);
                    match self.rng.below(6) {
                        0 => format!("{x} NOT BETWEEN {lo} AND {hi}"),
                        // reversed bounds: nothing matches
                        1 => format!("{x} BETWEEN {hi} AND {lo}"),
                        _ => format!("{x} BETWEEN {lo} AND {hi}"),
                    }
                }
                6 => {
                    // a literal of the other numeric kind: an integer for a
                    // decimal column, a decimal (1 to 4 digits) for an integer
                    let lit = match (d.ty, d.dom) {
                        (Dec, Decs(lo, hi)) => (self.rng.range(lo, hi) / 100).to_string(),
                        (_, Ints(lo, hi)) => {
                            let v = self.rng.range(lo, hi);
                            let digits = self.rng.range(1, 4) as u32;
                            let frac = self.rng.range(0, 10i64.pow(digits) - 1);
                            format!("{v}.{frac:0w$}", w = digits as usize)
                        }
                        _ => self.literal(&d),
                    };
                    let op = *self.rng.pick(&["=", "<", ">=", "<>"]);
                    format!("{x} {op} {lit}")
                }
                7 => {
                    // arithmetic on the column
                    let k = self.rng.range(2, 7);
                    let lit = self.literal(&d);
                    match self.rng.below(4) {
                        0 => format!("{x} * {k} > {lit}"),
                        1 => format!("-{x} < -({lit})"),
                        2 if d.ty == Int => format!("{x} % {k} = {}", self.rng.range(0, k - 1)),
                        _ => format!("{x} + {k} <= {lit}"),
                    }
                }
                1 => {
                    let n = 1 + self.rng.below(4);
                    let mut items: Vec<String> = (0..n).map(|_| self.literal(&d)).collect();
                    if self.rng.chance(10) {
                        items.push("NULL".into());
                    }
                    let not = if self.rng.chance(25) { "NOT " } else { "" };
                    format!("{x} {not}IN ({})", items.join(", "))
                }
                _ => {
                    let op = *self.rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
                    format!("{x} {op} {}", self.literal(&d))
                }
            },
            Date => match self.rng.below(5) {
                0 => {
                    let (a, b) = (self.rng.range(D1992, D1998), self.rng.range(D1992, D1998));
                    format!(
                        "{x} BETWEEN DATE '{}' AND DATE '{}'",
                        date_string(a.min(b)),
                        date_string(a.max(b))
                    )
                }
                1 => {
                    let unit = *self.rng.pick(&["DAY", "MONTH", "YEAR"]);
                    let n = match unit {
                        "DAY" => self.rng.range(1, 120),
                        "MONTH" => self.rng.range(1, 24),
                        _ => self.rng.range(1, 3),
                    };
                    let op = *self.rng.pick(&["<", ">=", "+", "-"]);
                    let base = self.literal(&d);
                    match op {
                        "+" => format!("{x} < {base} + INTERVAL '{n}' {unit}"),
                        "-" => format!("{x} >= {base} - INTERVAL '{n}' {unit}"),
                        op => format!("{x} {op} {base}"),
                    }
                }
                2 => format!(
                    "extract(year FROM {x}) {} {}",
                    self.rng.pick(&["=", "<", ">=", "<>"]),
                    self.rng.range(1992, 1998)
                ),
                _ => {
                    let op = *self.rng.pick(&["=", "<", "<=", ">", ">="]);
                    format!("{x} {op} {}", self.literal(&d))
                }
            },
            Ts | TsTz => self.timestamp_predicate(&c, scope),
            Str => match (d.dom, self.rng.below(5)) {
                (Text(words), _) | (Set(words), 0) => {
                    let w = self.rng.pick(words);
                    let pattern = match self.rng.below(3) {
                        0 => format!("%{w}%"),
                        1 => format!("{w}%"),
                        _ => format!("%{w}"),
                    };
                    let not = if self.rng.chance(20) { "NOT " } else { "" };
                    match self.rng.below(8) {
                        0 => format!("{x} {not}ILIKE '{}'", pattern.to_lowercase()),
                        1 => {
                            // '_' for one character
                            let p: String = pattern
                                .chars()
                                .enumerate()
                                .map(|(i, ch)| if i % 3 == 1 && ch != '%' { '_' } else { ch })
                                .collect();
                            format!("{x} {not}LIKE '{p}'")
                        }
                        2 => format!("upper({x}) {not}LIKE '{}'", pattern.to_uppercase()),
                        _ => format!("{x} {not}LIKE '{pattern}'"),
                    }
                }
                (_, 1) => {
                    let n = 1 + self.rng.below(3);
                    let items: Vec<String> = (0..n).map(|_| self.string_value(d.dom)).collect();
                    let not = if self.rng.chance(25) { "NOT " } else { "" };
                    format!("{x} {not}IN ({})", items.join(", "))
                }
                (_, 2) => format!("{x} <> {}", self.string_value(d.dom)),
                (_, 3) => format!(
                    "{x} {} {}",
                    self.rng.pick(&["<", ">="]),
                    self.string_value(d.dom)
                ),
                _ => format!("{x} = {}", self.string_value(d.dom)),
            },
        };
        if c.nullable && self.rng.chance(30) {
            let is = if self.rng.chance(50) {
                "IS NULL"
            } else {
                "IS NOT NULL"
            };
            return format!("{x} {is}");
        }
        p
    }

    /// A predicate: column predicates combined with AND / OR / NOT, and at
    /// depth 0 sometimes a subquery predicate.
    fn predicate(&mut self, scope: &[Col], rels: &[Rel], depth: u32) -> String {
        let r = self.rng.below(100);
        if depth < 2 && r < 12 && !rels.is_empty() {
            if let Some(p) = self.subquery_predicate(rels, depth) {
                return p;
            }
        }
        match r {
            12..=19 if depth < 3 => format!(
                "({} OR {})",
                self.predicate(scope, rels, depth + 1),
                self.predicate(scope, rels, depth + 1)
            ),
            20..=23 if depth < 3 => format!("NOT ({})", self.predicate(scope, rels, depth + 1)),
            24..=27 => {
                // column vs column of the same type
                let a = self.pick_col(scope);
                let numeric = |t: Ty| matches!(t, Int | Dec);
                // timestamps with timestamps (with or without time zone) and
                // with dates (their midnight)
                let temporal = |t: Ty| matches!(t, Date | Ts | TsTz);
                let same: Vec<&Col> = scope
                    .iter()
                    .filter(|c| {
                        c.sql != a.sql
                            && c.def.ty != Str
                            && (c.def.ty == a.def.ty
                                || (numeric(c.def.ty) && numeric(a.def.ty))
                                || (temporal(c.def.ty)
                                    && temporal(a.def.ty)
                                    && (is_ts(c.def.ty) || is_ts(a.def.ty))))
                    })
                    .collect();
                if same.is_empty() {
                    return self.column_predicate(scope);
                }
                let b = (*self.rng.pick(&same)).clone();
                format!("{} {} {}", a.sql, self.rng.pick(&["<", ">=", "<>"]), b.sql)
            }
            _ => self.column_predicate(scope),
        }
    }

    /// EXISTS / NOT EXISTS / IN / NOT IN / a comparison with a scalar
    /// subquery, over a table related to one of `rels`.
    fn subquery_predicate(&mut self, rels: &[Rel], depth: u32) -> Option<String> {
        let outer = self.rng.pick(rels).clone();
        let edges: Vec<(&str, &str, &str)> = EDGES
            .iter()
            .filter_map(|&(a, ac, b, bc)| {
                if a == outer.table.name {
                    Some((ac, b, bc))
                } else if b == outer.table.name {
                    Some((bc, a, ac))
                } else {
                    None
                }
            })
            .collect();
        let kind = self.rng.below(5);
        if kind == 4 {
            return Some(self.scalar_subquery_predicate(&outer, depth));
        }
        if edges.is_empty() {
            return None;
        }
        let &(outer_col, inner_table, inner_col) = self.rng.pick(&edges);
        let t = table(inner_table);
        let alias = self.alias("s");
        let inner_scope: Vec<Col> = t
            .cols
            .iter()
            .map(|c| Col {
                sql: format!("{alias}.{}", c.name),
                def: *c,
                nullable: false,
            })
            .collect();
        let inner_rel = Rel {
            alias: alias.clone(),
            table: t,
            nullable: false,
        };
        let mut conds = Vec::new();
        let n = self.rng.below(3);
        for _ in 0..n {
            conds.push(self.predicate(&inner_scope, std::slice::from_ref(&inner_rel), depth + 1));
        }
        let outer_ref = format!("{}.{outer_col}", outer.alias);
        let inner_ref = format!("{alias}.{inner_col}");
        Some(match kind {
            0 | 1 => {
                conds.insert(0, format!("{inner_ref} = {outer_ref}"));
                // a second, non-equi correlation between columns of one type;
                // only in a top-level conjunct (quarry plans EXISTS under
                // OR / NOT as a mark join, which takes '=' correlations only:
                // a documented limitation, a clear error)
                if depth == 0 && self.rng.chance(30) {
                    let outer_cols = columns_of(std::slice::from_ref(&outer));
                    let pairs: Vec<(Col, Col)> = inner_scope
                        .iter()
                        .flat_map(|i| {
                            outer_cols
                                .iter()
                                .filter(move |o| o.def.ty == i.def.ty && i.def.ty != Str)
                                .map(move |o| (i.clone(), o.clone()))
                        })
                        .collect();
                    if !pairs.is_empty() {
                        let (i, o) = self.rng.pick(&pairs).clone();
                        let op = *self.rng.pick(&["<", ">", "<=", ">="]);
                        conds.push(format!("{} {op} {}", i.sql, o.sql));
                    }
                }
                let not = if kind == 1 { "NOT " } else { "" };
                // sometimes the subquery joins a second table and reads the
                // outer query in that JOIN's ON (inner: the correlation
                // moves there; LEFT: a condition there keeps every row)
                let mut from = format!("{} AS {alias}", t.name);
                let joins: Vec<(&str, &str, &str)> = EDGES
                    .iter()
                    .filter(|e| e.0 == t.name)
                    .map(|&(_, ac, b, bc)| (ac, b, bc))
                    .collect();
                if !joins.is_empty() && self.rng.chance(25) {
                    let &(ac, bt, bc) = self.rng.pick(&joins);
                    let a2 = self.alias("s");
                    let on = join_condition(&alias, t.name, ac, &a2, bt, bc);
                    if self.rng.chance(50) {
                        let correlation = conds.remove(0);
                        from = format!("{from} JOIN {bt} AS {a2} ON {on} AND {correlation}");
                    } else {
                        let key = primary_key(bt)[0];
                        let op = *self.rng.pick(&["<", ">", "<>"]);
                        from = format!(
                            "{from} LEFT JOIN {bt} AS {a2} ON {on} AND {a2}.{key} {op} {outer_ref}"
                        );
                    }
                }
                let filter = if conds.is_empty() {
                    "true".to_string()
                } else {
                    conds.join(" AND ")
                };
                format!("{not}EXISTS (SELECT * FROM {from} WHERE {filter})")
            }
            _ => {
                let not = if kind == 3 { "NOT " } else { "" };
                let filter = if conds.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conds.join(" AND "))
                };
                // sometimes the subquery yields NULLs too (NOT IN is then
                // never true)
                let item = if self.rng.chance(20) {
                    let p = self.column_predicate(&inner_scope);
                    format!("CASE WHEN {p} THEN {inner_ref} END")
                } else {
                    inner_ref.clone()
                };
                format!(
                    "{outer_ref} {not}IN (SELECT {item} FROM {} AS {alias}{filter})",
                    t.name
                )
            }
        })
    }

    /// `x op (SELECT agg(y) FROM t WHERE …)`, correlated on a key of the same
    /// table or not.
    fn scalar_subquery_predicate(&mut self, outer: &Rel, depth: u32) -> String {
        if self.ts && self.rng.chance(50) {
            if let Some(p) = self.timestamp_subquery_predicate(outer) {
                return p;
            }
        }
        let t = outer.table;
        let numeric: Vec<&ColDef> = t.cols.iter().filter(|c| c.ty == Dec).collect();
        let (target, agg) = if numeric.is_empty() || self.rng.chance(20) {
            let ints: Vec<&ColDef> = t.cols.iter().filter(|c| c.ty == Int).collect();
            (*self.rng.pick(&ints), *self.rng.pick(&["min", "max"]))
        } else {
            (
                *self.rng.pick(&numeric),
                *self.rng.pick(&["avg", "min", "max", "avg"]),
            )
        };
        let alias = self.alias("q");
        let inner_scope: Vec<Col> = t
            .cols
            .iter()
            .map(|c| Col {
                sql: format!("{alias}.{}", c.name),
                def: *c,
                nullable: false,
            })
            .collect();
        let mut conds = Vec::new();
        // correlate on a column with repeated values (a foreign key or a
        // low-cardinality column)
        let keys: Vec<&ColDef> = t
            .cols
            .iter()
            .filter(|c| {
                c.ty == Int && (c.group || EDGES.iter().any(|e| e.0 == t.name && e.1 == c.name))
            })
            .collect();
        if !keys.is_empty() && self.rng.chance(60) {
            let k = self.rng.pick(&keys);
            conds.push(format!("{alias}.{} = {}.{}", k.name, outer.alias, k.name));
        }
        if self.rng.chance(50) {
            let inner_rel = Rel {
                alias: alias.clone(),
                table: t,
                nullable: false,
            };
            conds.push(self.predicate(&inner_scope, std::slice::from_ref(&inner_rel), depth + 2));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let factor = if agg == "avg" && self.rng.chance(50) {
            *self.rng.pick(&["0.2 * ", "1.5 * ", "0.5 * "])
        } else {
            ""
        };
        format!(
            "{}.{} {} (SELECT {factor}{agg}({alias}.{}) FROM {} AS {alias}{filter})",
            outer.alias,
            target.name,
            self.rng.pick(&["<", ">", "<=", ">="]),
            target.name,
            t.name
        )
    }

    // ---------------------------------------------------------------- FROM

    /// A FROM clause of 1 to 4 related tables; returns its SQL, the tables
    /// and the join conditions that go to WHERE (comma joins).
    fn gen_from(&mut self) -> (String, Vec<Rel>, Vec<String>) {
        let start = self.rng.pick(TABLES);
        let alias = self.alias("t");
        let mut rels = vec![Rel {
            alias: alias.clone(),
            table: start,
            nullable: false,
        }];
        let mut sql = format!("{} AS {alias}", start.name);
        let mut where_conds = Vec::new();
        let joins = match self.rng.below(10) {
            0..=2 => 0,
            3..=6 => 1,
            7..=8 => 2,
            _ => 3,
        };
        // The grain: the table whose rows the join result has (at most). A
        // parent can join any table; a child only the grain, and becomes
        // the grain. So the result never exceeds the largest table.
        let mut grain = start.name;
        for _ in 0..joins {
            // an edge from a table already in to a table not yet in
            let mut options = Vec::new();
            for r in &rels {
                for &(child, ck, parent, pk) in EDGES {
                    if child == r.table.name && !rels.iter().any(|x| x.table.name == parent) {
                        options.push((r.clone(), ck, parent, pk));
                    } else if parent == r.table.name
                        && r.table.name == grain
                        && !rels.iter().any(|x| x.table.name == child)
                    {
                        options.push((r.clone(), pk, child, ck));
                    }
                }
            }
            if options.is_empty() {
                break;
            }
            let (from, from_col, to, to_col) = self.rng.pick(&options).clone();
            if EDGES.iter().any(|e| e.0 == to && e.2 == from.table.name) {
                grain = to;
            }
            let t = table(to);
            let alias = self.alias("t");
            let cond = join_condition(&from.alias, from.table.name, from_col, &alias, to, to_col);
            let nullable;
            // After a comma join, only comma joins: in `a, b JOIN c ON …`
            // the ON clause sees b and c only (DuckDB is lenient there,
            // quarry follows the standard).
            let choice = if where_conds.is_empty() {
                self.rng.below(10)
            } else {
                0
            };
            match choice {
                0..=3 => {
                    sql.push_str(&format!(", {} AS {alias}", t.name));
                    where_conds.push(cond);
                    nullable = from.nullable;
                }
                4..=6 => {
                    let extra = if self.rng.chance(20) {
                        let scope = columns_of(&[Rel {
                            alias: alias.clone(),
                            table: t,
                            nullable: false,
                        }]);
                        format!(" AND {}", self.column_predicate(&scope))
                    } else {
                        String::new()
                    };
                    sql.push_str(&format!(" JOIN {} AS {alias} ON {cond}{extra}", t.name));
                    nullable = from.nullable;
                }
                7 => {
                    // RIGHT or FULL: the tables before may now be NULL
                    let kind = *self.rng.pick(&["RIGHT", "FULL"]);
                    let extra = if self.rng.chance(30) {
                        let scope = columns_of(&[Rel {
                            alias: alias.clone(),
                            table: t,
                            nullable: false,
                        }]);
                        format!(" AND {}", self.column_predicate(&scope))
                    } else {
                        String::new()
                    };
                    sql.push_str(&format!(
                        " {kind} JOIN {} AS {alias} ON {cond}{extra}",
                        t.name
                    ));
                    for r in rels.iter_mut() {
                        r.nullable = true;
                    }
                    nullable = kind == "FULL";
                }
                _ => {
                    let extra = if self.rng.chance(40) {
                        let scope = columns_of(&[Rel {
                            alias: alias.clone(),
                            table: t,
                            nullable: false,
                        }]);
                        format!(" AND {}", self.column_predicate(&scope))
                    } else {
                        String::new()
                    };
                    sql.push_str(&format!(
                        " LEFT JOIN {} AS {alias} ON {cond}{extra}",
                        t.name
                    ));
                    nullable = true;
                }
            }
            rels.push(Rel {
                alias,
                table: t,
                nullable,
            });
        }
        (sql, rels, where_conds)
    }

    // ------------------------------------------------------------- queries

    fn top_query(&mut self) -> String {
        match self.rng.below(100) {
            0..=7 => self.derived_query(false),
            8..=12 => self.derived_query(true),
            13..=19 => self.set_query(),
            20..=29 => self.window_query(),
            30..=33 => self.series_query(),
            _ => self.simple_query(),
        }
    }

    /// A LATERAL series per row (`FROM …, generate_series(1, t.k % 5)
    /// AS g(x)`, also by JOIN … ON and LEFT JOIN … ON), its bounds read
    /// from an integer column, aggregated per group; some aggregates carry
    /// an ORDER BY inside the call, which cannot change their answer.
    fn series_query(&mut self) -> String {
        // Tables joined by JOIN … ON only: with comma joins DuckDB makes
        // the series from their cross product before WHERE joins them
        // (quarry moves WHERE's conditions below the series), which at
        // this size runs for hours.
        let (from, rels, mut conds) = self.gen_from();
        if !conds.is_empty() {
            return self.simple_query();
        }
        let scope = self.scope_of(&rels);
        let ints: Vec<Col> = scope.iter().filter(|c| c.def.ty == Int).cloned().collect();
        if ints.is_empty() {
            return self.simple_query();
        }
        let c = self.rng.pick(&ints).sql.clone();
        let k = self.rng.range(0, 3);
        let bound = format!("{c} % 5");
        let args = match self.rng.below(5) {
            0 => bound,
            1 => format!("{k}, {bound}"),
            2 => format!("{bound}, {k}, -1"),
            3 => format!("{k}, {bound} + {k}, {}", self.rng.range(1, 3)),
            _ => format!("{bound} - 2, {k}, NULL"),
        };
        let func = *self.rng.pick(&["generate_series", "range"]);
        let g = self.alias("g");
        let series = format!("{func}({args}) AS {g}(x)");
        let joined = match self.rng.below(4) {
            1 => format!("{from} JOIN {series} ON {g}.x <> {k}"),
            2 => format!("{from} LEFT JOIN {series} ON {g}.x > {k}"),
            3 => format!("{from} LEFT JOIN LATERAL {series} ON true"),
            _ => format!("{from}, {series}"),
        };
        if self.rng.chance(40) {
            conds.push(self.predicate(&scope, &rels, 0));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let key = self.pick_col(&scope).sql;
        let x = format!("{g}.x");
        let order = format!(" ORDER BY {key} DESC");
        let aggs = [
            "count(*)".to_string(),
            format!("count({x})"),
            format!("sum({x}{})", if self.rng.chance(50) { &order } else { "" }),
            format!("max({x}{})", if self.rng.chance(50) { &order } else { "" }),
            format!("median({x} ORDER BY {x})"),
            format!("count(DISTINCT {x} ORDER BY {x})"),
        ];
        let n = 2 + self.rng.below(3);
        let picked: Vec<String> = (0..n).map(|_| self.rng.pick(&aggs).clone()).collect();
        if self.rng.chance(50) {
            format!("SELECT {} FROM {joined}{filter}", picked.join(", "))
        } else {
            let groupable: Vec<&Col> = scope.iter().filter(|c| c.def.group).collect();
            let group = match groupable.is_empty() {
                true => c,
                false => self.rng.pick(&groupable).sql.clone(),
            };
            format!(
                "SELECT {group}, {} FROM {joined}{filter} GROUP BY {group} ORDER BY 1 NULLS FIRST",
                picked.join(", ")
            )
        }
    }

    /// `SELECT cols FROM … WHERE p1 <op> SELECT cols FROM … WHERE p2`,
    /// ordered by every column: the same columns (mostly groupable ones,
    /// so that the sides share rows) under two filters.
    fn set_query(&mut self) -> String {
        let (from, rels, conds) = self.gen_from();
        let scope = self.scope_of(&rels);
        let groupable: Vec<Col> = scope.iter().filter(|c| c.def.group).cloned().collect();
        let k = 1 + self.rng.below(3);
        let mut cols: Vec<String> = Vec::new();
        for _ in 0..k {
            let c = if !groupable.is_empty() && self.rng.chance(75) {
                self.rng.pick(&groupable).clone()
            } else {
                self.pick_col(&scope)
            };
            cols.push(c.sql);
        }
        let side = |g: &mut Self, alias: bool| {
            let mut where_ = conds.clone();
            if g.rng.chance(80) {
                where_.push(g.predicate(&scope, &rels, 0));
            }
            let items: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if alias {
                        format!("{c} AS c{i}")
                    } else {
                        c.clone()
                    }
                })
                .collect();
            let filter = if where_.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", where_.join(" AND "))
            };
            format!("SELECT {} FROM {from}{filter}", items.join(", "))
        };
        let left = side(self, true);
        let right = side(self, false);
        let op = *self.rng.pick(&[
            "UNION ALL",
            "UNION",
            "INTERSECT",
            "EXCEPT",
            "INTERSECT ALL",
            "EXCEPT ALL",
        ]);
        let order: Vec<String> = (1..=k).map(|i| i.to_string()).collect();
        format!(
            "{left} {op} {right} ORDER BY {} LIMIT {}",
            order.join(", "),
            self.rng.range(1, 40)
        )
    }

    /// SELECT … FROM (SELECT …) AS d, or WITH w AS (…) SELECT … FROM w.
    fn derived_query(&mut self, cte: bool) -> String {
        let (from, rels, mut conds) = self.gen_from();
        let scope = self.scope_of(&rels);
        for _ in 0..self.rng.below(3) {
            conds.push(self.predicate(&scope, &rels, 0));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let mut inner_cols = Vec::new();
        let mut items = Vec::new();
        let inner = if self.rng.chance(35) {
            // aggregated: group keys, then sums / counts / extremes
            let groupable: Vec<Col> = scope.iter().filter(|c| c.def.group).cloned().collect();
            let keys = if groupable.is_empty() {
                0
            } else {
                1 + self.rng.below(2)
            };
            let mut group_sql = Vec::new();
            for _ in 0..keys {
                let c = self.rng.pick(&groupable).clone();
                if group_sql.contains(&c.sql) {
                    continue;
                }
                group_sql.push(c.sql.clone());
                items.push(format!("{} AS d{}", c.sql, items.len()));
                inner_cols.push(c);
            }
            let numeric: Vec<Col> = scope.iter().filter(|c| c.def.ty == Dec).cloned().collect();
            for _ in 0..1 + self.rng.below(3) {
                let (sql, c) = match self.rng.below(3) {
                    0 if !numeric.is_empty() => {
                        let c = self.rng.pick(&numeric).clone();
                        (format!("sum({})", c.sql), c)
                    }
                    1 => {
                        let c = self.pick_col(&scope);
                        let f = *self.rng.pick(&["min", "max"]);
                        (format!("{f}({})", c.sql), c)
                    }
                    _ => {
                        let any = self.rng.pick(&scope).clone();
                        let c = Col {
                            sql: String::new(),
                            def: ColDef {
                                name: "count",
                                ty: Int,
                                dom: Ints(0, 100),
                                group: false,
                                nonzero: false,
                            },
                            nullable: false,
                        };
                        (format!("count({})", any.sql), c)
                    }
                };
                items.push(format!("{sql} AS d{}", items.len()));
                inner_cols.push(c);
            }
            let group_by = if group_sql.is_empty() {
                String::new()
            } else {
                format!(" GROUP BY {}", group_sql.join(", "))
            };
            format!("SELECT {} FROM {from}{filter}{group_by}", items.join(", "))
        } else {
            // the inner select list: 2 to 5 columns, renamed
            let n = 2 + self.rng.below(4);
            for i in 0..n {
                let c = self.pick_col(&scope);
                items.push(format!("{} AS d{i}", c.sql));
                inner_cols.push(c);
            }
            format!("SELECT {} FROM {from}{filter}", items.join(", "))
        };
        let name = self.alias("d");
        let outer_scope: Vec<Col> = inner_cols
            .iter()
            .enumerate()
            .map(|(i, c)| Col {
                sql: format!("{name}.d{i}"),
                def: c.def,
                nullable: c.nullable,
            })
            .collect();
        let body = self.select_over(&outer_scope, &[], &[], &|_| {
            if cte {
                format!("{name} AS {name}")
            } else {
                format!("({inner}) AS {name}")
            }
        });
        if cte {
            format!("WITH {name} AS ({inner}) {body}")
        } else {
            body
        }
    }

    /// Window functions next to their PARTITION BY and ORDER BY columns,
    /// ordered by every output column.
    fn window_query(&mut self) -> String {
        let (from, rels, mut conds) = self.gen_from();
        let scope = self.scope_of(&rels);
        if self.rng.chance(50) {
            conds.push(self.predicate(&scope, &rels, 0));
        }
        let groupable: Vec<&Col> = scope.iter().filter(|c| c.def.group).collect();
        let mut partition = Vec::new();
        for _ in 0..self.rng.below(3) {
            if groupable.is_empty() {
                break;
            }
            let c = self.rng.pick(&groupable).sql.clone();
            if !partition.contains(&c) {
                partition.push(c);
            }
        }
        let mut order = Vec::new();
        for _ in 0..self.rng.below(3) {
            let c = self.pick_col(&scope).sql;
            if !order.contains(&c) && !partition.contains(&c) {
                order.push(c);
            }
        }
        // every table's key after the window's own order: a total order
        let mut total = order.clone();
        for r in &rels {
            for k in primary_key(r.table.name) {
                total.push(format!("{}.{k}", r.alias));
            }
        }
        let clause = |order: &[String], frame: &str| {
            let mut parts = Vec::new();
            if !partition.is_empty() {
                parts.push(format!("PARTITION BY {}", partition.join(", ")));
            }
            if !order.is_empty() {
                parts.push(format!("ORDER BY {}", order.join(", ")));
            }
            if !frame.is_empty() {
                parts.push(frame.to_string());
            }
            format!("OVER ({})", parts.join(" "))
        };
        let numeric: Vec<&Col> = scope
            .iter()
            .filter(|c| matches!(c.def.ty, Int | Dec))
            .collect();
        let mut outs: Vec<String> = partition.iter().chain(&order).cloned().collect();
        for _ in 0..1 + self.rng.below(3) {
            let x = self.pick_col(&scope).sql;
            // (about timestamps: RANGE frames over one more often)
            let kind = if self.ts && self.rng.chance(20) {
                14
            } else {
                self.rng.below(19)
            };
            let w = match kind {
                // the same value whatever the order among peers
                0 => format!("rank() {}", clause(&order, "")),
                1 => format!("dense_rank() {}", clause(&order, "")),
                2 => format!("cume_dist() {}", clause(&order, "")),
                3 => format!("count(*) {}", clause(&order, "")),
                4 | 5 if !numeric.is_empty() => {
                    let e = self.numeric_expr(&numeric);
                    let f = *self.rng.pick(&["sum", "min", "max", "count"]);
                    format!("{f}({e}) {}", clause(&order, ""))
                }
                // the order among peers matters: a total order
                6 => format!("row_number() {}", clause(&total, "")),
                7 => format!("ntile({}) {}", self.rng.range(1, 6), clause(&total, "")),
                8 => {
                    let f = *self.rng.pick(&["lag", "lead"]);
                    match self.rng.below(3) {
                        0 => format!("{f}({x}) {}", clause(&total, "")),
                        _ => format!("{f}({x}, {}) {}", self.rng.range(1, 4), clause(&total, "")),
                    }
                }
                9 => format!("first_value({x}) {}", clause(&total, "")),
                10 => format!(
                    "last_value({x}) {}",
                    clause(&total, "ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING")
                ),
                11 => format!(
                    "nth_value({x}, {}) {}",
                    self.rng.range(1, 4),
                    clause(&total, "")
                ),
                12 | 13 if !numeric.is_empty() => {
                    let e = self.numeric_expr(&numeric);
                    let f = *self.rng.pick(&["sum", "min", "max", "count"]);
                    let (a, b) = (self.rng.range(0, 3), self.rng.range(0, 3));
                    let frame = match self.rng.below(3) {
                        0 => format!("ROWS BETWEEN {a} PRECEDING AND {b} FOLLOWING"),
                        1 => format!("ROWS BETWEEN UNBOUNDED PRECEDING AND {b} FOLLOWING"),
                        _ => format!("ROWS {a} PRECEDING"),
                    };
                    format!("{f}({e}) {}", clause(&total, &frame))
                }
                14 | 15 => {
                    // a RANGE offset over one numeric or date key
                    let keys: Vec<&Col> = scope.iter().filter(|c| c.def.ty != Str).collect();
                    let ts_keys: Vec<&Col> =
                        keys.iter().copied().filter(|c| is_ts(c.def.ty)).collect();
                    let key = if !ts_keys.is_empty() && self.rng.chance(60) {
                        (*self.rng.pick(&ts_keys)).clone()
                    } else {
                        (*self.rng.pick(&keys)).clone()
                    };
                    let (a, b) = (self.rng.range(0, 40), self.rng.range(0, 40));
                    let (a, b) = match key.def.ty {
                        Date => (format!("INTERVAL {a} DAY"), format!("INTERVAL {b} DAY")),
                        Ts | TsTz => {
                            let unit = *self.rng.pick(&["HOUR", "DAY", "MINUTE"]);
                            (
                                format!("INTERVAL {a} {unit}"),
                                format!("INTERVAL '{b} hours {a} minutes'"),
                            )
                        }
                        Dec => (format!("{a}.5"), format!("{b}.25")),
                        _ => (a.to_string(), b.to_string()),
                    };
                    let dir = if self.rng.chance(30) { " DESC" } else { "" };
                    let frame = match self.rng.below(3) {
                        0 => format!("RANGE BETWEEN {a} PRECEDING AND {b} FOLLOWING"),
                        1 => format!("RANGE BETWEEN CURRENT ROW AND {b} FOLLOWING"),
                        _ => format!("RANGE {a} PRECEDING"),
                    };
                    let key_order = [format!("{}{dir}", key.sql)];
                    let f = *self.rng.pick(&["count", "min", "max", "sum"]);
                    let arg = match f {
                        "sum" if !numeric.is_empty() => self.numeric_expr(&numeric),
                        "sum" => "1".to_string(),
                        _ => x.clone(),
                    };
                    outs.push(key.sql.clone());
                    format!("{f}({arg}) {}", clause(&key_order, &frame))
                }
                16..=18 => {
                    // any aggregate over frames (in a total order: string_agg
                    // joins in it)
                    let frame = match self.rng.below(4) {
                        0 => String::new(),
                        1 => format!(
                            "ROWS BETWEEN {} PRECEDING AND CURRENT ROW",
                            self.rng.range(0, 4)
                        ),
                        2 => "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING".to_string(),
                        _ => format!(
                            "ROWS BETWEEN 1 PRECEDING AND {} FOLLOWING",
                            self.rng.range(0, 3)
                        ),
                    };
                    let over = clause(&total, &frame);
                    match self.rng.below(5) {
                        0 if !numeric.is_empty() => {
                            let e = self.numeric_expr(&numeric);
                            let f = *self.rng.pick(&["median", "stddev_samp", "var_pop"]);
                            format!("{f}({e}) {over}")
                        }
                        1 if !numeric.is_empty() => {
                            let e = self.numeric_expr(&numeric);
                            format!("quantile_disc({e}, 0.3) {over}")
                        }
                        2 => format!("count(DISTINCT {x}) {over}"),
                        3 => format!("string_agg(CAST({x} AS VARCHAR), '|') {over}"),
                        _ => format!("max({x}) FILTER (WHERE {x} IS NOT NULL) {over}"),
                    }
                }
                _ => format!("count({x}) {}", clause(&order, "")),
            };
            outs.push(w);
        }
        let items: Vec<String> = outs
            .iter()
            .enumerate()
            .map(|(i, o)| format!("{o} AS c{i}"))
            .collect();
        let mut sql = format!("SELECT {} FROM {from}", items.join(", "));
        if !conds.is_empty() {
            sql.push_str(&format!(" WHERE {}", conds.join(" AND ")));
        }
        let order_all: Vec<String> = (1..=outs.len()).map(|i| i.to_string()).collect();
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            order_all.join(", "),
            self.rng.range(1, 40)
        ));
        sql
    }

    fn simple_query(&mut self) -> String {
        let (from, rels, conds) = self.gen_from();
        let scope = self.scope_of(&rels);
        self.select_over(&scope, &rels, &conds, &|_| from.clone())
    }

    /// SELECT list, WHERE, GROUP BY, HAVING, ORDER BY and LIMIT over a scope.
    fn select_over(
        &mut self,
        scope: &[Col],
        rels: &[Rel],
        join_conds: &[String],
        from: &dyn Fn(&mut Self) -> String,
    ) -> String {
        let from_sql = from(self);
        let mut conds: Vec<String> = join_conds.to_vec();
        let n = match self.rng.below(10) {
            0..=2 => 0,
            3..=6 => 1,
            7..=8 => 2,
            _ => 3,
        };
        for _ in 0..n {
            conds.push(self.predicate(scope, rels, 0));
        }
        let aggregate = self.rng.chance(55);
        let mut outs: Vec<Out> = Vec::new();
        let mut group_by = Vec::new();
        let mut having = None;
        let mut distinct = false;
        let mut tiebreaks: Vec<String> = Vec::new();
        if aggregate {
            let groups = match self.rng.below(10) {
                0..=2 => 0,
                3..=7 => 1,
                _ => 2,
            };
            for _ in 0..groups {
                let g = self.group_expr(scope);
                if !outs.iter().any(|o| o.sql == g) {
                    group_by.push(g.clone());
                    outs.push(Out { sql: g });
                }
            }
            let aggs = 1 + self.rng.below(3);
            for _ in 0..aggs {
                let a = self.aggregate_expr(scope);
                outs.push(Out { sql: a });
            }
            if !group_by.is_empty() && self.rng.chance(25) {
                let ts: Vec<Col> = scope.iter().filter(|c| is_ts(c.def.ty)).cloned().collect();
                having = Some(match self.rng.below(3) {
                    0 => format!("count(*) > {}", self.rng.range(1, 20)),
                    1 if !ts.is_empty() => {
                        // the latest (or earliest) timestamp of the group
                        let c = self.rng.pick(&ts).clone();
                        let f = *self.rng.pick(&["min", "max"]);
                        let op = comparison(&mut self.rng);
                        format!("{f}({}) {op} {}", c.sql, self.literal(&c.def))
                    }
                    _ => {
                        let a = self.aggregate_expr(scope);
                        format!("{a} IS NOT NULL")
                    }
                });
            }
        } else {
            distinct = self.rng.chance(15);
            self.distinct = distinct;
            let k = 1 + self.rng.below(4);
            for _ in 0..k {
                self.spelled = false;
                let e = if !rels.is_empty() && self.rng.chance(10) {
                    self.select_list_subquery(rels)
                } else {
                    self.scalar_expr(scope)
                };
                if self.spelled {
                    // intervals equal but spelled differently are peers
                    // in the ORDER BY; their text orders them after that
                    tiebreaks.push(format!("CAST({e} AS VARCHAR)"));
                }
                outs.push(Out { sql: e });
            }
            self.distinct = false;
        }
        let items: Vec<String> = outs
            .iter()
            .enumerate()
            .map(|(i, o)| format!("{} AS c{i}", o.sql))
            .collect();
        let mut sql = format!(
            "SELECT {}{} FROM {from_sql}",
            if distinct { "DISTINCT " } else { "" },
            items.join(", ")
        );
        if !conds.is_empty() {
            sql.push_str(&format!(" WHERE {}", conds.join(" AND ")));
        }
        if !group_by.is_empty() {
            let keys = group_by.join(", ");
            let clause = match self.rng.below(20) {
                0 => format!("ROLLUP ({keys})"),
                1 => format!("CUBE ({keys})"),
                2 => format!("GROUPING SETS (({keys}), ())"),
                _ => keys,
            };
            sql.push_str(&format!(" GROUP BY {clause}"));
        }
        if let Some(h) = having {
            sql.push_str(&format!(" HAVING {h}"));
        }
        let order: Vec<String> = (1..=outs.len())
            .map(|i| {
                let dir = if self.rng.chance(30) { " DESC" } else { "" };
                let nulls = match self.rng.below(10) {
                    0 => " NULLS FIRST",
                    1 => " NULLS LAST",
                    _ => "",
                };
                format!("{i}{dir}{nulls}")
            })
            .collect();
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        for t in &tiebreaks {
            sql.push_str(&format!(", {t}"));
        }
        // Without GROUP BY keys the answer may be large: always a LIMIT.
        // (timestamps and their parts make many groups too)
        let many = !aggregate
            || group_by.len() > 1
            || group_by.iter().any(|g| g.contains("year"))
            || (self.ts && !group_by.is_empty());
        if many || self.rng.chance(30) {
            sql.push_str(&format!(" LIMIT {}", self.rng.range(1, 40)));
            if self.rng.chance(15) {
                sql.push_str(&format!(" OFFSET {}", self.rng.range(0, 10)));
            }
        }
        sql
    }

    /// A low-cardinality grouping expression.
    fn group_expr(&mut self, scope: &[Col]) -> String {
        if self.ts && self.rng.chance(50) {
            if let Some(g) = self.timestamp_group_expr(scope) {
                return g;
            }
        }
        let groupable: Vec<&Col> = scope.iter().filter(|c| c.def.group).collect();
        let dates: Vec<&Col> = scope.iter().filter(|c| c.def.ty == Date).collect();
        match self.rng.below(10) {
            0..=1 if !dates.is_empty() => {
                let d = self.rng.pick(&dates);
                format!("extract(year FROM {})", d.sql)
            }
            2 => {
                let strs: Vec<&Col> = scope
                    .iter()
                    .filter(|c| c.def.ty == Str && matches!(c.def.dom, Set(_)))
                    .collect();
                if strs.is_empty() {
                    return self.group_expr_fallback(scope, &groupable);
                }
                let s = self.rng.pick(&strs);
                format!("substring({} FROM 1 FOR 1)", s.sql)
            }
            _ => self.group_expr_fallback(scope, &groupable),
        }
    }

    fn group_expr_fallback(&mut self, scope: &[Col], groupable: &[&Col]) -> String {
        if groupable.is_empty() {
            // a key column, bucketed
            let ints: Vec<&Col> = scope.iter().filter(|c| c.def.ty == Int).collect();
            if let Some(c) = ints.first() {
                return format!("{} % 5", c.sql);
            }
            let strs: Vec<&Col> = scope.iter().filter(|c| c.def.ty == Str).collect();
            if let Some(c) = strs.first() {
                return format!("length({})", c.sql);
            }
            return self.rng.pick(scope).sql.clone();
        }
        self.rng.pick(groupable).sql.clone()
    }

    /// An aggregate over the scope.
    fn aggregate_expr(&mut self, scope: &[Col]) -> String {
        let numeric: Vec<&Col> = scope
            .iter()
            .filter(|c| matches!(c.def.ty, Int | Dec))
            .collect();
        if self.ts && self.rng.chance(45) {
            if let Some(a) = self.timestamp_aggregate(scope) {
                return a;
            }
        }
        match self.rng.below(10) {
            0 => "count(*)".to_string(),
            1 => {
                let c = self.pick_col(scope);
                format!("count({})", c.sql)
            }
            2 => {
                let c = self.pick_col(scope);
                format!("count(DISTINCT {})", c.sql)
            }
            3 => {
                let c = self.pick_col(scope);
                let f = *self.rng.pick(&["min", "max"]);
                format!("{f}({})", c.sql)
            }
            4 => {
                // joined in an order that ties only equal values
                let c = self.pick_col(scope);
                let dir = *self.rng.pick(&["", " DESC"]);
                format!(
                    "string_agg(CAST({0} AS VARCHAR), ',' ORDER BY {0}{dir})",
                    c.sql
                )
            }
            5 if !numeric.is_empty() => {
                let e = self.numeric_expr(&numeric);
                match self.rng.below(3) {
                    0 => format!("median({e})"),
                    1 => format!("quantile_disc({e}, 0.25)"),
                    _ => format!("quantile_cont({e}, 0.75)"),
                }
            }
            _ if !numeric.is_empty() => {
                let e = self.numeric_expr(&numeric);
                let f = *self.rng.pick(&[
                    "sum",
                    "avg",
                    "sum",
                    "min",
                    "max",
                    "sum",
                    "avg",
                    "stddev_samp",
                    "var_pop",
                ]);
                // (no round() of a DOUBLE: a value near .5 rounds either way
                // depending on the order of summation)
                format!("{f}({e})")
            }
            _ => "count(*)".to_string(),
        }
    }

    /// A numeric expression over numeric columns: a column, a product with
    /// a small constant, `price * (1 - discount)`, a sum of two columns, a
    /// CASE.
    fn numeric_expr(&mut self, numeric: &[&Col]) -> String {
        let a = self.rng.pick(numeric);
        match self.rng.below(8) {
            0 => format!("{} * {}", a.sql, self.rng.range(2, 9)),
            1 => {
                let b = self.rng.pick(numeric);
                if a.def.ty == Dec || b.def.ty == Dec {
                    format!("{} + {}", a.sql, b.sql)
                } else {
                    format!("{} - {}", a.sql, b.sql)
                }
            }
            2 if a.def.ty == Dec => {
                let discount = numeric.iter().find(|c| c.def.name.ends_with("_discount"));
                match discount {
                    Some(d) => format!("{} * (1 - {})", a.sql, d.sql),
                    None => format!("{} * (1 + 0.25)", a.sql),
                }
            }
            3 => format!("{} * 0.5", a.sql),
            4 => {
                let b = self.rng.pick(numeric);
                if b.def.nonzero && !b.nullable {
                    format!("{} / {}", a.sql, b.sql)
                } else {
                    format!("{} / 4", a.sql)
                }
            }
            5 => {
                let c = self.rng.pick(numeric);
                let lit = self.literal(&c.def);
                format!("CASE WHEN {} > {lit} THEN {} ELSE 0 END", c.sql, a.sql)
            }
            _ => a.sql.clone(),
        }
    }

    /// A scalar subquery for the SELECT list: an aggregate over a related
    /// table, correlated on the key (count(*) must be 0, not NULL, where no
    /// row matches), or uncorrelated.
    fn select_list_subquery(&mut self, rels: &[Rel]) -> String {
        let outer = self.rng.pick(rels).clone();
        let edges: Vec<(&str, &str, &str)> = EDGES
            .iter()
            .filter_map(|&(a, ac, b, bc)| {
                if a == outer.table.name {
                    Some((ac, b, bc))
                } else if b == outer.table.name {
                    Some((bc, a, ac))
                } else {
                    None
                }
            })
            .collect();
        let alias = self.alias("x");
        if edges.is_empty() || self.rng.chance(20) {
            let t = outer.table;
            let c = self.rng.pick(t.cols);
            let f = *self.rng.pick(&["min", "max", "count"]);
            return format!(
                "(SELECT {f}({alias}.{}) FROM {} AS {alias})",
                c.name, t.name
            );
        }
        let &(outer_col, inner_table, inner_col) = self.rng.pick(&edges);
        let t = table(inner_table);
        let scope: Vec<Col> = columns_of(&[Rel {
            alias: alias.clone(),
            table: t,
            nullable: false,
        }]);
        let numeric: Vec<&Col> = scope.iter().filter(|c| c.def.ty == Dec).collect();
        let agg = match self.rng.below(4) {
            0 | 1 => "count(*)".to_string(),
            2 if !numeric.is_empty() => format!("sum({})", self.rng.pick(&numeric).sql),
            _ => format!("max({})", self.rng.pick(&scope).sql),
        };
        let extra = if self.rng.chance(50) {
            format!(" AND {}", self.column_predicate(&scope))
        } else {
            String::new()
        };
        format!(
            "(SELECT {agg} FROM {} AS {alias} WHERE {alias}.{inner_col} = {}.{outer_col}{extra})",
            t.name, outer.alias
        )
    }

    /// An expression for a non-aggregated SELECT list.
    fn scalar_expr(&mut self, scope: &[Col]) -> String {
        let c = self.pick_col(scope);
        if is_ts(c.def.ty) && self.rng.chance(70) {
            return self.timestamp_expr(&c, scope);
        }
        let x = &c.sql;
        match (c.def.ty, self.rng.below(9)) {
            (Int | Dec, 6) => format!("-{x}"),
            (Dec, 7) => {
                let k = *self.rng.pick(&["1.5", "0.125", "2", "-3", "100.0001"]);
                format!("{x} * {k}")
            }
            (Int, 7) => format!("{x} % {}", self.rng.range(2, 9)),
            (_, 7) => {
                // CASE without ELSE: NULL when no branch matches
                let cond = self.column_predicate(scope);
                format!("CASE WHEN {cond} THEN {x} END")
            }
            (Str, 8) => format!(
                "coalesce(CASE WHEN {} THEN {x} END, 'none')",
                self.column_predicate(scope)
            ),
            (Date, 8) => format!("extract(day FROM {x})"),
            (Int | Dec, 0) => {
                let numeric: Vec<&Col> = scope
                    .iter()
                    .filter(|c| matches!(c.def.ty, Int | Dec))
                    .collect();
                self.numeric_expr(&numeric)
            }
            (Int | Dec, 1) => format!("abs({x} - {})", self.literal(&c.def)),
            (Dec, 2) => format!("round({x} * 0.37, 1)"),
            (Str, 0) => format!("upper({x})"),
            (Str, 1) => format!("lower({x})"),
            (Str, 2) => format!("length({x})"),
            (Str, 3) => format!("substring({x} FROM 2 FOR 3)"),
            (Date, 0) => format!("extract(month FROM {x})"),
            (Date, 1) => format!("extract(year FROM {x})"),
            (_, 4) if c.nullable => format!("coalesce({x}, {})", self.literal(&c.def)),
            (_, 5) => {
                let cond = self.column_predicate(scope);
                let other = self.literal(&c.def);
                format!("CASE WHEN {cond} THEN {x} ELSE {other} END")
            }
            _ => x.clone(),
        }
    }
}

/// `a.x = b.y`, with the second key column of lineitem ⋈ partsupp.
fn join_condition(a: &str, at: &str, ac: &str, b: &str, bt: &str, bc: &str) -> String {
    let mut cond = format!("{a}.{ac} = {b}.{bc}");
    match (at, bt) {
        ("lineitem", "partsupp") => cond.push_str(&format!(" AND {a}.l_suppkey = {b}.ps_suppkey")),
        ("partsupp", "lineitem") => cond.push_str(&format!(" AND {a}.ps_suppkey = {b}.l_suppkey")),
        _ => {}
    }
    cond
}

/// The columns that tell a table's rows apart.
fn primary_key(table: &str) -> &'static [&'static str] {
    match table {
        "lineitem" => &["l_orderkey", "l_linenumber"],
        "orders" => &["o_orderkey"],
        "customer" => &["c_custkey"],
        "part" => &["p_partkey"],
        "partsupp" => &["ps_partkey", "ps_suppkey"],
        "supplier" => &["s_suppkey"],
        "nation" => &["n_nationkey"],
        _ => &["r_regionkey"],
    }
}

fn columns_of(rels: &[Rel]) -> Vec<Col> {
    rels.iter()
        .flat_map(|r| {
            r.table.cols.iter().map(move |c| Col {
                sql: format!("{}.{}", r.alias, c.name),
                def: *c,
                nullable: r.nullable,
            })
        })
        .collect()
}

fn dec_string(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// (smaller, larger) of two numeric literals as text.
fn order_numbers(a: &str, b: &str) -> (String, String) {
    let (x, y): (f64, f64) = (a.parse().unwrap_or(0.0), b.parse().unwrap_or(0.0));
    if x <= y {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

// ---------------------------------------------------------------- timestamps
//
// The TPC-H tables hold DATEs only: a query about timestamps (one in
// `TIMESTAMP_PERCENT`) adds to its scope TIMESTAMP (and now and then
// TIMESTAMP WITH TIME ZONE) columns made from a table's dates and keys
// (`CAST(l_shipdate AS TIMESTAMP) + INTERVAL 1 SECOND * (l_orderkey * 7 %
// 86400)`, `TIMESTAMP '1994-03-01' + INTERVAL 1 MINUTE * c_custkey`, …),
// which its predicates, group keys, aggregates, select lists, window
// orders and RANGE frames then prefer. Both engines print TIMESTAMP and
// INTERVAL values as DuckDB's CAST(… AS VARCHAR) does; they are compared as
// that text. The session's time zone is UTC in both.
//
// Kept out, as documented differences or answers that are not one value:
// - DATE ± an interval of whole days (or months) where a TIMESTAMP is
//   wanted: quarry keeps a DATE (README, "Dates, timestamps and
//   intervals"), DuckDB gives the TIMESTAMP of its midnight. A DATE is
//   moved here only by intervals with a time of day, or by a non-constant
//   interval (a TIMESTAMP in both).
// - Intervals that compare equal but are spelled differently (`1 month`,
//   `30 days`; `1 day 25:00:00`, `2 days 01:00:00`), as age(…) and scaled
//   differences make them: GROUP BY, DISTINCT and set operations make them
//   one in both engines, but each shows the spelling of the row it met
//   first, and which that is depends on the order rows come in (threads,
//   partitions); min / max or an ORDER BY may keep either. So they are
//   never group keys, set operands, min / max arguments or DISTINCT
//   outputs, and in an ORDER BY their text breaks the tie
//   (`Gen::spelled`). How many distinct ones there are is one answer,
//   which count(DISTINCT age(…)) asks (`timestamp_aggregate`). Group keys and
//   min / max take intervals of one spelling only: differences of
//   timestamps (whole days and a time of day under 24 hours).
// - time zones other than UTC (an error in quarry), `%z` / `%Z` (a zone's
//   name), age(x) and now() (today's date), division of an interval by an
//   expression that can be zero.

/// One of `=`, `<>`, `<`, `<=`, `>`, `>=`.
fn comparison(rng: &mut Rng) -> &'static str {
    let op = *rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
    op
}

/// YYYY-MM-DD HH:MM:SS[.ffffff] of a day and a time of day in microseconds.
fn timestamp_text(day: i64, micros: i64) -> String {
    let secs = micros / 1_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = micros % 1_000_000;
    let mut t = format!("{} {h:02}:{m:02}:{s:02}", date_string(day));
    if frac != 0 {
        t.push_str(&format!(".{frac:06}"));
        t.truncate(t.trim_end_matches('0').len());
    }
    t
}

const TIMESTAMP_PARTS: &[&str] = &[
    "hour",
    "minute",
    "second",
    "epoch",
    "millisecond",
    "microsecond",
    "dow",
    "isodow",
    "doy",
    "week",
    "quarter",
    "year",
    "month",
    "day",
    "isoyear",
    "decade",
    "century",
];
/// The parts of an interval both engines take apart alike.
const INTERVAL_PARTS: &[&str] = &[
    "hour",
    "minute",
    "second",
    "epoch",
    "millisecond",
    "microsecond",
    "day",
    "month",
    "year",
];
const TRUNC_PARTS: &[&str] = &[
    "hour", "day", "month", "minute", "week", "quarter", "year", "second", "decade",
];
/// strftime formats (no `%z` / `%Z`: zone names).
const STRFTIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%d/%m/%Y %I:%M %p",
    "%H:%M:%S.%f",
    "%j %a %b %y",
    "%A, %B %-d, %Y",
    "%U %W %V %G %u %w",
    "%c",
    "%x %X",
    "%Y%m%d%H%M",
    "%-m/%-d %H:%M:%S.%g",
    "%n",
];

impl Gen {
    /// The columns of `rels`, and in a query about timestamps one or two
    /// TIMESTAMP columns made from them.
    fn scope_of(&mut self, rels: &[Rel]) -> Vec<Col> {
        let mut scope = columns_of(rels);
        if self.ts && !rels.is_empty() {
            for _ in 0..1 + self.rng.below(2) {
                let r = self.rng.pick(rels).clone();
                let c = self.timestamp_column(&r);
                scope.push(c);
            }
        }
        scope
    }

    /// A column of `scope`; in a query about timestamps a timestamp one
    /// half of the time.
    fn pick_col(&mut self, scope: &[Col]) -> Col {
        if self.ts {
            let ts: Vec<&Col> = scope.iter().filter(|c| is_ts(c.def.ty)).collect();
            if !ts.is_empty() && self.rng.chance(50) {
                return (*self.rng.pick(&ts)).clone();
            }
        }
        self.rng.pick(scope).clone()
    }

    /// A TIMESTAMP expression over the columns of `rel`: from one of its
    /// dates moved by a time of day, or from a key counted in minutes or
    /// hours from a constant.
    fn timestamp_column(&mut self, rel: &Rel) -> Col {
        let a = &rel.alias;
        let t = rel.table;
        let dates: Vec<&ColDef> = t.cols.iter().filter(|c| c.ty == Date).collect();
        let ints: Vec<&ColDef> = t
            .cols
            .iter()
            .filter(|c| matches!(c.dom, Ints(lo, hi) if hi > lo))
            .collect();
        let k = *self.rng.pick(&ints);
        let key = format!("{a}.{}", k.name);
        let (sql, lo, hi) = match (dates.is_empty(), self.rng.chance(85)) {
            (false, true) => {
                let d = *self.rng.pick(&dates);
                let (lo, hi) = match d.dom {
                    Dates(lo, hi) => (lo, hi),
                    _ => (D1992, D1998),
                };
                let x = format!("{a}.{}", d.name);
                (self.timestamp_from_date(&x, &key), lo - 2, hi + 1)
            }
            _ => {
                let (klo, khi) = match k.dom {
                    Ints(lo, hi) => (lo, hi),
                    _ => (0, 0),
                };
                let base = self.rng.range(D1992, D1998 - 30);
                let time = if self.rng.chance(50) {
                    String::new()
                } else {
                    format!(
                        " {:02}:{:02}:00",
                        self.rng.range(0, 23),
                        self.rng.range(0, 59)
                    )
                };
                let lit = format!("TIMESTAMP '{}{time}'", date_string(base));
                match self.rng.below(3) {
                    0 => (
                        format!("{lit} + INTERVAL 1 MINUTE * {key}"),
                        base + klo / 1440,
                        base + khi / 1440 + 1,
                    ),
                    1 => (
                        format!("{lit} + INTERVAL 1 HOUR * {key}"),
                        base + klo / 24,
                        base + khi / 24 + 1,
                    ),
                    _ if khi <= 2000 => {
                        let (d, h) = (self.rng.range(0, 2), self.rng.range(1, 23));
                        (
                            format!("{lit} - INTERVAL '{d} days {h} hours' * {key}"),
                            base - khi * (d + 1),
                            base + 1,
                        )
                    }
                    _ => (
                        format!("{lit} - INTERVAL 90 SECOND * {key}"),
                        base - khi * 90 / 86400 - 1,
                        base + 1,
                    ),
                }
            }
        };
        let tz = self.rng.chance(20);
        let sql = if tz {
            format!("CAST({sql} AS TIMESTAMPTZ)")
        } else {
            sql
        };
        Col {
            sql,
            def: ColDef {
                name: "ts",
                ty: if tz { TsTz } else { Ts },
                dom: Stamps(lo, hi),
                group: false,
                nonzero: false,
            },
            nullable: rel.nullable,
        }
    }

    /// A TIMESTAMP from the DATE `x`: its midnight, or a time of day
    /// (constant, or from the integer `key`). DATE + a constant interval
    /// always has a time of day here: DATE + whole days stays a DATE in
    /// quarry.
    fn timestamp_from_date(&mut self, x: &str, key: &str) -> String {
        let p = *self.rng.pick(&[7, 61, 997, 7919, 29989]);
        let (h, m, s) = (
            self.rng.range(1, 23),
            self.rng.range(0, 59),
            self.rng.range(0, 59),
        );
        match self.rng.below(8) {
            0 => format!("CAST({x} AS TIMESTAMP)"),
            1 => format!("CAST({x} AS TIMESTAMP) + INTERVAL '{h} hours {m} minutes'"),
            2 => format!("{x} + INTERVAL '{h}:{m:02}:{s:02}'"),
            3 => format!("CAST({x} AS TIMESTAMP) + INTERVAL 1 SECOND * ({key} * {p} % 86400)"),
            // DATE + an interval that is not a constant: a TIMESTAMP in both
            4 => format!("{x} + INTERVAL 1 MINUTE * ({key} % 1440)"),
            5 => format!(
                "CAST({x} AS TIMESTAMP) + INTERVAL 1 MILLISECOND * ({key} * {p} % 86400000)"
            ),
            6 => format!("CAST({x} AS TIMESTAMP) - INTERVAL 1 HOUR * ({key} % 48)"),
            _ => format!(
                "make_timestamp(extract(year FROM {x}), extract(month FROM {x}), \
                 extract(day FROM {x}), {key} % 24, {key} % 60, ({key} % 6000) / 100.0)"
            ),
        }
    }

    /// A day of `lo ..= hi` and a time of day (in microseconds): midnight
    /// often, so that `=` finds something.
    fn timestamp_value(&mut self, lo: i64, hi: i64) -> (i64, i64) {
        let day = self.rng.range(lo, hi);
        let micros = match self.rng.below(10) {
            0..=2 => 0,
            3 => self.rng.range(0, 23) * 3_600_000_000,
            4 => self.rng.range(0, 86_399) * 1_000_000 + 500_000,
            5 => self.rng.range(0, 86_399_999_999),
            _ => self.rng.range(0, 86_399) * 1_000_000,
        };
        (day, micros)
    }

    /// A TIMESTAMP (or TIMESTAMPTZ) literal on a day of `lo ..= hi`.
    fn timestamp_literal(&mut self, lo: i64, hi: i64, tz: bool) -> String {
        let (day, micros) = self.timestamp_value(lo, hi);
        let mut text = timestamp_text(day, micros);
        if micros == 0 && self.rng.chance(30) {
            text = date_string(day);
        } else if self.rng.chance(10) {
            text = text.replacen(' ', "T", 1);
        }
        if tz {
            // an offset moves the value to UTC (in both engines)
            if text.len() > 10 {
                let offset = *self.rng.pick(&["", "+00", "+00", "Z", "+02", "-05:30"]);
                text.push_str(offset);
            }
            let kw = *self
                .rng
                .pick(&["TIMESTAMPTZ", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"]);
            format!("{kw} '{text}'")
        } else {
            format!("TIMESTAMP '{text}'")
        }
    }

    /// A constant INTERVAL of hours, minutes, seconds, days or months.
    fn interval_literal(&mut self) -> String {
        let (h, m, s) = (
            self.rng.range(1, 30),
            self.rng.range(0, 59),
            self.rng.range(0, 59),
        );
        match self.rng.below(13) {
            0 => format!("INTERVAL '{h}' HOUR"),
            1 => format!("INTERVAL {} MINUTE", self.rng.range(1, 600)),
            2 => format!("INTERVAL '{} seconds'", self.rng.range(1, 100_000)),
            3 => format!("INTERVAL '{}' MONTH", self.rng.range(1, 18)),
            4 => format!("INTERVAL '{} days {h} hours'", self.rng.range(1, 40)),
            5 => format!("INTERVAL '{h}:{m:02}'"),
            6 => format!(
                "INTERVAL '1 month {} days {:02}:{m:02}:{s:02}'",
                self.rng.range(0, 20),
                h % 24
            ),
            7 => format!("INTERVAL '{h}.5 hours'"),
            8 => format!("INTERVAL '{h} hours {m} minutes ago'"),
            9 => format!("INTERVAL '{}' YEAR", self.rng.range(1, 3)),
            10 => format!("INTERVAL {} DAY", self.rng.range(1, 90)),
            11 => format!("INTERVAL '{} milliseconds'", self.rng.range(1, 5_000_000)),
            _ => format!("INTERVAL '{h} hours {m} minutes {s} seconds'"),
        }
    }

    /// Another value of `c`'s type to subtract from it: a column of the
    /// scope (a DATE for a TIMESTAMP too) or a literal.
    fn other_timestamp(&mut self, c: &Col, scope: &[Col], dates: bool) -> String {
        let same: Vec<&Col> = scope
            .iter()
            .filter(|o| o.def.ty == c.def.ty && o.sql != c.sql)
            .collect();
        let date_cols: Vec<&Col> = scope.iter().filter(|o| o.def.ty == Date).collect();
        match self.rng.below(3) {
            0 if !same.is_empty() => self.rng.pick(&same).sql.clone(),
            1 if dates && c.def.ty == Ts && !date_cols.is_empty() => {
                self.rng.pick(&date_cols).sql.clone()
            }
            _ => self.literal(&c.def),
        }
    }

    /// A predicate over the timestamp column `c`.
    fn timestamp_predicate(&mut self, c: &Col, scope: &[Col]) -> String {
        let x = &c.sql;
        let tz = c.def.ty == TsTz;
        let (lo, hi) = match c.def.dom {
            Stamps(lo, hi) => (lo, hi),
            _ => (D1992, D1998),
        };
        let op = comparison(&mut self.rng);
        match self.rng.below(13) {
            0 => {
                let (a, b) = (self.timestamp_value(lo, hi), self.timestamp_value(lo, hi));
                let (a, b) = (a.min(b), a.max(b));
                let kw = if tz { "TIMESTAMPTZ" } else { "TIMESTAMP" };
                let not = if self.rng.chance(20) { "NOT " } else { "" };
                format!(
                    "{x} {not}BETWEEN {kw} '{}' AND {kw} '{}'",
                    timestamp_text(a.0, a.1),
                    timestamp_text(b.0, b.1)
                )
            }
            1 => format!("{x} {op} DATE '{}'", date_string(self.rng.range(lo, hi))),
            2 => {
                let (d, t) = self.timestamp_value(lo, hi);
                format!("{x} {op} '{}'", timestamp_text(d, t))
            }
            3 => {
                let lit = self.literal(&c.def);
                let sign = *self.rng.pick(&["+", "-"]);
                format!("{x} {op} {lit} {sign} {}", self.interval_literal())
            }
            4 => {
                let sign = *self.rng.pick(&["+", "-"]);
                let iv = self.interval_literal();
                format!("{x} {sign} {iv} {op} {}", self.literal(&c.def))
            }
            5 => match self.rng.below(3) {
                0 => format!("extract(hour FROM {x}) {op} {}", self.rng.range(0, 23)),
                1 => format!("date_part('minute', {x}) {op} {}", self.rng.range(0, 59)),
                _ => format!("extract(dow FROM {x}) {op} {}", self.rng.range(0, 6)),
            },
            6 => {
                let part = *self.rng.pick(&["day", "month", "hour", "year"]);
                format!("date_trunc('{part}', {x}) {op} {}", self.literal(&c.def))
            }
            7 => format!(
                "CAST({x} AS DATE) {op} DATE '{}'",
                date_string(self.rng.range(lo, hi))
            ),
            8 => {
                let mut items: Vec<String> = (0..1 + self.rng.below(3))
                    .map(|_| self.literal(&c.def))
                    .collect();
                if self.rng.chance(30) {
                    items.push(format!("DATE '{}'", date_string(self.rng.range(lo, hi))));
                }
                let not = if self.rng.chance(25) { "NOT " } else { "" };
                format!("{x} {not}IN ({})", items.join(", "))
            }
            9 => {
                let other = self.other_timestamp(c, scope, true);
                format!("{x} - {other} {op} {}", self.interval_literal())
            }
            10 => {
                let other = self.literal(&c.def);
                let iv = format!(
                    "INTERVAL '{} years {} months'",
                    self.rng.range(0, 3),
                    self.rng.range(0, 11)
                );
                format!("age({x}, {other}) {op} {iv}")
            }
            11 => match self.rng.below(2) {
                0 => format!("strftime({x}, '%H') {op} '{:02}'", self.rng.range(0, 23)),
                _ => {
                    let d = date_string(self.rng.range(lo, hi));
                    format!("strftime({x}, '%Y-%m') {op} '{}'", &d[..7])
                }
            },
            _ => format!("{x} {op} {}", self.literal(&c.def)),
        }
    }

    /// A select-list expression over the timestamp column `c`: its parts,
    /// truncations, text, differences (INTERVALs), moves by an interval.
    fn timestamp_expr(&mut self, c: &Col, scope: &[Col]) -> String {
        let x = &c.sql;
        match self.rng.below(16) {
            0 => format!("extract({} FROM {x})", self.rng.pick(TIMESTAMP_PARTS)),
            1 => format!(
                "{}('{}', {x})",
                self.rng.pick(&["date_part", "date_part", "datepart"]),
                self.rng.pick(TIMESTAMP_PARTS)
            ),
            2 => format!("date_trunc('{}', {x})", self.rng.pick(TRUNC_PARTS)),
            3 => format!("strftime({x}, '{}')", self.rng.pick(STRFTIME_FORMATS)),
            4 | 5 => {
                let other = self.other_timestamp(c, scope, true);
                format!("{x} - {other}")
            }
            6 => format!("{x} + {}", self.interval_literal()),
            7 => format!("{x} - {}", self.interval_literal()),
            // (not under DISTINCT: ages, and differences scaled, may be
            // equal but spelled differently, `1 month` and `30 days`; each
            // engine keeps one, whichever it met first)
            8 if !self.distinct => {
                let other = self.other_timestamp(c, scope, false);
                self.spelled = true;
                format!("age({x}, {other})")
            }
            9 => match (c.def.ty, self.rng.below(4)) {
                (_, 0) => format!("CAST({x} AS DATE)"),
                (_, 1) => format!("CAST({x} AS VARCHAR)"),
                (Ts, _) => format!("CAST({x} AS TIMESTAMPTZ)"),
                _ => format!("CAST({x} AS TIMESTAMP)"),
            },
            10 => match self.rng.below(3) {
                0 => format!("epoch_ms({x})"),
                1 => format!("epoch({x})"),
                _ => format!("epoch_ms(epoch_ms({x}) + {})", self.rng.range(-5000, 5000)),
            },
            11 => {
                // an interval scaled, or taken apart
                let other = self.other_timestamp(c, scope, true);
                match self.rng.below(4) {
                    0 if !self.distinct => {
                        self.spelled = true;
                        format!("({x} - {other}) * {}", self.rng.pick(&["2", "1.5", "0.25"]))
                    }
                    1 if !self.distinct => {
                        self.spelled = true;
                        format!("({x} - {other}) / {}", self.rng.range(2, 9))
                    }
                    _ => format!(
                        "extract({} FROM {x} - {other})",
                        self.rng.pick(INTERVAL_PARTS)
                    ),
                }
            }
            12 => format!("{} + {x}", self.interval_literal()),
            13 => {
                let f = *self
                    .rng
                    .pick(&["%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M", "%Y%m%d %H%M%S"]);
                format!("strptime(strftime({x}, '{f}'), '{f}')")
            }
            14 => {
                let other = self.other_timestamp(c, scope, false);
                format!(
                    "date_part('{}', age({x}, {other}))",
                    self.rng.pick(INTERVAL_PARTS)
                )
            }
            _ => x.clone(),
        }
    }

    /// A GROUP BY key over a timestamp column of `scope`, if it has one.
    fn timestamp_group_expr(&mut self, scope: &[Col]) -> Option<String> {
        let ts: Vec<&Col> = scope.iter().filter(|c| is_ts(c.def.ty)).collect();
        if ts.is_empty() {
            return None;
        }
        let x = self.rng.pick(&ts).sql.clone();
        Some(match self.rng.below(7) {
            0 | 1 => format!(
                "date_trunc('{}', {x})",
                self.rng
                    .pick(&["month", "year", "quarter", "day", "hour", "week", "decade"])
            ),
            2 => format!(
                "extract({} FROM {x})",
                self.rng
                    .pick(&["hour", "dow", "quarter", "month", "year", "isodow", "minute"])
            ),
            3 => format!(
                "strftime({x}, '{}')",
                self.rng.pick(&["%Y-%m", "%H", "%a", "%Y-%U"])
            ),
            4 => format!("CAST({x} AS DATE)"),
            5 => {
                // an INTERVAL key: days and a time (one way to write each)
                let d = date_string(self.rng.range(D1992, D1998));
                format!("date_trunc('hour', {x}) - TIMESTAMP '{d}'")
            }
            _ => x,
        })
    }

    /// An aggregate over a timestamp column of `scope`, if it has one.
    fn timestamp_aggregate(&mut self, scope: &[Col]) -> Option<String> {
        let ts: Vec<&Col> = scope.iter().filter(|c| is_ts(c.def.ty)).collect();
        if ts.is_empty() {
            return None;
        }
        let c = (*self.rng.pick(&ts)).clone();
        let x = &c.sql;
        Some(match self.rng.below(11) {
            0 | 1 => format!("{}({x})", self.rng.pick(&["min", "max"])),
            2 => format!("count(DISTINCT date_trunc('day', {x}))"),
            3 => format!("max({x}) - min({x})"),
            4 => {
                // (a difference of timestamps: days and a time, one way to
                // write each value, so min and max are one value)
                let other = self.other_timestamp(&c, scope, true);
                format!("{}({x} - {other})", self.rng.pick(&["min", "max"]))
            }
            5 => format!(
                "{}(extract({} FROM {x}))",
                self.rng.pick(&["avg", "sum", "max"]),
                self.rng.pick(&["hour", "minute", "epoch", "doy"])
            ),
            6 => format!(
                "{}(date_trunc('{}', {x}))",
                self.rng.pick(&["min", "max"]),
                self.rng.pick(&["hour", "month", "week"])
            ),
            7 => format!("min(strftime({x}, '{}'))", self.rng.pick(STRFTIME_FORMATS)),
            8 => format!(
                "{}({x} + {})",
                self.rng.pick(&["min", "max"]),
                self.interval_literal()
            ),
            9 => {
                // ages equal but spelled differently (`1 month`, `30 days`)
                // count once
                let other = self.other_timestamp(&c, scope, false);
                format!("count(DISTINCT age({x}, {other}))")
            }
            _ => format!("count({x})"),
        })
    }

    /// `ts(outer) op (SELECT min|max(ts(inner)) FROM t WHERE …)` over a
    /// table with dates, correlated on a key or not.
    fn timestamp_subquery_predicate(&mut self, outer: &Rel) -> Option<String> {
        let t = outer.table;
        let dates: Vec<&ColDef> = t.cols.iter().filter(|c| c.ty == Date).collect();
        if dates.is_empty() {
            return None;
        }
        let alias = self.alias("q");
        let key = *t
            .cols
            .iter()
            .filter(|c| c.ty == Int)
            .collect::<Vec<_>>()
            .first()?;
        let d = *self.rng.pick(&dates);
        let outer_ts = self.timestamp_from_date(
            &format!("{}.{}", outer.alias, d.name),
            &format!("{}.{}", outer.alias, key.name),
        );
        let d2 = *self.rng.pick(&dates);
        let inner_ts = self.timestamp_from_date(
            &format!("{alias}.{}", d2.name),
            &format!("{alias}.{}", key.name),
        );
        let mut conds = Vec::new();
        let keys: Vec<&ColDef> = t
            .cols
            .iter()
            .filter(|c| {
                c.ty == Int && (c.group || EDGES.iter().any(|e| e.0 == t.name && e.1 == c.name))
            })
            .collect();
        // (an IN may be correlated too, and under OR / NOT)
        let in_list = self.rng.chance(30);
        if !keys.is_empty() && self.rng.chance(70) {
            let k = self.rng.pick(&keys);
            conds.push(format!("{alias}.{} = {}.{}", k.name, outer.alias, k.name));
        }
        if self.rng.chance(40) {
            let inner_scope = columns_of(&[Rel {
                alias: alias.clone(),
                table: t,
                nullable: false,
            }]);
            conds.push(self.column_predicate(&inner_scope));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        Some(if in_list {
            let not = if self.rng.chance(30) { "NOT " } else { "" };
            format!(
                "{outer_ts} {not}IN (SELECT {inner_ts} FROM {} AS {alias}{filter})",
                t.name
            )
        } else {
            format!(
                "{outer_ts} {} (SELECT {}({inner_ts}) FROM {} AS {alias}{filter})",
                self.rng.pick(&["<", ">", "<=", ">="]),
                self.rng.pick(&["min", "max"]),
                t.name
            )
        })
    }
}
