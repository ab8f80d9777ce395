//! A byte-driven SQL generator: the fuzzer's bytes are read as a stream of
//! choices in a small SQL grammar (tables and columns of the fuzz session,
//! joins, subqueries, aggregates, casts, literals of every type). Mutating a
//! byte changes one choice, so libFuzzer explores the grammar instead of the
//! tokenizer. When the bytes run out every choice is 0: the simplest one.

/// A table of the fuzz session: name and (column, SQL type) pairs.
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [(&'static str, &'static str)],
}

/// The tables the fuzz session registers (see `lib.rs`).
pub const TABLES: &[TableDef] = &[
    TableDef {
        name: "t",
        columns: &[
            ("a", "BIGINT"),
            ("b", "INTEGER"),
            ("c", "DOUBLE"),
            ("d", "DECIMAL"),
            ("s", "VARCHAR"),
            ("dt", "DATE"),
            ("f", "BOOLEAN"),
        ],
    },
    TableDef {
        name: "nation",
        columns: &[
            ("n_nationkey", "BIGINT"),
            ("n_name", "VARCHAR"),
            ("n_regionkey", "BIGINT"),
            ("n_comment", "VARCHAR"),
        ],
    },
    TableDef {
        name: "region",
        columns: &[
            ("r_regionkey", "BIGINT"),
            ("r_name", "VARCHAR"),
            ("r_comment", "VARCHAR"),
        ],
    },
    TableDef {
        name: "orders",
        columns: &[
            ("o_orderkey", "BIGINT"),
            ("o_custkey", "BIGINT"),
            ("o_orderstatus", "VARCHAR"),
            ("o_totalprice", "DECIMAL"),
            ("o_orderdate", "DATE"),
            ("o_shippriority", "INTEGER"),
        ],
    },
    TableDef {
        name: "lineitem",
        columns: &[
            ("l_orderkey", "BIGINT"),
            ("l_partkey", "BIGINT"),
            ("l_linenumber", "INTEGER"),
            ("l_quantity", "DECIMAL"),
            ("l_extendedprice", "DECIMAL"),
            ("l_discount", "DECIMAL"),
            ("l_returnflag", "VARCHAR"),
            ("l_shipdate", "DATE"),
        ],
    },
];

const SCALAR_FUNCS: &[(&str, usize)] = &[
    ("abs", 1),
    ("round", 1),
    ("round", 2),
    ("upper", 1),
    ("lower", 1),
    ("length", 1),
    ("coalesce", 2),
    ("coalesce", 3),
    ("substring", 2),
    ("substring", 3),
    ("nosuchfunc", 1),
    ("uper", 1),
];
const AGG_FUNCS: &[&str] = &["count", "sum", "avg", "min", "max", "count", "sume"];
const BIN_OPS: &[&str] = &[
    "+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "AND", "OR", "||",
];
const TYPES: &[&str] = &[
    "BIGINT",
    "INTEGER",
    "SMALLINT",
    "TINYINT",
    "DOUBLE",
    "REAL",
    "DECIMAL(15,2)",
    "DECIMAL(38,10)",
    "DECIMAL(4,1)",
    "VARCHAR",
    "DATE",
    "BOOLEAN",
    "TIMESTAMP",
];
const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "7",
    "100",
    "2147483647",
    "2147483648",
    "-2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-100",
];
const DECIMALS: &[&str] = &[
    "0.0",
    "1.5",
    "-2.25",
    "0.05",
    "99999999999999.99",
    "12345678901234567890.123456789",
    "1e10",
    "1e-300",
    "1e400",
];
const STRINGS: &[&str] = &[
    "''",
    "'a'",
    "'A%'",
    "'%a_'",
    "'abc'",
    "'1'",
    "'1.5'",
    "'x''y'",
    "'é'",
    "'\\'",
    "'%'",
    "'1995-03-15'",
    "'nan'",
    "'inf'",
    "'true'",
];
const DATES: &[&str] = &[
    "DATE '1995-03-15'",
    "DATE '1970-01-01'",
    "DATE '2000-02-29'",
    "DATE '2023-02-30'",
    "DATE '9999-12-31'",
    "DATE '-0001-01-01'",
    "DATE 'abc'",
];
const INTERVALS: &[&str] = &[
    "INTERVAL '1' DAY",
    "INTERVAL '3' MONTH",
    "INTERVAL '1' YEAR",
    "INTERVAL '-90' DAY",
    "INTERVAL '2147483647' DAY",
    "INTERVAL '1' WEEK",
];

pub struct Gen<'a> {
    data: &'a [u8],
    pos: usize,
    depth: u32,
    out: String,
    /// Table aliases in scope, innermost query last: (alias, table).
    scopes: Vec<Vec<(String, usize)>>,
    aliases: u32,
}

/// Generates one SQL query from `data`.
pub fn generate(data: &[u8]) -> String {
    let mut g = Gen {
        data,
        pos: 0,
        depth: 0,
        out: String::new(),
        scopes: vec![],
        aliases: 0,
    };
    g.query();
    g.out
}

impl Gen<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn pick(&mut self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            self.byte() as usize % n
        }
    }

    fn chance(&mut self, in_256: u8) -> bool {
        !self.exhausted() && self.byte() < in_256
    }

    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn query(&mut self) {
        self.depth += 1;
        self.scopes.push(vec![]);
        if self.depth < 3 && self.chance(20) {
            self.w("WITH cte AS (");
            self.query();
            self.w(") ");
        }
        self.w("SELECT ");
        if self.chance(30) {
            self.w("DISTINCT ");
        }
        // FROM first (to know the scope), written after the items.
        let saved = std::mem::take(&mut self.out);
        if !self.chance(20) {
            self.w(" FROM ");
            self.from_item();
            let joins = self.pick(3);
            for _ in 0..joins {
                if self.chance(60) {
                    self.w(", ");
                    self.from_item();
                } else {
                    let kind = ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN", "INNER JOIN"];
                    let k = self.pick(kind.len());
                    self.w(&format!(" {} ", kind[k]));
                    self.from_item();
                    self.w(" ON ");
                    self.expr(2);
                }
            }
        }
        let from = std::mem::replace(&mut self.out, saved);
        let items = 1 + self.pick(4);
        let grouped = self.chance(90);
        for i in 0..items {
            if i > 0 {
                self.w(", ");
            }
            if self.chance(15) {
                self.w("*");
            } else if grouped && self.chance(128) {
                self.aggregate(2);
            } else {
                self.expr(3);
            }
            if self.chance(60) {
                self.w(&format!(" AS x{i}"));
            }
        }
        self.out.push_str(&from);
        if self.chance(150) {
            self.w(" WHERE ");
            self.expr(3);
        }
        if grouped {
            self.w(" GROUP BY ");
            let n = 1 + self.pick(2);
            for i in 0..n {
                if i > 0 {
                    self.w(", ");
                }
                if self.chance(80) {
                    let k = 1 + self.pick(items);
                    self.w(&k.to_string());
                } else {
                    self.expr(1);
                }
            }
            if self.chance(60) {
                self.w(" HAVING ");
                self.aggregate(2);
                self.w(" > ");
                self.literal();
            }
        }
        if self.chance(120) {
            self.w(" ORDER BY ");
            let n = 1 + self.pick(items);
            for i in 0..n {
                if i > 0 {
                    self.w(", ");
                }
                if self.chance(160) {
                    self.w(&(i + 1).to_string());
                } else {
                    self.expr(1);
                }
                match self.pick(4) {
                    1 => self.w(" DESC"),
                    2 => self.w(" ASC NULLS FIRST"),
                    3 => self.w(" DESC NULLS LAST"),
                    _ => {}
                }
            }
        }
        if self.chance(100) {
            let n = INTS[self.pick(INTS.len())];
            self.w(&format!(" LIMIT {n}"));
            if self.chance(60) {
                let n = INTS[self.pick(INTS.len())];
                self.w(&format!(" OFFSET {n}"));
            }
        }
        self.scopes.pop();
        self.depth -= 1;
    }

    fn from_item(&mut self) {
        self.aliases += 1;
        let alias = format!("t{}", self.aliases);
        if self.depth < 3 && self.chance(30) {
            self.w("(");
            self.query();
            self.w(&format!(") AS {alias}"));
            // Columns of a derived table are unknown here: use any names.
            return;
        }
        let t = self.pick(TABLES.len() + 1);
        if t == TABLES.len() {
            self.w(&format!("cte AS {alias}"));
            return;
        }
        self.w(&format!("{} AS {alias}", TABLES[t].name));
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((alias, t));
        }
    }

    fn column(&mut self) {
        let scope: Vec<(String, usize)> = self.scopes.iter().flatten().cloned().collect();
        if scope.is_empty() || self.chance(10) {
            let t = self.pick(TABLES.len());
            let cols = TABLES[t].columns;
            let c = self.pick(cols.len());
            let name = cols[c].0;
            if self.chance(10) {
                self.w(&format!("{name}x"));
            } else {
                self.w(name);
            }
            return;
        }
        let (alias, t) = &scope[self.pick(scope.len())];
        let cols = TABLES[*t].columns;
        let c = self.pick(cols.len());
        if self.chance(128) {
            self.w(&format!("{alias}.{}", cols[c].0));
        } else {
            self.w(cols[c].0);
        }
    }

    fn literal(&mut self) {
        match self.pick(8) {
            0 | 1 => {
                let v = INTS[self.pick(INTS.len())];
                self.w(v)
            }
            2 => {
                let v = DECIMALS[self.pick(DECIMALS.len())];
                self.w(v)
            }
            3 => {
                let v = STRINGS[self.pick(STRINGS.len())];
                self.w(v)
            }
            4 => {
                let v = DATES[self.pick(DATES.len())];
                self.w(v)
            }
            5 => self.w("NULL"),
            6 => {
                let v = ["TRUE", "FALSE"][self.pick(2)];
                self.w(v)
            }
            _ => {
                let v = INTERVALS[self.pick(INTERVALS.len())];
                self.w(v)
            }
        }
    }

    fn aggregate(&mut self, budget: u32) {
        let f = AGG_FUNCS[self.pick(AGG_FUNCS.len())];
        if f == "count" && self.chance(100) {
            self.w("count(*)");
            return;
        }
        self.w(f);
        self.w("(");
        if self.chance(40) {
            self.w("DISTINCT ");
        }
        self.expr(budget.min(1));
        self.w(")");
    }

    fn expr(&mut self, budget: u32) {
        if budget == 0 || self.exhausted() {
            if self.chance(170) {
                self.column();
            } else {
                self.literal();
            }
            return;
        }
        let b = budget - 1;
        match self.pick(16) {
            0 | 1 => self.column(),
            2 => self.literal(),
            3..=5 => {
                self.w("(");
                self.expr(b);
                let op = BIN_OPS[self.pick(BIN_OPS.len())];
                self.w(&format!(" {op} "));
                self.expr(b);
                self.w(")");
            }
            6 => {
                let (f, n) = SCALAR_FUNCS[self.pick(SCALAR_FUNCS.len())];
                self.w(f);
                self.w("(");
                for i in 0..n {
                    if i > 0 {
                        self.w(", ");
                    }
                    self.expr(b);
                }
                self.w(")");
            }
            7 => {
                self.w("CAST(");
                self.expr(b);
                let t = TYPES[self.pick(TYPES.len())];
                self.w(&format!(" AS {t})"));
            }
            8 => {
                self.w("CASE WHEN ");
                self.expr(b);
                self.w(" THEN ");
                self.expr(b);
                if self.chance(128) {
                    self.w(" ELSE ");
                    self.expr(b);
                }
                self.w(" END");
            }
            9 => {
                self.expr(b);
                if self.chance(60) {
                    self.w(" NOT");
                }
                self.w(" IN (");
                if self.depth < 3 && self.chance(128) {
                    self.query();
                } else {
                    let n = 1 + self.pick(4);
                    for i in 0..n {
                        if i > 0 {
                            self.w(", ");
                        }
                        self.literal();
                    }
                }
                self.w(")");
            }
            10 if self.depth < 3 => {
                if self.chance(60) {
                    self.w("NOT ");
                }
                self.w("EXISTS (");
                self.query();
                self.w(")");
            }
            11 if self.depth < 3 => {
                self.w("(");
                self.query();
                self.w(")");
            }
            12 => {
                self.expr(b);
                self.w(" BETWEEN ");
                self.expr(0);
                self.w(" AND ");
                self.expr(0);
            }
            13 => {
                self.expr(b);
                let op = [" LIKE ", " NOT LIKE ", " ILIKE "][self.pick(3)];
                self.w(op);
                let v = STRINGS[self.pick(STRINGS.len())];
                self.w(v);
            }
            14 => {
                self.expr(b);
                let op = [" IS NULL", " IS NOT NULL"][self.pick(2)];
                self.w(op);
            }
            _ => match self.pick(4) {
                0 => {
                    self.w("NOT (");
                    self.expr(b);
                    self.w(")");
                }
                1 => {
                    self.w("-(");
                    self.expr(b);
                    self.w(")");
                }
                2 => {
                    let part = ["year", "month", "day"][self.pick(3)];
                    self.w(&format!("extract({part} FROM "));
                    self.expr(b);
                    self.w(")");
                }
                _ => self.aggregate(b),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generates_queries() {
        assert!(super::generate(&[]).starts_with("SELECT "));
        let q = super::generate(&[7, 200, 13, 99, 1, 2, 3, 250, 4, 5, 6, 7, 8, 9, 10]);
        assert!(q.contains("SELECT"), "{q}");
    }
}
