//! The task graph on the wire: quarry's own versioned encoding of a
//! `TaskGraph` as JSON, so that its tasks can run in other processes or on
//! other machines (issue 14).
//!
//! ```text
//! {"version":1,"stages":[{"id":0,"source":{"Scan":{"table":"lineitem",
//!   "partitions":[{"ParquetRowGroup":{"file":{…},"row_group":0,…}}]}},
//!   "ops":[{"Filter":{"predicate":…}}],"sink":"Gather","partitions":1,
//!   "schema":{"fields":[…],"metadata":{}}}, …]}
//! ```
//!
//! - Plans, expressions, sinks and operators are serde-derived where they
//!   are defined; types are arrow's own serde; literals and batches are
//!   written by `plan::arrow_serde` (exact for every type).
//! - A scan partition is written as what it reads (`ScanDescriptor`: a
//!   file's location, row group, columns, byte range, …), never with a
//!   store or a credential: `decode` reopens files through the reader's
//!   own `ObjectStores`, with its own settings and footer cache.
//! - What tasks learn during a run (how selective each filter conjunct
//!   is, whether an aggregate pays, whether early filters pay) is not sent:
//!   a decoded graph starts afresh, and each process learns its own.
//! - The same graph encodes to the same bytes (`encode(decode(x)) == x`),
//!   as long as no schema carries two or more metadata entries (arrow
//!   keeps them in a HashMap; quarry's tables carry none).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::{OpSpec, Sink, Source, Stage, TaskGraph};
use crate::catalog::{open_scan, ObjectStores, ScanDescriptor};
use crate::error::{QuarryError, Result};
use crate::exec::filter::ConjunctStats;

/// Bumped whenever the encoding changes; decode refuses other versions with a clear error.
pub const WIRE_VERSION: u32 = 1;

/// The deepest nesting of JSON arrays and objects `decode` reads: deep
/// enough for the deepest expressions the binder accepts (a level of an
/// expression is two or three of JSON), and shallow enough that reading
/// and dropping what it decodes stays within the stacks it runs on.
const MAX_DEPTH: usize = 5_000;

/// The stack encoding and decoding run on: both recurse (clone, write,
/// read) once per level of an expression (reserved, touched only as used).
const STACK_BYTES: usize = 256 << 20;

#[derive(Serialize, Deserialize)]
struct WireGraph {
    version: u32,
    stages: Vec<WireStage>,
}

#[derive(Serialize, Deserialize)]
struct WireStage {
    id: usize,
    source: WireSource,
    ops: Vec<OpSpec>,
    sink: Sink,
    partitions: usize,
    schema: SchemaRef,
}

#[derive(Serialize, Deserialize)]
enum WireSource {
    Scan {
        table: String,
        partitions: Vec<ScanDescriptor>,
    },
    Values(#[serde(with = "crate::plan::arrow_serde::batches")] Vec<RecordBatch>),
    Exchange {
        stage: usize,
    },
    Union {
        inputs: Vec<(usize, usize)>,
    },
}

/// The graph as JSON bytes: {"version": 1, "stages": [...]}.
pub fn encode(graph: &TaskGraph) -> Result<Vec<u8>> {
    stacker::grow(STACK_BYTES, || encode_on_this_stack(graph))
}

fn encode_on_this_stack(graph: &TaskGraph) -> Result<Vec<u8>> {
    let stages = graph
        .stages
        .iter()
        .map(|s| {
            Ok(WireStage {
                id: s.id,
                source: wire_source(&s.source)?,
                ops: s.ops.clone(),
                sink: s.sink.clone(),
                partitions: s.partitions,
                schema: s.schema.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let wire = WireGraph {
        version: WIRE_VERSION,
        stages,
    };
    serde_json::to_vec(&wire)
        .map_err(|e| QuarryError::exec(format!("task graph: cannot encode it: {e}")))
}

fn wire_source(source: &Source) -> Result<WireSource> {
    Ok(match source {
        Source::Scan {
            table, partitions, ..
        } => WireSource::Scan {
            table: table.clone(),
            partitions: partitions
                .iter()
                .map(|p| p.describe())
                .collect::<Result<_>>()
                .map_err(|e| QuarryError::exec(format!("task graph: the scan of {table}: {e}")))?,
        },
        Source::Values(batches) => WireSource::Values(batches.clone()),
        Source::Exchange { stage } => WireSource::Exchange { stage: *stage },
        Source::Union { inputs } => WireSource::Union {
            inputs: inputs.clone(),
        },
    })
}

/// Reads a graph `encode` wrote. Files of scans are reopened through `stores`
/// (the worker's own object stores, which hold its credentials).
pub fn decode(bytes: &[u8], stores: &Arc<ObjectStores>) -> Result<TaskGraph> {
    stacker::grow(STACK_BYTES, || decode_on_this_stack(bytes, stores))
}

fn decode_on_this_stack(bytes: &[u8], stores: &ObjectStores) -> Result<TaskGraph> {
    let depth = nesting_depth(bytes);
    if depth > MAX_DEPTH {
        return Err(QuarryError::exec(format!(
            "task graph: nested {depth} levels deep (at most {MAX_DEPTH} are read)"
        )));
    }
    // The version first, so that another version's graph gets this error
    // rather than one about what it holds.
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let version: Version = from_json(bytes)?;
    if version.version != WIRE_VERSION {
        return Err(QuarryError::exec(format!(
            "task graph: version {} is not supported (this quarry reads version {WIRE_VERSION})",
            version.version
        )));
    }
    let wire: WireGraph = from_json(bytes)?;
    let mut stages = Vec::with_capacity(wire.stages.len());
    for (i, s) in wire.stages.into_iter().enumerate() {
        let source = match s.source {
            WireSource::Scan { table, partitions } => Source::Scan {
                partitions: open_scan(&partitions, stores).map_err(|e| {
                    QuarryError::exec(format!("task graph: the scan of {table}: {e}"))
                })?,
                table,
                early: Default::default(),
            },
            WireSource::Values(batches) => Source::Values(batches),
            WireSource::Exchange { stage } => Source::Exchange { stage },
            WireSource::Union { inputs } => Source::Union { inputs },
        };
        let stage = Stage {
            id: s.id,
            source,
            ops: s.ops.into_iter().map(fresh).collect(),
            sink: s.sink,
            partitions: s.partitions,
            schema: s.schema,
        };
        check_stage(i, &stage)?;
        stages.push(stage);
    }
    Ok(TaskGraph { stages })
}

/// `T` from JSON, deeper than serde_json's own limit of 128 (checked by
/// `nesting_depth` instead).
fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = T::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    value.map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "bad JSON",
            _ => "not a task graph",
        };
        let message = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&at).unwrap_or(&message);
        QuarryError::exec(format!("task graph: {what}{at}: {message}"))
    })
}

/// The operator with fresh run state: a filter's conjuncts measured anew
/// (one slot per conjunct, as `lower` makes them), an aggregate that has
/// not yet seen whether aggregating pays.
fn fresh(op: OpSpec) -> OpSpec {
    match op {
        OpSpec::Filter { predicate, .. } => OpSpec::Filter {
            stats: Arc::new(ConjunctStats::new(
                predicate.clone().split_conjunction().len(),
            )),
            predicate,
        },
        // (`skip_hint` is already a new flag, its serde default)
        other => other,
    }
}

/// The scheduler indexes stages by id and reads inputs before their
/// readers: a graph from elsewhere is checked for that, so that a bad one
/// is an error rather than a crash.
fn check_stage(index: usize, stage: &Stage) -> Result<()> {
    if stage.id != index {
        return Err(QuarryError::exec(format!(
            "task graph: stage {index} has id {}",
            stage.id
        )));
    }
    if let Some(input) = stage.inputs().into_iter().find(|&s| s >= index) {
        return Err(QuarryError::exec(format!(
            "task graph: stage {index} reads stage {input}, which does not come before it"
        )));
    }
    if let Source::Scan { partitions, .. } = &stage.source {
        if stage.partitions > partitions.len() {
            return Err(QuarryError::exec(format!(
                "task graph: stage {index} has {} tasks for {} scan partitions",
                stage.partitions,
                partitions.len()
            )));
        }
    }
    Ok(())
}

/// How deep the arrays and objects of a JSON text nest (strings skipped).
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, IntervalDayTime, IntervalMonthDayNano, Schema};
    use arrow::record_batch::RecordBatchOptions;
    use datafusion_common::scalar::ScalarStructBuilder;
    use datafusion_common::ScalarValue;

    use super::*;
    use crate::plan::Expr;

    fn stores() -> Arc<ObjectStores> {
        Arc::new(ObjectStores::default())
    }

    /// One stage: `source` → `ops` → the output.
    fn graph(source: Source, ops: Vec<OpSpec>, schema: SchemaRef) -> TaskGraph {
        TaskGraph {
            stages: vec![Stage {
                id: 0,
                source,
                ops,
                sink: Sink::Output,
                partitions: 1,
                schema,
            }],
        }
    }

    fn round_trip(g: &TaskGraph) -> TaskGraph {
        let bytes = encode(g).unwrap();
        let back = decode(&bytes, &stores()).unwrap();
        assert_eq!(encode(&back).unwrap(), bytes, "the same bytes again");
        back
    }

    /// The literal of the graph's one Filter.
    fn predicate(g: &TaskGraph) -> &Expr {
        match &g.stages[0].ops[0] {
            OpSpec::Filter { predicate, .. } => predicate,
            other => panic!("not a filter: {other:?}"),
        }
    }

    fn filter(predicate: Expr) -> OpSpec {
        OpSpec::Filter {
            predicate,
            stats: Arc::new(ConjunctStats::new(1)),
        }
    }

    #[test]
    fn literals_come_back_exactly_for_every_type() {
        let tz = |s: &str| Some(Arc::from(s));
        let point = ScalarStructBuilder::new()
            .with_scalar(
                Field::new("x", DataType::Int32, true),
                ScalarValue::Int32(Some(1)),
            )
            .with_scalar(
                Field::new("label", DataType::Utf8, true),
                ScalarValue::Utf8(None),
            )
            .build()
            .unwrap();
        let values = vec![
            ScalarValue::Boolean(Some(true)),
            ScalarValue::Boolean(None),
            ScalarValue::Int8(Some(i8::MIN)),
            ScalarValue::Int16(Some(i16::MAX)),
            ScalarValue::Int32(Some(-7)),
            ScalarValue::Int64(Some(i64::MIN)),
            ScalarValue::UInt8(Some(u8::MAX)),
            ScalarValue::UInt16(Some(u16::MAX)),
            ScalarValue::UInt32(Some(u32::MAX)),
            ScalarValue::UInt64(Some(u64::MAX)),
            ScalarValue::Float32(Some(-0.0)),
            ScalarValue::Float32(Some(f32::NAN)),
            ScalarValue::Float64(Some(-0.0)),
            ScalarValue::Float64(Some(f64::from_bits(0x7ff8_0000_0000_0001))),
            ScalarValue::Float64(Some(f64::NEG_INFINITY)),
            ScalarValue::Float64(Some(0.1 + 0.2)),
            ScalarValue::Decimal128(Some(-12_345_678_901_234_567_890_123_456_789), 38, 10),
            ScalarValue::Decimal128(Some(123), 15, 2),
            ScalarValue::Decimal128(None, 15, 2),
            ScalarValue::Utf8(Some("naïve \"quoted\"\n\\ text".into())),
            ScalarValue::LargeUtf8(Some("large".into())),
            ScalarValue::Utf8View(Some("a view longer than twelve bytes".into())),
            ScalarValue::Date32(Some(9_204)),
            ScalarValue::Date64(Some(795_225_600_000)),
            ScalarValue::TimestampMicrosecond(Some(1_700_000_000_123_456), None),
            ScalarValue::TimestampNanosecond(Some(-1), tz("Europe/Amsterdam")),
            ScalarValue::TimestampSecond(None, tz("+02:00")),
            ScalarValue::TimestampMillisecond(Some(5), tz("UTC")),
            ScalarValue::IntervalYearMonth(Some(-14)),
            ScalarValue::IntervalDayTime(Some(IntervalDayTime::new(3, -5))),
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(1, -2, 3_000))),
            ScalarValue::IntervalMonthDayNano(None),
            ScalarValue::Time64Microsecond(Some(86_399_999_999)),
            ScalarValue::DurationSecond(Some(-3)),
            ScalarValue::Binary(Some(vec![0, 255, 7])),
            ScalarValue::Int32(None),
            ScalarValue::Utf8(None),
            ScalarValue::Float64(None),
            ScalarValue::Null,
            point,
            ScalarStructBuilder::new_null(vec![Field::new("x", DataType::Int64, true)]),
        ];
        for v in values {
            let g = graph(
                Source::Values(vec![]),
                vec![filter(Expr::Literal(v.clone()))],
                Arc::new(Schema::empty()),
            );
            let back = round_trip(&g);
            let Expr::Literal(w) = predicate(&back) else {
                panic!("not a literal")
            };
            assert_eq!(w, &v, "{v:?}");
            assert_eq!(w.data_type(), v.data_type(), "{v:?}");
            assert_eq!(w.is_null(), v.is_null(), "{v:?}");
        }
    }

    #[test]
    fn common_literals_are_readable() {
        let g = graph(
            Source::Values(vec![]),
            vec![filter(Expr::Literal(ScalarValue::Decimal128(
                Some(-5),
                15,
                2,
            )))],
            Arc::new(Schema::empty()),
        );
        let text = String::from_utf8(encode(&g).unwrap()).unwrap();
        assert!(
            text.contains(r#"{"Literal":{"Decimal128":["-5",15,2]}}"#),
            "{text}"
        );
        assert!(
            text.starts_with(r#"{"version":1,"stages":[{"id":0,"#),
            "{text}"
        );
    }

    #[test]
    fn values_batches_come_back_and_run() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
            ],
        )
        .unwrap();
        let g = graph(Source::Values(vec![batch.clone()]), vec![], schema.clone());
        let back = round_trip(&g);
        match &back.stages[0].source {
            Source::Values(b) => assert_eq!(b, &vec![batch.clone()]),
            other => panic!("{other:?}"),
        }
        let session = crate::Session::new(Default::default()).unwrap();
        let result = session.run_graph(&back).unwrap();
        assert_eq!(result.batches, vec![batch]);
        // a batch of rows without columns (count(*)) keeps its row count
        let empty = Arc::new(Schema::empty());
        let opts = RecordBatchOptions::new().with_row_count(Some(5));
        let rows = RecordBatch::try_new_with_options(empty.clone(), vec![], &opts).unwrap();
        let back = round_trip(&graph(Source::Values(vec![rows]), vec![], empty));
        match &back.stages[0].source {
            Source::Values(b) => assert_eq!(b[0].num_rows(), 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_decoded_filter_measures_each_conjunct_afresh() {
        use crate::plan::BinaryOp;
        let conjunct = |i| {
            Expr::binary(
                BinaryOp::Eq,
                Expr::Column(0),
                Expr::Literal(ScalarValue::Int64(Some(i))),
            )
        };
        let g = graph(
            Source::Values(vec![]),
            vec![filter(Expr::and_all(vec![
                conjunct(1),
                conjunct(2),
                conjunct(3),
            ]))],
            Arc::new(Schema::empty()),
        );
        let back = round_trip(&g);
        match &back.stages[0].ops[0] {
            OpSpec::Filter { stats, .. } => {
                let fresh = format!("{:?}", ConjunctStats::new(3));
                assert_eq!(format!("{stats:?}"), fresh);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_version_is_refused_by_name() {
        let g = graph(Source::Values(vec![]), vec![], Arc::new(Schema::empty()));
        let text = String::from_utf8(encode(&g).unwrap()).unwrap();
        let v2 = text.replace(r#"{"version":1,"#, r#"{"version":2,"#);
        assert_ne!(v2, text);
        let e = decode(v2.as_bytes(), &stores()).unwrap_err().to_string();
        assert_eq!(
            e,
            "task graph: version 2 is not supported (this quarry reads version 1)"
        );
        // also when the rest is not what version 1 holds
        let e = decode(br#"{"version":2,"stages":"elsewhere"}"#, &stores())
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 2 is not supported"), "{e}");
    }

    #[test]
    fn bad_json_is_an_error_that_says_where() {
        let text = b"{\"version\": 1,\n \"stages\": [\n    {,}]}";
        let e = decode(text, &stores()).unwrap_err().to_string();
        assert!(
            e.starts_with("task graph: bad JSON at line 3 column 6: "),
            "{e}"
        );
        let e = decode(b"", &stores()).unwrap_err().to_string();
        assert!(
            e.starts_with("task graph: bad JSON at line 1 column 0: "),
            "{e}"
        );
        let e = decode(
            br#"{"version":1,"stages":[{"id":0,"source":"Nowhere"}]}"#,
            &stores(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("task graph: not a task graph at line 1 column ")
                && e.contains("unknown variant `Nowhere`"),
            "{e}"
        );
        let e = decode(br#"{"stages":[]}"#, &stores())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `version`"), "{e}");
    }

    #[test]
    fn a_graph_that_would_crash_the_scheduler_is_refused() {
        let mut g = graph(
            Source::Exchange { stage: 0 },
            vec![],
            Arc::new(Schema::empty()),
        );
        let e = decode(&encode(&g).unwrap(), &stores())
            .unwrap_err()
            .to_string();
        assert!(e.contains("stage 0 reads stage 0"), "{e}");
        g.stages[0].source = Source::Values(vec![]);
        g.stages[0].id = 3;
        let e = decode(&encode(&g).unwrap(), &stores())
            .unwrap_err()
            .to_string();
        assert!(e.contains("stage 0 has id 3"), "{e}");
    }

    #[test]
    fn deep_expressions_come_back_and_deeper_json_is_refused() {
        // deeper than the binder's 1000 levels, and than serde_json's own
        // limit of 128; compared and dropped on a large stack (both
        // recurse too)
        stacker::grow(STACK_BYTES, || {
            let mut e = Expr::Column(0);
            for _ in 0..1_500 {
                e = Expr::Not(Box::new(e));
            }
            let g = graph(
                Source::Values(vec![]),
                vec![filter(e)],
                Arc::new(Schema::empty()),
            );
            let back = round_trip(&g);
            assert!(predicate(&back) == predicate(&g));
        });
        let deep = "[".repeat(MAX_DEPTH + 1);
        let e = decode(deep.as_bytes(), &stores()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("nested {} levels deep", MAX_DEPTH + 1)),
            "{e}"
        );
        // brackets inside strings do not count
        assert_eq!(nesting_depth(br#"{"a":"[[[\"{{{","b":[1]}"#), 2);
    }
}
