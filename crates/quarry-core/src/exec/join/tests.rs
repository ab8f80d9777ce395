use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Array, Int64Array, StringArray, StringViewArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use datafusion_common::ScalarValue;

use super::grace::GRACE_PARTITIONS;
use super::hash_table::{JoinHashTable, KeyIndex, PARALLEL_BUILD_ROWS};
use super::probe::HashJoinOp;
use super::sorted_index::sort_ids;
use super::*;
use crate::error::{QuarryError, Result};
use crate::exec::operator::{Operator, SpillCount};
use crate::plan::{BinaryOp, Expr, JoinKind};
use crate::runtime::memory::MemoryPool;

fn ints(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

#[test]
fn a_large_table_copied_and_indexed_on_two_threads_joins_like_a_small_one() {
    // More rows than PARALLEL_BUILD_ROWS, in several batches, with NULL
    // keys, duplicates and two integer keys (packed).
    let n = PARALLEL_BUILD_ROWS as i64 + 40_000;
    let right_k: Vec<Option<i64>> = (0..n)
        .map(|i| (i % 1000 != 7).then_some(i % 50_000))
        .collect();
    let right_u: Vec<Option<i64>> = (0..n).map(|i| Some(i % 7)).collect();
    let right_v: Vec<Option<i64>> = (0..n).map(Some).collect();
    let r = batch(vec![
        ("k", ints(&right_k)),
        ("u", ints(&right_u)),
        ("v", ints(&right_v)),
    ]);
    let pieces: Vec<RecordBatch> = (0..n as usize)
        .step_by(30_000)
        .map(|start| r.slice(start, 30_000.min(n as usize - start)))
        .collect();
    let left_k: Vec<Option<i64>> = (0..20_000).map(|i| Some(i * 3)).collect();
    let left_u: Vec<Option<i64>> = (0..20_000).map(|i| Some(i % 7)).collect();
    let l = batch(vec![("k", ints(&left_k)), ("u", ints(&left_u))]);
    let out = run_chunked(
        JoinKind::Inner,
        &l,
        &pieces,
        &r.schema(),
        &[col(0), col(1)],
        &[col(0), col(1)],
        None,
        4096,
    );
    let mut expected = vec![];
    for (lk, lu) in left_k.iter().zip(&left_u) {
        for j in 0..n as usize {
            if right_k[j].is_some() && right_k[j] == *lk && right_u[j] == *lu {
                let (k, u) = (lk.unwrap(), lu.unwrap());
                expected.push(format!("{k}|{u}|{k}|{u}|{j}"));
            }
        }
    }
    expected.sort();
    assert!(expected.len() > 1000);
    assert_eq!(rows(&out), expected);
}

fn strs(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

fn col(i: usize) -> Expr {
    Expr::Column(i)
}

fn ne_str(c: usize, s: &str) -> Expr {
    Expr::binary(
        BinaryOp::NotEq,
        col(c),
        Expr::lit(ScalarValue::Utf8(Some(s.into()))),
    )
}

fn output_schema(left: &Schema, right: &Schema, kind: JoinKind) -> SchemaRef {
    if matches!(kind, JoinKind::RightSemi | JoinKind::RightAnti) {
        return Arc::new(right.clone());
    }
    let mut fields: Vec<Field> = left
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    match kind {
        JoinKind::Semi | JoinKind::Anti => {}
        JoinKind::Mark => fields.push(Field::new("mark", DataType::Boolean, true)),
        _ => fields.extend(
            right
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true)),
        ),
    }
    Arc::new(Schema::new(fields))
}

/// Sorted rows, columns joined by `|`, NULL spelled out.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = vec![];
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        "NULL".to_string()
                    } else {
                        array_value_to_string(c, r).unwrap()
                    }
                })
                .collect();
            out.push(cells.join("|"));
        }
    }
    out.sort();
    out
}

/// Runs one join, pushing `probe_chunk` rows at a time.
#[allow(clippy::too_many_arguments)]
fn run_chunked(
    kind: JoinKind,
    left: &RecordBatch,
    right: &[RecordBatch],
    right_schema: &SchemaRef,
    left_keys: &[Expr],
    right_keys: &[Expr],
    filter: Option<Expr>,
    probe_chunk: usize,
) -> Vec<RecordBatch> {
    let table =
        Arc::new(JoinHashTable::build(right_schema.clone(), right.to_vec(), right_keys).unwrap());
    let schema = output_schema(&left.schema(), right_schema, kind);
    let mut op = HashJoinOp::new(
        kind,
        table,
        left_keys.to_vec(),
        filter,
        left.schema(),
        schema.clone(),
    )
    .unwrap();
    let mut out = vec![];
    let mut start = 0;
    while start < left.num_rows() {
        let len = probe_chunk.min(left.num_rows() - start);
        op.push(left.slice(start, len), &mut out).unwrap();
        start += len;
    }
    op.finish(&mut out).unwrap();
    for b in &out {
        assert_eq!(b.schema(), schema);
        assert!(b.num_rows() > 0 && b.num_rows() <= MAX_BATCH_ROWS);
    }
    out
}

/// Runs one join with the whole probe side in one batch and in batches of
/// two rows; both must agree. Returns the sorted rows.
fn run(
    kind: JoinKind,
    left: &RecordBatch,
    right: &RecordBatch,
    left_keys: &[Expr],
    right_keys: &[Expr],
    filter: Option<Expr>,
) -> Vec<String> {
    let rs = right.schema();
    // The build side arrives in several batches too.
    let half = right.num_rows() / 2;
    let parts = vec![
        right.slice(0, half),
        right.slice(half, right.num_rows() - half),
    ];
    let whole = rows(&run_chunked(
        kind,
        left,
        &parts,
        &rs,
        left_keys,
        right_keys,
        filter.clone(),
        usize::MAX,
    ));
    let chunked = rows(&run_chunked(
        kind, left, &parts, &rs, left_keys, right_keys, filter, 2,
    ));
    assert_eq!(whole, chunked, "{kind:?}: chunked probe differs");
    whole
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn left_table() -> RecordBatch {
    batch(vec![
        (
            "id",
            ints(&[Some(1), Some(2), Some(2), Some(3), None, Some(5)]),
        ),
        (
            "lv",
            strs(&[
                Some("a"),
                Some("b"),
                Some("b2"),
                Some("c"),
                Some("n"),
                Some("e"),
            ]),
        ),
    ])
}

fn right_table() -> RecordBatch {
    batch(vec![
        ("rid", ints(&[Some(1), Some(2), Some(2), Some(4), None])),
        (
            "rv",
            strs(&[Some("x"), Some("y"), Some("y2"), Some("z"), Some("rn")]),
        ),
    ])
}

const INNER: &[&str] = &["1|a|1|x", "2|b|2|y", "2|b|2|y2", "2|b2|2|y", "2|b2|2|y2"];
const LEFT_UNMATCHED: &[&str] = &["3|c|NULL|NULL", "NULL|n|NULL|NULL", "5|e|NULL|NULL"];
const RIGHT_UNMATCHED: &[&str] = &["NULL|NULL|4|z", "NULL|NULL|NULL|rn"];

fn simple(kind: JoinKind) -> Vec<String> {
    run(
        kind,
        &left_table(),
        &right_table(),
        &[col(0)],
        &[col(0)],
        None,
    )
}

#[test]
fn inner_with_duplicates_and_null_keys() {
    assert_eq!(simple(JoinKind::Inner), sorted(INNER));
}

#[test]
fn left_right_full() {
    let left: Vec<&str> = INNER.iter().chain(LEFT_UNMATCHED).copied().collect();
    assert_eq!(simple(JoinKind::Left), sorted(&left));
    let right: Vec<&str> = INNER.iter().chain(RIGHT_UNMATCHED).copied().collect();
    assert_eq!(simple(JoinKind::Right), sorted(&right));
    let full: Vec<&str> = INNER
        .iter()
        .chain(LEFT_UNMATCHED)
        .chain(RIGHT_UNMATCHED)
        .copied()
        .collect();
    assert_eq!(simple(JoinKind::Full), sorted(&full));
}

#[test]
fn right_unmatched_come_at_finish() {
    let l = left_table();
    let r = right_table();
    let table = Arc::new(JoinHashTable::build(r.schema(), vec![r.clone()], &[col(0)]).unwrap());
    let schema = output_schema(&l.schema(), &r.schema(), JoinKind::Right);
    let mut op = HashJoinOp::new(
        JoinKind::Right,
        table,
        vec![col(0)],
        None,
        l.schema(),
        schema,
    )
    .unwrap();
    let mut out = vec![];
    op.push(l, &mut out).unwrap();
    assert_eq!(rows(&out), sorted(INNER));
    let mut fin = vec![];
    op.finish(&mut fin).unwrap();
    assert_eq!(rows(&fin), sorted(RIGHT_UNMATCHED));
}

#[test]
fn semi_anti() {
    assert_eq!(simple(JoinKind::Semi), sorted(&["1|a", "2|b", "2|b2"]));
    assert_eq!(simple(JoinKind::Anti), sorted(&["3|c", "NULL|n", "5|e"]));
}

#[test]
fn right_semi_anti_emit_build_rows_at_finish() {
    // The build (right) rows with / without a matching probe row, once each.
    assert_eq!(simple(JoinKind::RightSemi), sorted(&["1|x", "2|y", "2|y2"]));
    assert_eq!(simple(JoinKind::RightAnti), sorted(&["4|z", "NULL|rn"]));
    // A key match the filter rejects is no match: rv <> 'y' keeps 1|x, 2|y2.
    let filter = Expr::binary(
        BinaryOp::NotEq,
        col(3),
        Expr::Literal(ScalarValue::Utf8(Some("y".into()))),
    );
    let got = run(
        JoinKind::RightSemi,
        &left_table(),
        &right_table(),
        &[col(0)],
        &[col(0)],
        Some(filter),
    );
    assert_eq!(got, sorted(&["1|x", "2|y2"]));
}

#[test]
fn mark_build_with_null_key() {
    // The build side has a NULL key: every unmatched row is NULL.
    assert_eq!(
        simple(JoinKind::Mark),
        sorted(&[
            "1|a|true",
            "2|b|true",
            "2|b2|true",
            "3|c|NULL",
            "NULL|n|NULL",
            "5|e|NULL"
        ])
    );
}

#[test]
fn mark_build_without_null_key() {
    let r = right_table().slice(0, 4);
    let got = run(
        JoinKind::Mark,
        &left_table(),
        &r,
        &[col(0)],
        &[col(0)],
        None,
    );
    assert_eq!(
        got,
        sorted(&[
            "1|a|true",
            "2|b|true",
            "2|b2|true",
            "3|c|false",
            "NULL|n|NULL",
            "5|e|false"
        ])
    );
}

#[test]
fn mark_empty_build() {
    let r = right_table().slice(0, 0);
    let got = run(
        JoinKind::Mark,
        &left_table(),
        &r,
        &[col(0)],
        &[col(0)],
        None,
    );
    assert_eq!(
        got,
        sorted(&[
            "1|a|false",
            "2|b|false",
            "2|b2|false",
            "3|c|false",
            "NULL|n|false",
            "5|e|false"
        ])
    );
}

#[test]
fn empty_build_side() {
    let l = left_table();
    let r = right_table().slice(0, 0);
    let run_kind = |k| run(k, &l, &r, &[col(0)], &[col(0)], None);
    assert!(run_kind(JoinKind::Inner).is_empty());
    assert!(run_kind(JoinKind::Semi).is_empty());
    assert!(run_kind(JoinKind::Right).is_empty());
    assert_eq!(run_kind(JoinKind::Anti).len(), 6);
    let left = run_kind(JoinKind::Left);
    let all_null_right: Vec<&str> = vec![
        "1|a|NULL|NULL",
        "2|b|NULL|NULL",
        "2|b2|NULL|NULL",
        "3|c|NULL|NULL",
        "NULL|n|NULL|NULL",
        "5|e|NULL|NULL",
    ];
    assert_eq!(left, sorted(&all_null_right));
    assert_eq!(run_kind(JoinKind::Full), sorted(&all_null_right));

    let table = Arc::new(JoinHashTable::build(r.schema(), vec![], &[col(0)]).unwrap());
    let schema = output_schema(&l.schema(), &r.schema(), JoinKind::Inner);
    let op = HashJoinOp::new(
        JoinKind::Inner,
        table,
        vec![col(0)],
        None,
        l.schema(),
        schema,
    )
    .unwrap();
    assert!(op.is_done());
}

#[test]
fn residual_filter() {
    // rv <> 'y2' AND lv <> 'a': key 1 matches but the filter rejects it.
    let filter = Some(Expr::binary(BinaryOp::And, ne_str(3, "y2"), ne_str(1, "a")));
    let (l, r) = (left_table(), right_table());
    let go = |k| run(k, &l, &r, &[col(0)], &[col(0)], filter.clone());
    let inner = ["2|b|2|y", "2|b2|2|y"];
    assert_eq!(go(JoinKind::Inner), sorted(&inner));
    let left_un = [
        "1|a|NULL|NULL",
        "3|c|NULL|NULL",
        "NULL|n|NULL|NULL",
        "5|e|NULL|NULL",
    ];
    let right_un = [
        "NULL|NULL|1|x",
        "NULL|NULL|2|y2",
        "NULL|NULL|4|z",
        "NULL|NULL|NULL|rn",
    ];
    let cat = |parts: &[&[&str]]| -> Vec<String> {
        sorted(
            &parts
                .iter()
                .flat_map(|p| p.iter().copied())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(go(JoinKind::Left), cat(&[&inner, &left_un]));
    assert_eq!(go(JoinKind::Right), cat(&[&inner, &right_un]));
    assert_eq!(go(JoinKind::Full), cat(&[&inner, &left_un, &right_un]));
    assert_eq!(go(JoinKind::Semi), sorted(&["2|b", "2|b2"]));
    assert_eq!(go(JoinKind::Anti), sorted(&["1|a", "3|c", "NULL|n", "5|e"]));
    // Without the build row of NULL key, a rejected match is false.
    let r4 = r.slice(0, 4);
    let mark = run(
        JoinKind::Mark,
        &l,
        &r4,
        &[col(0)],
        &[col(0)],
        filter.clone(),
    );
    assert_eq!(
        mark,
        sorted(&[
            "1|a|false",
            "2|b|true",
            "2|b2|true",
            "3|c|false",
            "NULL|n|NULL",
            "5|e|false"
        ])
    );
}

#[test]
fn filter_null_counts_as_false() {
    // lv <> NULL is NULL for every pair: nothing matches.
    let filter = Some(Expr::binary(
        BinaryOp::NotEq,
        col(1),
        Expr::lit(ScalarValue::Utf8(None)),
    ));
    let (l, r) = (left_table(), right_table());
    assert!(run(
        JoinKind::Inner,
        &l,
        &r,
        &[col(0)],
        &[col(0)],
        filter.clone()
    )
    .is_empty());
    assert_eq!(
        run(JoinKind::Anti, &l, &r, &[col(0)], &[col(0)], filter).len(),
        6
    );
}

#[test]
fn composite_keys() {
    let l = batch(vec![
        ("k1", ints(&[Some(1), Some(1), Some(2), Some(1), Some(7)])),
        (
            "k2",
            strs(&[Some("a"), Some("b"), Some("a"), None, Some("q")]),
        ),
        (
            "v",
            ints(&[Some(10), Some(11), Some(12), Some(13), Some(14)]),
        ),
    ]);
    let r = batch(vec![
        ("k1", ints(&[Some(1), Some(1), Some(2), None, Some(1)])),
        (
            "k2",
            strs(&[Some("a"), Some("a"), Some("b"), Some("a"), Some("b")]),
        ),
        (
            "w",
            ints(&[Some(100), Some(101), Some(102), Some(103), Some(104)]),
        ),
    ]);
    let keys = [col(0), col(1)];
    assert_eq!(
        run(JoinKind::Inner, &l, &r, &keys, &keys, None),
        sorted(&["1|a|10|1|a|100", "1|a|10|1|a|101", "1|b|11|1|b|104"])
    );
    assert_eq!(
        run(JoinKind::Full, &l, &r, &keys, &keys, None),
        sorted(&[
            "1|a|10|1|a|100",
            "1|a|10|1|a|101",
            "1|b|11|1|b|104",
            "2|a|12|NULL|NULL|NULL",
            "1|NULL|13|NULL|NULL|NULL",
            "7|q|14|NULL|NULL|NULL",
            "NULL|NULL|NULL|2|b|102",
            "NULL|NULL|NULL|NULL|a|103",
        ])
    );
    assert_eq!(
        run(JoinKind::Anti, &l, &r, &keys, &keys, None),
        sorted(&["2|a|12", "1|NULL|13", "7|q|14"])
    );
    // The build side has a NULL key (row 3): unmatched marks are NULL.
    assert_eq!(
        run(JoinKind::Mark, &l, &r, &keys, &keys, None),
        sorted(&[
            "1|a|10|true",
            "1|b|11|true",
            "2|a|12|NULL",
            "1|NULL|13|NULL",
            "7|q|14|NULL"
        ])
    );
    let r3 = r.slice(0, 3);
    assert_eq!(
        run(JoinKind::Mark, &l, &r3, &keys, &keys, None),
        sorted(&[
            "1|a|10|true",
            "1|b|11|false",
            "2|a|12|false",
            "1|NULL|13|NULL",
            "7|q|14|false"
        ])
    );
}

#[test]
fn utf8view_keys() {
    let view = |v: &[Option<&str>]| -> ArrayRef { Arc::new(StringViewArray::from(v.to_vec())) };
    let long = "a string longer than twelve bytes";
    let l = batch(vec![
        (
            "k",
            view(&[Some("a"), Some(long), None, Some("zz"), Some(long)]),
        ),
        ("v", ints(&[Some(1), Some(2), Some(3), Some(4), Some(5)])),
    ]);
    let r = batch(vec![
        ("k", view(&[Some(long), Some("a"), Some("b"), None])),
        ("w", ints(&[Some(10), Some(20), Some(30), Some(40)])),
    ]);
    let got = run(JoinKind::Inner, &l, &r, &[col(0)], &[col(0)], None);
    assert_eq!(
        got,
        sorted(&[
            "a|1|a|20",
            &format!("{long}|2|{long}|10"),
            &format!("{long}|5|{long}|10"),
        ])
    );
    let semi = run(JoinKind::Semi, &l, &r, &[col(0)], &[col(0)], None);
    assert_eq!(
        semi,
        sorted(&["a|1", &format!("{long}|2"), &format!("{long}|5")])
    );
}

#[test]
fn int32_and_date32_keys() {
    let l = batch(vec![(
        "k",
        Arc::new(Int32Array::from(vec![Some(-3), Some(7), None, Some(7)])) as ArrayRef,
    )]);
    let r = batch(vec![(
        "k",
        Arc::new(Int32Array::from(vec![Some(7), Some(-3), Some(8)])) as ArrayRef,
    )]);
    assert_eq!(
        run(JoinKind::Inner, &l, &r, &[col(0)], &[col(0)], None),
        sorted(&["-3|-3", "7|7", "7|7"])
    );
    let dates = |v: Vec<Option<i32>>| -> ArrayRef { Arc::new(arrow::array::Date32Array::from(v)) };
    let l = batch(vec![("d", dates(vec![Some(19000), Some(19001), None]))]);
    let r = batch(vec![("d", dates(vec![Some(19001), Some(19001), Some(5)]))]);
    assert_eq!(
        run(JoinKind::Left, &l, &r, &[col(0)], &[col(0)], None),
        sorted(&[
            "2022-01-08|NULL",
            "2022-01-09|2022-01-09",
            "2022-01-09|2022-01-09",
            "NULL|NULL"
        ])
    );
}

#[test]
fn key_type_mismatch_is_an_error() {
    let l = left_table();
    let r = right_table();
    let table = Arc::new(JoinHashTable::build(r.schema(), vec![r.clone()], &[col(0)]).unwrap());
    let schema = output_schema(&l.schema(), &r.schema(), JoinKind::Inner);
    assert!(HashJoinOp::new(
        JoinKind::Inner,
        table,
        vec![col(1)],
        None,
        l.schema(),
        schema
    )
    .is_err());
}

#[test]
fn index_choice() {
    let build = |keys: Vec<Option<i64>>| {
        let b = batch(vec![("k", ints(&keys))]);
        JoinHashTable::build(b.schema(), vec![b], &[col(0)]).unwrap()
    };
    assert!(matches!(
        build(vec![Some(5), Some(9), None]).index,
        KeyIndex::Direct { .. }
    ));
    assert!(matches!(
        build(vec![Some(i64::MIN), Some(i64::MAX), Some(0)]).index,
        KeyIndex::IntHash { .. }
    ));
    assert!(matches!(
        build((0..=20).map(|i| Some(i * 100)).collect()).index,
        KeyIndex::Ranked { .. }
    ));
    assert!(matches!(build(vec![None, None]).index, KeyIndex::NoKeys));
}

#[test]
fn sparse_integer_keys_get_a_bitmap_that_agrees_with_the_table() {
    // every 500th key up to 515 000: too sparse for a direct or ranked table
    let keys: Vec<Option<i64>> = (0..1031).map(|i| Some(i * 500)).collect();
    let r = batch(vec![("k", ints(&keys))]);
    let table = JoinHashTable::build(r.schema(), vec![r.clone()], &[col(0)]).unwrap();
    assert!(
        matches!(
            table.index,
            KeyIndex::IntHash {
                present: Some(_),
                ..
            }
        ),
        "{table:?}"
    );
    let probe: Vec<Option<i64>> = (-5..520_000).map(Some).chain([None]).collect();
    let l = batch(vec![("p", ints(&probe))]);
    let matched = run(JoinKind::Semi, &l, &r, &[col(0)], &[col(0)], None);
    let expected: Vec<String> = (0..1031).map(|i| (i * 500).to_string()).collect();
    assert_eq!(
        matched,
        sorted(&expected.iter().map(String::as_str).collect::<Vec<_>>())
    );
}

#[test]
fn a_million_keys_over_a_range_of_64_million_are_ranked() {
    // (every key twice, the second copy's row after all first copies)
    let keys: Vec<Option<i64>> = (0..2_000_000).map(|i| Some(i % 1_000_000 * 64)).collect();
    let rows: Vec<Option<i64>> = (0..2_000_000).map(Some).collect();
    let r = batch(vec![("k", ints(&keys)), ("row", ints(&rows))]);
    let table = JoinHashTable::build(r.schema(), vec![r.clone()], &[col(0)]).unwrap();
    assert!(matches!(table.index, KeyIndex::Ranked { .. }), "{table:?}");
    let probe: Vec<Option<i64>> = [-64, 0, 63, 64, 640_000, 64 * 999_999 + 1, 64 * 999_999]
        .into_iter()
        .map(Some)
        .chain([None])
        .collect();
    let l = batch(vec![("p", ints(&probe))]);
    let joined = run(JoinKind::Inner, &l, &r, &[col(0)], &[col(0)], None);
    assert_eq!(
        joined,
        sorted(&[
            "0|0|0",
            "0|0|1000000",
            "64|64|1",
            "64|64|1000001",
            "640000|640000|10000",
            "640000|640000|1010000",
            "63999936|63999936|999999",
            "63999936|63999936|1999999",
        ])
    );
}

/// A small deterministic generator (no rand dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Inner and left joins against a nested-loop reference, on random keys
/// with duplicates, NULLs and probe keys outside the build range, for
/// every kind of index.
#[test]
fn random_against_nested_loop() {
    let mut rng = Lcg(42);
    let scenarios: [(i64, i64, usize, &str); 8] = [
        (1, 1, 0, "direct"),
        (400, 1, 0, "ranked"),
        (1 << 40, 1, 0, "int hash"),
        (1, 1, 1, "row hash"),
        (1, 1, 2, "packed direct"),
        (100, 1, 2, "packed ranked"),
        (1 << 20, 1 << 20, 2, "packed int hash"),
        (1 << 40, 1 << 40, 2, "row hash"),
    ];
    for (spread_k, spread_u, mode, index) in scenarios {
        // Left keys range wider than right keys: some probes miss the range.
        let mut gen = |n: usize, m: u64| -> Vec<Option<i64>> {
            (0..n)
                .map(|_| {
                    let v = rng.next() % m;
                    (v != 0).then_some((v as i64 - 30) * spread_k)
                })
                .collect()
        };
        let (lk, rk) = (gen(300, 60), gen(200, 50));
        let lt: Vec<String> = (0..lk.len()).map(|i| format!("t{}", i % 2)).collect();
        let rt: Vec<String> = (0..rk.len()).map(|i| format!("t{}", i % 2)).collect();
        let u = |n: usize, m: usize| -> Vec<Option<i64>> {
            (0..n)
                .map(|i| (i % 7 != 3).then_some(((i % m) as i64 - 1) * spread_u))
                .collect()
        };
        let (lu, ru) = (u(lk.len(), 5), u(rk.len(), 3));
        let str_col = |v: &[String]| strs(&v.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>());
        let l = batch(vec![
            ("k", ints(&lk)),
            ("t", str_col(&lt)),
            ("u", ints(&lu)),
        ]);
        let r = batch(vec![
            ("k", ints(&rk)),
            ("t", str_col(&rt)),
            ("u", ints(&ru)),
        ]);
        let keys: Vec<Expr> = match mode {
            0 => vec![col(0)],
            1 => vec![col(0), col(1)],
            _ => vec![col(0), col(2)],
        };
        let table = JoinHashTable::build(r.schema(), vec![r.clone()], &keys).unwrap();
        assert!(format!("{table:?}").contains(&format!("index: \"{index}\"")));
        let show = |v: &Option<i64>| v.map_or("NULL".to_string(), |v| v.to_string());
        let mut expected_inner = vec![];
        let mut expected_left = vec![];
        for i in 0..lk.len() {
            let left_row = format!("{}|{}|{}", show(&lk[i]), lt[i], show(&lu[i]));
            let mut any = false;
            for j in 0..rk.len() {
                let second = match mode {
                    0 => true,
                    1 => lt[i] == rt[j],
                    _ => lu[i].is_some() && lu[i] == ru[j],
                };
                if lk[i].is_some() && lk[i] == rk[j] && second {
                    any = true;
                    let row = format!("{left_row}|{}|{}|{}", show(&rk[j]), rt[j], show(&ru[j]));
                    expected_inner.push(row.clone());
                    expected_left.push(row);
                }
            }
            if !any {
                expected_left.push(format!("{left_row}|NULL|NULL|NULL"));
            }
        }
        expected_inner.sort();
        expected_left.sort();
        assert!(!expected_inner.is_empty());
        assert_eq!(
            run(JoinKind::Inner, &l, &r, &keys, &keys, None),
            expected_inner,
            "{index}"
        );
        assert_eq!(
            run(JoinKind::Left, &l, &r, &keys, &keys, None),
            expected_left,
            "{index}"
        );
    }
}

/// A range join (`l.k op r.k` looked up in the sorted build side)
/// against the same condition compared pair by pair, for every
/// inequality and every kind a range join is planned for, on random keys
/// with duplicates and NULLs, with and without a residual filter.
#[test]
fn range_joins_match_the_nested_loop() {
    let mut rng = Lcg(7);
    let mut gen = |n: usize| -> Vec<Option<i64>> {
        (0..n)
            .map(|_| {
                let v = rng.next() % 40;
                (v != 0).then_some(v as i64 - 20)
            })
            .collect()
    };
    let l = batch(vec![("k", ints(&gen(300))), ("u", ints(&gen(300)))]);
    let r = batch(vec![("k", ints(&gen(200))), ("u", ints(&gen(200)))]);
    let rs = r.schema();
    let constant = [Expr::Literal(ScalarValue::Int64(Some(1)))];
    let never = AtomicBool::new(false);
    for op in [BinaryOp::Lt, BinaryOp::LtEq, BinaryOp::Gt, BinaryOp::GtEq] {
        let table = Arc::new(
            JoinHashTable::build_cancellable(
                rs.clone(),
                vec![r.clone()],
                &[col(0)],
                Some(op),
                &never,
            )
            .unwrap(),
        );
        assert!(format!("{table:?}").contains("index: \"sorted\""));
        // the residual: l.u <> r.u
        let residual = Expr::binary(BinaryOp::NotEq, col(1), col(3));
        for kind in [
            JoinKind::Inner,
            JoinKind::Left,
            JoinKind::Semi,
            JoinKind::Anti,
        ] {
            for rest in [None, Some(residual.clone())] {
                let schema = output_schema(&l.schema(), &rs, kind);
                let mut join = HashJoinOp::new(
                    kind,
                    table.clone(),
                    vec![col(0)],
                    rest.clone(),
                    l.schema(),
                    schema,
                )
                .unwrap();
                let mut out = vec![];
                for start in (0..l.num_rows()).step_by(64) {
                    join.push(l.slice(start, 64.min(l.num_rows() - start)), &mut out)
                        .unwrap();
                }
                join.finish(&mut out).unwrap();
                let condition = Expr::binary(op, col(0), col(2));
                let pairwise = match &rest {
                    Some(f) => Expr::binary(BinaryOp::And, condition, f.clone()),
                    None => condition,
                };
                let want = run(kind, &l, &r, &constant, &constant, Some(pairwise));
                assert!(!want.is_empty());
                assert_eq!(rows(&out), want, "{kind:?} {op:?} {rest:?}");
            }
        }
    }
}

#[test]
fn sort_ids_merges_its_runs_and_stops_when_cancelled() {
    let mut rng = Lcg(3);
    let keys: Vec<u64> = (0..2_500_000).map(|_| rng.next() % 1000).collect();
    let mut ids: Vec<u32> = (0..keys.len() as u32).collect();
    let by_key = |a: u32, b: u32| keys[a as usize].cmp(&keys[b as usize]);
    sort_ids(&mut ids, by_key, &AtomicBool::new(false)).unwrap();
    assert!(ids
        .windows(2)
        .all(|w| keys[w[0] as usize] <= keys[w[1] as usize]));
    let mut seen = ids.clone();
    seen.sort_unstable();
    assert!(seen.iter().enumerate().all(|(i, &id)| id == i as u32));
    let r = sort_ids(&mut ids, by_key, &AtomicBool::new(true));
    assert!(matches!(r, Err(QuarryError::Cancelled)), "{r:?}");
}

#[test]
fn a_range_join_over_the_budget_is_a_clear_error() {
    let r = batch(vec![(
        "k",
        ints(&(0..20_000).map(Some).collect::<Vec<_>>()),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let pool = MemoryPool::new(16 << 10);
    let build = build_side(
        &r.schema(),
        &[col(0)],
        Some(BinaryOp::Lt),
        (0..20_000).step_by(1000).map(|s| Ok(r.slice(s, 1000))),
        &pool,
        dir.path(),
        &AtomicBool::new(false),
    );
    let Err(e) = build else {
        panic!("a range join's build side over the budget must fail")
    };
    assert!(e.to_string().contains("range join"), "{e}");
    assert!(e.to_string().contains("memory limit of 16.0 KiB"), "{e}");
    assert_eq!(pool.used(), 0);
}

/// One probe batch exploding into many output rows is split.
#[test]
fn large_output_is_split() {
    let n_left = 100;
    let n_right = 1000;
    let l = batch(vec![
        ("k", ints(&vec![Some(1); n_left])),
        ("i", ints(&(0..n_left as i64).map(Some).collect::<Vec<_>>())),
    ]);
    let r = batch(vec![
        ("k", ints(&vec![Some(1); n_right])),
        (
            "j",
            ints(&(0..n_right as i64).map(Some).collect::<Vec<_>>()),
        ),
    ]);
    let rs = r.schema();
    let count = |kind, filter: Option<Expr>, keys: &[Expr]| -> (usize, usize) {
        let out = run_chunked(
            kind,
            &l,
            std::slice::from_ref(&r),
            &rs,
            keys,
            keys,
            filter,
            usize::MAX,
        );
        (out.len(), out.iter().map(|b| b.num_rows()).sum())
    };
    let (batches, total) = count(JoinKind::Inner, None, &[col(0)]);
    assert_eq!(total, n_left * n_right);
    assert!(batches >= n_left * n_right / MAX_BATCH_ROWS);
    // With a filter that keeps every other build row.
    let even = Expr::binary(
        BinaryOp::Eq,
        Expr::binary(
            BinaryOp::Modulo,
            col(3),
            Expr::lit(ScalarValue::Int64(Some(2))),
        ),
        Expr::lit(ScalarValue::Int64(Some(0))),
    );
    let (_, total) = count(JoinKind::Left, Some(even.clone()), &[col(0)]);
    assert_eq!(total, n_left * n_right / 2);
    // A cross join (no keys) with the same filter.
    let (_, total) = count(JoinKind::Inner, Some(even), &[]);
    assert_eq!(total, n_left * n_right / 2);
    let (_, total) = count(JoinKind::Full, None, &[]);
    assert_eq!(total, n_left * n_right);
}

/// Probes 6 M Int64 keys against a 1.5 M-row build side (orders ⋈
/// lineitem shaped). `cargo test --release --lib exec::join -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_probe_6m_against_1_5m() {
    use std::time::Instant;
    let n_build = 1_500_000usize;
    let n_probe = 6_000_000usize;
    let batch_rows = 8192;
    // TPC-H-like sparse order keys: 8 used out of every 32.
    let order_key = |i: usize| ((i / 8) * 32 + i % 8 + 1) as i64;
    let mut rng = Lcg(7);
    for (name, scatter, keys) in [
        ("dense keys", 1i64, vec![col(0)]),
        ("sparse keys (hashed)", 0x9e37_79b9, vec![col(0)]),
        ("composite (Int64, Int64), packed", 1, vec![col(0), col(1)]),
        (
            "Utf8 key (incl. cast), rows",
            1,
            vec![col(0).cast(DataType::Utf8)],
        ),
    ] {
        for order in ["sequential", "random"] {
            let build_keys: Vec<i64> = (0..n_build).map(|i| order_key(i) * scatter).collect();
            let r = batch(vec![
                (
                    "o_orderkey",
                    Arc::new(Int64Array::from(build_keys)) as ArrayRef,
                ),
                (
                    "o_custkey",
                    Arc::new(Int64Array::from_iter_values(
                        (0..n_build as i64).map(|i| i % 150_000),
                    )),
                ),
            ]);
            let t0 = Instant::now();
            let table = Arc::new(JoinHashTable::build(r.schema(), vec![r.clone()], &keys).unwrap());
            let build_time = t0.elapsed();
            let probe_orders: Vec<usize> = (0..n_probe)
                .map(|i| {
                    if order == "sequential" {
                        i / 4
                    } else {
                        rng.next() as usize % n_build
                    }
                })
                .collect();
            let probe_keys: Vec<i64> = probe_orders
                .iter()
                .map(|&o| order_key(o) * scatter)
                .collect();
            let l = batch(vec![
                (
                    "l_orderkey",
                    Arc::new(Int64Array::from(probe_keys)) as ArrayRef,
                ),
                (
                    "l_custkey",
                    Arc::new(Int64Array::from_iter_values(
                        probe_orders.iter().map(|&o| o as i64 % 150_000),
                    )),
                ),
            ]);
            let schema = output_schema(&l.schema(), &r.schema(), JoinKind::Inner);
            let mut op = HashJoinOp::new(
                JoinKind::Inner,
                table.clone(),
                keys.clone(),
                None,
                l.schema(),
                schema,
            )
            .unwrap();
            let t1 = Instant::now();
            let mut total = 0;
            let mut out = vec![];
            for start in (0..n_probe).step_by(batch_rows) {
                let len = batch_rows.min(n_probe - start);
                op.push(l.slice(start, len), &mut out).unwrap();
                total += out.iter().map(|b| b.num_rows()).sum::<usize>();
                out.clear();
            }
            let probe_time = t1.elapsed();
            assert_eq!(total, n_probe);
            eprintln!(
                "{name}, {order} probe: {table:?}; build {build_time:?}, probe {probe_time:?} ({:.1} M rows/s), {} MB",
                n_probe as f64 / probe_time.as_secs_f64() / 1e6,
                table.memory_size() >> 20
            );
        }
    }
}

// --- Grace hash join -------------------------------------------------

const ALL_KINDS: [JoinKind; 9] = [
    JoinKind::Inner,
    JoinKind::Left,
    JoinKind::Right,
    JoinKind::Full,
    JoinKind::Semi,
    JoinKind::Anti,
    JoinKind::Mark,
    JoinKind::RightSemi,
    JoinKind::RightAnti,
];

/// Runs one join through `build_side` under a budget of `limit` bytes,
/// probing in batches of `chunk` rows; returns the sorted rows and what
/// the operator spilled. The temp directory is empty afterwards.
#[allow(clippy::too_many_arguments)]
fn run_budget(
    kind: JoinKind,
    left: &RecordBatch,
    right: &RecordBatch,
    left_keys: &[Expr],
    right_keys: &[Expr],
    filter: Option<Expr>,
    limit: usize,
    chunk: usize,
) -> (Vec<String>, SpillCount) {
    let dir = tempfile::tempdir().unwrap();
    let pool = MemoryPool::new(limit);
    let rs = right.schema();
    let parts: Vec<Result<RecordBatch>> = (0..right.num_rows())
        .step_by(chunk)
        .map(|s| Ok(right.slice(s, chunk.min(right.num_rows() - s))))
        .collect();
    let never = AtomicBool::new(false);
    let build = build_side(
        &rs,
        right_keys,
        None,
        parts.into_iter(),
        &pool,
        dir.path(),
        &never,
    )
    .unwrap();
    let schema = output_schema(&left.schema(), &rs, kind);
    let mut op = HashJoinOp::with_build(
        kind,
        build,
        left_keys.to_vec(),
        filter,
        left.schema(),
        schema.clone(),
        &pool,
        dir.path(),
    )
    .unwrap();
    let mut out = vec![];
    for s in (0..left.num_rows()).step_by(chunk) {
        op.push(left.slice(s, chunk.min(left.num_rows() - s)), &mut out)
            .unwrap();
    }
    op.finish(&mut out).unwrap();
    for b in &out {
        assert_eq!(b.schema(), schema);
    }
    let spilled = op.spilled();
    drop(op);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_eq!(pool.used(), 0, "{kind:?}: memory not given back");
    (rows(&out), spilled)
}

/// Keys with duplicates and NULLs on both sides, a string payload.
fn grace_tables(n_left: usize, n_right: usize, with_null: bool) -> (RecordBatch, RecordBatch) {
    let mut rng = Lcg(5);
    let mut keys = |n: usize, null_every: u64| -> Vec<Option<i64>> {
        (0..n)
            .map(|_| {
                let v = rng.next();
                (null_every == 0 || !v.is_multiple_of(null_every)).then_some((v % 3000) as i64)
            })
            .collect()
    };
    let lk = keys(n_left, 97);
    let rk = keys(n_right, if with_null { 89 } else { 0 });
    let text = |n: usize, p: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("{p}{}", i % 13)),
        ))
    };
    let l = batch(vec![("k", ints(&lk)), ("lt", text(n_left, "l"))]);
    let r = batch(vec![("k", ints(&rk)), ("rt", text(n_right, "r"))]);
    (l, r)
}

#[test]
fn grace_join_agrees_with_the_in_memory_join_for_every_kind() {
    for with_null in [false, true] {
        let (l, r) = grace_tables(6000, 5000, with_null);
        // rt <> 'r3' AND lt <> 'l5'
        let filter = Expr::binary(BinaryOp::And, ne_str(3, "r3"), ne_str(1, "l5"));
        for kind in ALL_KINDS {
            for f in [None, Some(filter.clone())] {
                let (want, none) =
                    run_budget(kind, &l, &r, &[col(0)], &[col(0)], f.clone(), 1 << 40, 1000);
                assert_eq!(none, SpillCount::default());
                let (got, spilled) = run_budget(
                    kind,
                    &l,
                    &r,
                    &[col(0)],
                    &[col(0)],
                    f.clone(),
                    64 << 10,
                    1000,
                );
                assert!(spilled.files > 0, "{kind:?} did not spill");
                assert_eq!(
                    got,
                    want,
                    "{kind:?} null={with_null} filter={}",
                    f.is_some()
                );
            }
        }
    }
}

#[test]
fn grace_join_recurses_when_a_sub_partition_does_not_fit() {
    let (l, r) = grace_tables(20_000, 20_000, true);
    for kind in [JoinKind::Inner, JoinKind::Full, JoinKind::Mark] {
        let (want, _) = run_budget(kind, &l, &r, &[col(0)], &[col(0)], None, 1 << 40, 4096);
        // 1/16 of the build side does not fit in 24 KB.
        let (got, spilled) = run_budget(kind, &l, &r, &[col(0)], &[col(0)], None, 24 << 10, 4096);
        assert!(
            spilled.files > 2 * GRACE_PARTITIONS,
            "{kind:?}: {spilled:?}"
        );
        assert_eq!(got, want, "{kind:?}");
    }
}

#[test]
fn grace_join_of_one_key_too_large_is_a_clear_error() {
    let n = 20_000;
    let r = batch(vec![("k", ints(&vec![Some(7); n]))]);
    let l = r.slice(0, 10);
    let dir = tempfile::tempdir().unwrap();
    let pool = MemoryPool::new(16 << 10);
    let build = build_side(
        &r.schema(),
        &[col(0)],
        None,
        (0..n).step_by(1000).map(|s| Ok(r.slice(s, 1000))),
        &pool,
        dir.path(),
        &AtomicBool::new(false),
    )
    .unwrap();
    let schema = output_schema(&l.schema(), &r.schema(), JoinKind::Inner);
    let mut op = HashJoinOp::with_build(
        JoinKind::Inner,
        build,
        vec![col(0)],
        None,
        l.schema(),
        schema,
        &pool,
        dir.path(),
    )
    .unwrap();
    let mut out = vec![];
    op.push(l, &mut out).unwrap();
    let err = op.finish(&mut out).unwrap_err().to_string();
    assert!(
        err.contains("hash join's build side") && err.contains("16.0 KiB"),
        "{err}"
    );
    drop(op);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn grace_join_with_composite_string_keys() {
    let (l, r) = grace_tables(5000, 4000, true);
    let keys = [col(0), col(1)];
    // Keys (k, text): text of the two sides never match, so join on k and
    // a cast of k instead.
    let keys2 = [col(0), col(0).cast(DataType::Utf8)];
    for (lk, rk) in [(&keys2, &keys2), (&keys, &keys)] {
        for kind in [JoinKind::Inner, JoinKind::Left, JoinKind::Anti] {
            let (want, _) = run_budget(kind, &l, &r, lk, rk, None, 1 << 40, 500);
            let (got, spilled) = run_budget(kind, &l, &r, lk, rk, None, 48 << 10, 500);
            assert!(spilled.files > 0);
            assert_eq!(got, want, "{kind:?}");
        }
    }
}
