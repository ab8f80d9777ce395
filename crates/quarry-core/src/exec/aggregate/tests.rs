//! Tests of the aggregate operator: two phases, spilling, budgets.

use std::path::Path;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::Int64Type;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::*;

fn agg(func: AggFunc, arg: Option<usize>) -> AggregateExpr {
    AggregateExpr {
        func,
        arg: arg.map(Expr::Column),
        distinct: false,
        param: None,
    }
}

/// k Int64, v Int64, s Utf8: `groups` keys, each seen `per_group`
/// times, in batches of 8192 rows.
fn input(groups: i64, per_group: i64) -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
        Field::new("s", DataType::Utf8, false),
    ]));
    let n: Vec<i64> = (0..groups * per_group).collect();
    let batches = n
        .chunks(8192)
        .map(|c| {
            let k: Int64Array = c.iter().map(|x| x % groups).collect();
            let v: Int64Array = c.iter().map(|x| (x % 7 != 0).then_some(*x)).collect();
            let s: StringArray = c.iter().map(|x| Some(format!("s{}", x % 1000))).collect();
            RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(v), Arc::new(s)])
                .unwrap()
        })
        .collect();
    (schema, batches)
}

/// count(*), sum(v), avg(v), min(s), max(v) over `input`'s columns, and
/// their argument types.
fn test_aggs() -> (Vec<AggregateExpr>, Vec<DataType>) {
    let aggs = vec![
        agg(AggFunc::CountStar, None),
        agg(AggFunc::Sum, Some(1)),
        agg(AggFunc::Avg, Some(1)),
        agg(AggFunc::Min, Some(2)),
        agg(AggFunc::Max, Some(1)),
    ];
    let arg_types = vec![
        DataType::Int64,
        DataType::Int64,
        DataType::Int64,
        DataType::Utf8,
        DataType::Int64,
    ];
    (aggs, arg_types)
}

/// Group by k: count(*), sum(v), avg(v), min(s), max(v), in Single mode,
/// under a budget of `limit` bytes; the output as sorted text rows.
fn run(limit: usize, dir: &Path, groups: i64) -> (Result<Vec<String>>, usize, SpillCount) {
    run_with(test_aggs(), limit, dir, groups)
}

/// string_agg(s), median(v), quantile_disc(s, 0.25),
/// approx_count_distinct(v), arg_max(s, v) and arg_min(v, s): the
/// aggregates whose state grows with their group's values.
fn more_aggs() -> (Vec<AggregateExpr>, Vec<DataType>) {
    use crate::plan::expr::Quantile;
    use crate::plan::ScalarFunc;
    let with = |func, arg, param| AggregateExpr {
        param: Some(param),
        ..agg(func, Some(arg))
    };
    let row = |a: usize, v: usize, types: [DataType; 2]| {
        let fields: Vec<Field> = ["arg", "val"]
            .iter()
            .zip(types)
            .map(|(n, t)| Field::new(*n, t, true))
            .collect();
        let t = DataType::Struct(fields.into());
        let e = Expr::Function {
            func: ScalarFunc::Row,
            args: vec![Expr::Column(a), Expr::Column(v)],
            data_type: t.clone(),
        };
        (e, t)
    };
    let (max_row, max_type) = row(2, 1, [DataType::Utf8, DataType::Int64]);
    let (min_row, min_type) = row(1, 2, [DataType::Int64, DataType::Utf8]);
    let half = Quantile::Decimal {
        unscaled: 5,
        scale: 1,
    };
    let quarter = Quantile::Double(0.25f64.to_bits());
    let aggs = vec![
        with(AggFunc::StringAgg, 2, AggParam::Separator(Some(";".into()))),
        with(AggFunc::QuantileCont, 1, AggParam::Quantile(half)),
        with(AggFunc::QuantileDisc, 2, AggParam::Quantile(quarter)),
        agg(AggFunc::ApproxCountDistinct, Some(1)),
        AggregateExpr {
            arg: Some(max_row),
            ..agg(AggFunc::ArgMax, None)
        },
        AggregateExpr {
            arg: Some(min_row),
            ..agg(AggFunc::ArgMin, None)
        },
    ];
    let arg_types = vec![
        DataType::Utf8,
        DataType::Int64,
        DataType::Utf8,
        DataType::Int64,
        max_type,
        min_type,
    ];
    (aggs, arg_types)
}

/// Group by k: `aggs` in Single mode, under a budget of `limit` bytes;
/// the output as sorted text rows.
fn run_with(
    (aggs, arg_types): (Vec<AggregateExpr>, Vec<DataType>),
    limit: usize,
    dir: &Path,
    groups: i64,
) -> (Result<Vec<String>>, usize, SpillCount) {
    let (schema, batches) = input(groups, 3);
    let mut fields = vec![Field::new("k", DataType::Int64, true)];
    for (i, (a, t)) in aggs.iter().zip(&arg_types).enumerate() {
        fields.push(Field::new(
            format!("a{i}"),
            aggregate_result_type(a.func, t),
            true,
        ));
    }
    let pool = MemoryPool::new(limit);
    let mut op = AggregateOp::new(
        AggMode::Single,
        vec![Expr::Column(0)],
        aggs,
        &schema,
        Arc::new(Schema::new(fields)),
        &arg_types,
        &pool,
        dir.to_path_buf(),
    )
    .unwrap();
    let result = (|| {
        let mut out = Vec::new();
        for b in batches {
            op.push(b, &mut out)?;
        }
        assert!(out.is_empty(), "Single mode emits only at the end");
        let mut rows = Vec::new();
        op.finish_into(&mut |b| {
            assert!(b.num_rows() <= BATCH_ROWS);
            rows.extend(text_rows(&b));
            Ok(())
        })?;
        rows.sort();
        Ok(rows)
    })();
    let spilled = op.spilled();
    let levels = op.split_levels;
    drop(op);
    assert_eq!(pool.used(), 0, "everything reserved is given back");
    (result, levels, spilled)
}

/// Aggregates like `run`'s (and a count of values), in two phases:
/// Partial over the input (sharing `hint`), then Final over its output.
/// Returns the sorted rows, how many state rows the Partial phase sent
/// on, and the sorted rows of a Single-mode aggregate of the same input.
fn run_two_phase(
    groups: i64,
    per_group: i64,
    hint: &Arc<AtomicBool>,
) -> (Vec<String>, usize, Vec<String>) {
    run_two_phase_with(test_aggs(), groups, per_group, hint)
}

fn run_two_phase_with(
    (mut aggs, mut arg_types): (Vec<AggregateExpr>, Vec<DataType>),
    groups: i64,
    per_group: i64,
    hint: &Arc<AtomicBool>,
) -> (Vec<String>, usize, Vec<String>) {
    let (schema, batches) = input(groups, per_group);
    aggs.push(agg(AggFunc::Count, Some(1)));
    arg_types.push(DataType::Int64);
    let mut fields = vec![Field::new("k", DataType::Int64, true)];
    let mut state = fields.clone();
    for (i, (a, t)) in aggs.iter().zip(&arg_types).enumerate() {
        fields.push(Field::new(
            format!("a{i}"),
            aggregate_result_type(a.func, t),
            true,
        ));
        state.extend(state_fields(a, t, &format!("a{i}")));
    }
    let state = Arc::new(Schema::new(state));
    let pool = MemoryPool::new(usize::MAX);
    let dir = std::env::temp_dir();
    let mut partial = AggregateOp::new(
        AggMode::Partial,
        vec![Expr::Column(0)],
        aggs.clone(),
        &schema,
        state.clone(),
        &arg_types,
        &pool,
        dir.clone(),
    )
    .unwrap()
    .with_skip_hint(hint.clone());
    let mut single = AggregateOp::new(
        AggMode::Single,
        vec![Expr::Column(0)],
        aggs.clone(),
        &schema,
        Arc::new(Schema::new(fields.clone())),
        &arg_types,
        &pool,
        dir.clone(),
    )
    .unwrap();
    let mut states = Vec::new();
    let mut single_out = Vec::new();
    for b in batches {
        single.push(b.clone(), &mut single_out).unwrap();
        partial.push(b, &mut states).unwrap();
    }
    single.finish(&mut single_out).unwrap();
    let mut expected: Vec<String> = single_out.iter().flat_map(text_rows).collect();
    expected.sort();
    partial.finish(&mut states).unwrap();
    let state_rows = states.iter().map(|b| b.num_rows()).sum();
    let mut fin = AggregateOp::new(
        AggMode::Final,
        vec![Expr::Column(0)],
        aggs,
        &state,
        Arc::new(Schema::new(fields)),
        &arg_types,
        &pool,
        dir,
    )
    .unwrap();
    let mut out = Vec::new();
    for b in states {
        fin.push(b, &mut out).unwrap();
    }
    fin.finish(&mut out).unwrap();
    let mut rows: Vec<String> = out.iter().flat_map(text_rows).collect();
    rows.sort();
    (rows, state_rows, expected)
}

#[test]
fn partial_aggregation_that_does_not_reduce_passes_rows_through() {
    // 150K keys seen twice: after 100K rows nearly every row was a new
    // group, so the rest go on as rows of their own.
    let hint = Arc::new(AtomicBool::new(false));
    let (rows, state_rows, expected) = run_two_phase(150_000, 2, &hint);
    assert!(hint.load(Ordering::Relaxed), "the sibling tasks are told");
    assert!(state_rows > 250_000, "{state_rows} state rows");
    assert_eq!(rows.len(), 150_000);
    assert_eq!(rows, expected);
    // A task that starts after the hint passes every row through.
    let (again, state_rows, _) = run_two_phase(150_000, 2, &hint);
    assert_eq!(state_rows, 300_000);
    assert_eq!(again, expected);
    // Spot check one group: key 7 holds values 7 (NULL: 7 % 7 == 0) and 150007.
    assert!(
        rows.contains(&"7|2|150007|150007.0|s7|150007|1".to_string()),
        "{:?}",
        &rows[..3]
    );
    // Few groups: it keeps aggregating.
    let hint = Arc::new(AtomicBool::new(false));
    let (rows, state_rows, expected) = run_two_phase(1_000, 300, &hint);
    assert_eq!(rows, expected);
    assert!(!hint.load(Ordering::Relaxed));
    assert!(state_rows <= 1_000 * 2, "{state_rows}");
}

#[test]
fn a_small_task_that_did_not_reduce_tells_its_siblings_when_it_ends() {
    // 20K rows, all distinct: never reaches the probe of 100K rows, but
    // at its end it has as many groups as rows.
    let hint = Arc::new(AtomicBool::new(false));
    let (rows, state_rows, expected) = run_two_phase(20_000, 1, &hint);
    assert_eq!(rows, expected);
    assert_eq!(state_rows, 20_000);
    assert!(hint.load(Ordering::Relaxed), "the sibling tasks are told");
    // 20K rows in 1000 groups: aggregating paid.
    let hint = Arc::new(AtomicBool::new(false));
    let (rows, state_rows, expected) = run_two_phase(1_000, 20, &hint);
    assert_eq!(rows, expected);
    assert_eq!(state_rows, 1_000);
    assert!(!hint.load(Ordering::Relaxed));
    // 5K distinct rows are too few to judge by.
    let hint = Arc::new(AtomicBool::new(false));
    run_two_phase(5_000, 1, &hint);
    assert!(!hint.load(Ordering::Relaxed));
}

#[test]
fn values_held_per_group_pass_through_and_merge_to_the_single_phase_answer() {
    // 150K groups seen twice: the partial aggregate passes rows through
    let hint = Arc::new(AtomicBool::new(false));
    let (rows, state_rows, expected) = run_two_phase_with(more_aggs(), 150_000, 2, &hint);
    assert!(state_rows > 250_000, "{state_rows} state rows");
    assert_eq!(rows, expected);
    // key 7: v NULL (7 % 7 == 0) and 150007, s "s7" and "s7"
    let want = "7|s7;s7|150007.0|s7|1|s7|150007|1";
    assert!(rows.iter().any(|r| r == want), "{:?}", &rows[7]);
    // few groups: aggregated, with states merged
    let hint = Arc::new(AtomicBool::new(false));
    let (rows, state_rows, expected) = run_two_phase_with(more_aggs(), 1_000, 300, &hint);
    assert!(state_rows <= 2_000, "{state_rows}");
    assert_eq!(rows, expected);
}

#[test]
fn values_held_per_group_are_reserved_and_spill() {
    let dir = tempfile::tempdir().unwrap();
    let (expected, levels, _) = run_with(more_aggs(), usize::MAX, dir.path(), 50_000);
    let expected = expected.unwrap();
    assert_eq!((expected.len(), levels), (50_000, 0));
    let (got, levels, spilled) = run_with(more_aggs(), 2 << 20, dir.path(), 50_000);
    assert_eq!(got.unwrap(), expected);
    assert!(levels >= 1 && spilled.files >= SPILL_PARTITIONS);
    assert_eq!(files_in(dir.path()), 0);
}

#[test]
fn a_quantile_without_groups_over_the_budget_names_the_aggregate() {
    // without keys nothing can spill: the values must fit
    let (schema, batches) = input(1_000, 300);
    let (aggs, arg_types) = more_aggs();
    let (aggs, arg_types) = (vec![aggs[1].clone()], vec![arg_types[1].clone()]);
    let fields = vec![Field::new("m", DataType::Float64, true)];
    let pool = MemoryPool::new(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut op = AggregateOp::new(
        AggMode::Single,
        vec![],
        aggs,
        &schema,
        Arc::new(Schema::new(fields)),
        &arg_types,
        &pool,
        dir.path().to_path_buf(),
    )
    .unwrap();
    let mut out = Vec::new();
    let err = batches
        .into_iter()
        .try_for_each(|b| op.push(b, &mut out))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hash aggregate (SingleAggregate)") && err.contains("memory limit"),
        "{err}"
    );
    drop(op);
    assert_eq!(pool.used(), 0);
}

fn text_rows(b: &RecordBatch) -> Vec<String> {
    let opts = FormatOptions::default().with_null("NULL");
    let formatters: Vec<_> = b
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
        .collect();
    (0..b.num_rows())
        .map(|r| {
            formatters
                .iter()
                .map(|f| f.value(r).to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn spills_by_hash_and_merges_to_the_in_memory_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (expected, levels, spilled) = run(usize::MAX, dir.path(), 50_000);
    let expected = expected.unwrap();
    assert_eq!(expected.len(), 50_000);
    assert_eq!((levels, spilled), (0, SpillCount::default()));
    // 50K groups take about 8 MB: each sixteenth fits in 2 MB.
    let (got, levels, spilled) = run(2 << 20, dir.path(), 50_000);
    assert_eq!(got.unwrap(), expected);
    assert_eq!(levels, 1);
    assert!(spilled.bytes > 0 && spilled.files >= SPILL_PARTITIONS);
    assert_eq!(files_in(dir.path()), 0);
}

#[test]
fn a_sub_partition_that_does_not_fit_is_split_again() {
    let dir = tempfile::tempdir().unwrap();
    let (expected, _, _) = run(usize::MAX, dir.path(), 50_000);
    // A sixteenth (500 KB) does not fit in 200 KB, a 256th does.
    let (got, levels, _) = run(200_000, dir.path(), 50_000);
    assert_eq!(got.unwrap(), expected.unwrap());
    assert_eq!(levels, 2);
    assert_eq!(files_in(dir.path()), 0);
}

#[test]
fn a_budget_too_small_for_any_progress_names_the_aggregate_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (got, _, _) = run(100, dir.path(), 5_000);
    let err = got.unwrap_err().to_string();
    assert!(
        err.contains("hash aggregate (SingleAggregate)") && err.contains("memory limit of 100 B"),
        "{err}"
    );
    assert_eq!(files_in(dir.path()), 0);
}

#[test]
fn a_partial_aggregate_over_the_budget_sends_its_states_on_early() {
    let (schema, batches) = input(20_000, 2);
    let aggs = vec![agg(AggFunc::CountStar, None), agg(AggFunc::Sum, Some(1))];
    let arg_types = [DataType::Int64, DataType::Int64];
    let mut fields = vec![Field::new("k", DataType::Int64, true)];
    for (a, t) in aggs.iter().zip(&arg_types) {
        fields.extend(state_fields(a, t, "x"));
    }
    let pool = MemoryPool::new(100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut op = AggregateOp::new(
        AggMode::Partial,
        vec![Expr::Column(0)],
        aggs,
        &schema,
        Arc::new(Schema::new(fields)),
        &arg_types,
        &pool,
        dir.path().to_path_buf(),
    )
    .unwrap();
    let mut out = Vec::new();
    for b in batches {
        op.push(b, &mut out).unwrap();
    }
    assert!(!out.is_empty(), "states went on before the end");
    op.finish(&mut out).unwrap();
    // Every row is counted once, though a group may appear more than once.
    let count: i64 = out
        .iter()
        .map(|b| arrow::compute::sum(b.column(1).as_primitive::<Int64Type>()).unwrap_or(0))
        .sum();
    assert_eq!(count, 40_000);
    assert_eq!(op.spilled(), SpillCount::default());
    assert_eq!(files_in(dir.path()), 0);
}
