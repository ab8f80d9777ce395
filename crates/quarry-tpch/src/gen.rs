//! TPC-H data generation: the 8 tables as Parquet files, made with the
//! `tpchgen-arrow` crate on all cores.
//!
//! Each table is cut into *parts* with the generator's own partitioning
//! (`XxxGenerator::new(sf, part, part_count)`), one part per Parquet row group
//! of about [`DEFAULT_ROW_GROUP_ROWS`] rows. Worker threads take parts from one
//! queue (big tables first), encode and compress each part into Parquet column
//! chunks, and append the finished row groups to the table's file in part
//! order. The bytes written do not depend on the number of threads.
//! [`GenerateOptions::parts`] fixes the number of parts (row groups) instead.
//!
//! Each file is written as `<table>.parquet.tmp-<pid>-<n>` and renamed to
//! `<table>.parquet` only once complete, so two generations into the same
//! directory (two processes, or two test threads) never share a half-written
//! file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory, ArrowWriter,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow,
    RecordBatchIterator, RegionArrow, SupplierArrow,
};

use quarry_core::error::{QuarryError, Result};

/// Rows per Parquet row group (approximate for lineitem, whose parts are cut
/// by order). Row groups are the engine's scan partitions.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 122_880;

/// Rows per Arrow batch handed from the generator to the Parquet encoder.
const BATCH_ROWS: usize = 8_192;

/// The eight TPC-H tables, biggest first (the order work is queued in).
pub const TABLES: [&str; 8] = [
    "lineitem", "orders", "partsupp", "part", "customer", "supplier", "nation", "region",
];

/// Options of [`generate_with`].
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Target rows per row group (at least 1).
    pub row_group_rows: usize,
    /// Cut each of the six scaled tables into this many parts (row groups;
    /// fewer for a table with fewer units, e.g. orders for lineitem) instead
    /// of one part per `row_group_rows` rows. nation and region are always
    /// one part. `Some(0)` is refused.
    pub parts: Option<usize>,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Tables to generate (names from [`TABLES`]); empty = all eight.
    pub tables: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            parts: None,
            threads: 0,
            tables: vec![],
        }
    }
}

/// What was written for one table.
#[derive(Debug, Clone)]
pub struct TableReport {
    pub table: &'static str,
    pub path: PathBuf,
    pub rows: u64,
    pub row_groups: usize,
    pub bytes: u64,
    /// From the start of its first part to the file's rename.
    pub elapsed: Duration,
}

/// Writes the 8 TPC-H tables at scale factor `sf` as `out/<table>.parquet`.
pub fn generate(sf: f64, out: &Path) -> Result<()> {
    generate_with(sf, out, &GenerateOptions::default(), &|_| {}).map(|_| ())
}

/// Checks a scale factor: a positive finite number.
pub fn validate_sf(sf: f64) -> Result<()> {
    if !sf.is_finite() || sf <= 0.0 {
        return Err(QuarryError::Config(format!(
            "invalid TPC-H scale factor {sf}: it must be a positive finite number (e.g. 0.01, 1, 10)"
        )));
    }
    // The generator counts rows in i64 from `scale_base * sf` and parts in i32.
    if sf > 100_000.0 {
        return Err(QuarryError::Config(format!(
            "invalid TPC-H scale factor {sf}: at most 100000 is supported"
        )));
    }
    Ok(())
}

/// The default output directory for scale factor `sf`: `data/tpch-sf<sf>`.
pub fn default_out_dir(sf: f64) -> PathBuf {
    PathBuf::from(format!("data/tpch-sf{sf}"))
}

/// How one table is cut and generated.
#[derive(Debug, Clone, Copy)]
struct TableSpec {
    table: &'static str,
    /// Rows of the generator's own unit at this sf (orders for lineitem,
    /// parts for partsupp): parts can not be finer than this.
    units: i64,
    /// Estimated rows of the table.
    est_rows: i64,
}

fn table_spec(table: &'static str, sf: f64) -> TableSpec {
    let (units, rows_per_unit) = match table {
        "lineitem" => (OrderGenerator::calculate_row_count(sf, 1, 1), 4),
        "orders" => (OrderGenerator::calculate_row_count(sf, 1, 1), 1),
        "partsupp" => (PartSuppGenerator::calculate_row_count(sf, 1, 1), 4),
        "part" => (PartGenerator::calculate_row_count(sf, 1, 1), 1),
        "customer" => (CustomerGenerator::calculate_row_count(sf, 1, 1), 1),
        "supplier" => (SupplierGenerator::calculate_row_count(sf, 1, 1), 1),
        "nation" => (25, 1),
        "region" => (5, 1),
        other => unreachable!("unknown TPC-H table {other}"),
    };
    TableSpec {
        table,
        units,
        est_rows: units * rows_per_unit,
    }
}

fn part_count(spec: &TableSpec, options: &GenerateOptions) -> i32 {
    let n = match options.parts {
        Some(_) if matches!(spec.table, "nation" | "region") => 1,
        Some(k) => i64::try_from(k).unwrap_or(i64::MAX),
        None => {
            let rg = options.row_group_rows.max(1) as i64;
            (spec.est_rows + rg - 1) / rg
        }
    };
    n.clamp(1, spec.units.max(1)).min(i32::MAX as i64) as i32
}

/// The rows `table` has at scale factor `sf`: exact for all tables but
/// lineitem, whose orders have 1 to 7 lines each. `None` for an unknown table.
pub fn expected_rows(table: &str, sf: f64) -> Option<std::ops::RangeInclusive<u64>> {
    let table = *TABLES.iter().find(|t| **t == table)?;
    let spec = table_spec(table, sf);
    let rows = spec.est_rows.max(0) as u64;
    Some(if table == "lineitem" {
        let orders = spec.units.max(0) as u64;
        orders..=orders * 7
    } else {
        rows..=rows
    })
}

/// The rows [`generate_with`] is expected to write with these options (an
/// estimate for lineitem): the length of a progress bar.
pub fn estimated_rows(sf: f64, options: &GenerateOptions) -> u64 {
    TABLES
        .iter()
        .filter(|t| options.tables.is_empty() || options.tables.iter().any(|s| s == *t))
        .map(|t| table_spec(t, sf).est_rows.max(0) as u64)
        .sum()
}

/// The Arrow batches of part `part` (1-based) of `part_count` of `table`.
fn batches(table: &str, sf: f64, part: i32, part_count: i32) -> Box<dyn RecordBatchIterator> {
    let (p, n) = (part, part_count);
    match table {
        "lineitem" => Box::new(
            LineItemArrow::new(LineItemGenerator::new(sf, p, n)).with_batch_size(BATCH_ROWS),
        ),
        "orders" => {
            Box::new(OrderArrow::new(OrderGenerator::new(sf, p, n)).with_batch_size(BATCH_ROWS))
        }
        "partsupp" => Box::new(
            PartSuppArrow::new(PartSuppGenerator::new(sf, p, n)).with_batch_size(BATCH_ROWS),
        ),
        "part" => {
            Box::new(PartArrow::new(PartGenerator::new(sf, p, n)).with_batch_size(BATCH_ROWS))
        }
        "customer" => Box::new(
            CustomerArrow::new(CustomerGenerator::new(sf, p, n)).with_batch_size(BATCH_ROWS),
        ),
        "supplier" => Box::new(
            SupplierArrow::new(SupplierGenerator::new(sf, p, n)).with_batch_size(BATCH_ROWS),
        ),
        "nation" => {
            Box::new(NationArrow::new(NationGenerator::new(sf, p, n)).with_batch_size(BATCH_ROWS))
        }
        "region" => {
            Box::new(RegionArrow::new(RegionGenerator::new(sf, p, n)).with_batch_size(BATCH_ROWS))
        }
        other => unreachable!("unknown TPC-H table {other}"),
    }
}

/// The Arrow schema tpchgen-arrow gives `table`.
pub fn table_schema(table: &str) -> Option<SchemaRef> {
    if !TABLES.contains(&table) {
        return None;
    }
    Some(Arc::clone(batches(table, 0.001, 1, 1).schema()))
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!(
            "quarry {} (tpchgen-arrow)",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> QuarryError {
    QuarryError::Io(format!("{what} {}: {e}", path.display()))
}

/// One encoded row group, waiting for its turn to be appended.
struct EncodedPart {
    chunks: Vec<ArrowColumnChunk>,
    rows: u64,
}

/// The file of one table while it is written.
struct TableSink {
    spec: TableSpec,
    parts: i32,
    tmp_path: PathBuf,
    final_path: PathBuf,
    factory: ArrowRowGroupWriterFactory,
    state: Mutex<SinkState>,
}

struct SinkState {
    writer: Option<SerializedFileWriter<BufWriter<File>>>,
    /// Index (0-based) of the next part to append.
    next: usize,
    pending: BTreeMap<usize, EncodedPart>,
    rows: u64,
    row_groups: usize,
    started: Option<Instant>,
}

impl TableSink {
    fn create(spec: TableSpec, parts: i32, out: &Path) -> Result<TableSink> {
        let final_path = out.join(format!("{}.parquet", spec.table));
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp_path = out.join(format!(
            "{}.parquet.tmp-{}-{n}",
            spec.table,
            std::process::id()
        ));
        let file = File::create(&tmp_path).map_err(|e| io_err("cannot create", &tmp_path, e))?;
        let schema = table_schema(spec.table).expect("known table");
        let writer = ArrowWriter::try_new(BufWriter::new(file), schema, Some(writer_properties()))?;
        let (writer, factory) = writer.into_serialized_writer()?;
        Ok(TableSink {
            spec,
            parts,
            tmp_path,
            final_path,
            factory,
            state: Mutex::new(SinkState {
                writer: Some(writer),
                next: 0,
                pending: BTreeMap::new(),
                rows: 0,
                row_groups: 0,
                started: None,
            }),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, SinkState>> {
        self.state
            .lock()
            .map_err(|_| QuarryError::exec("TPC-H generation: a writer thread panicked"))
    }

    fn mark_started(&self) -> Result<()> {
        let mut st = self.lock()?;
        st.started.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Generates and encodes part `index` (0-based) into column chunks.
    fn encode_part(&self, sf: f64, index: usize) -> Result<EncodedPart> {
        let mut writers = self.factory.create_column_writers(index)?;
        let mut iter = batches(self.spec.table, sf, index as i32 + 1, self.parts);
        let schema = Arc::clone(iter.schema());
        let mut rows = 0u64;
        for batch in iter.by_ref() {
            rows += batch.num_rows() as u64;
            write_batch(&schema, &batch, &mut writers)?;
        }
        let chunks = writers
            .into_iter()
            .map(|w| w.close())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(EncodedPart { chunks, rows })
    }

    /// Hands in part `index`; appends every part that is now next in line.
    /// Returns the report when this completed the file.
    fn submit(&self, index: usize, part: EncodedPart) -> Result<Option<TableReport>> {
        let mut guard = self.lock()?;
        let st = &mut *guard;
        st.pending.insert(index, part);
        while let Some(part) = st.pending.remove(&st.next) {
            let writer = st.writer.as_mut().expect("writer open while parts remain");
            if part.rows > 0 {
                let mut rg = writer.next_row_group()?;
                for chunk in part.chunks {
                    chunk.append_to_row_group(&mut rg)?;
                }
                rg.close()?;
                st.row_groups += 1;
            }
            st.rows += part.rows;
            st.next += 1;
        }
        if st.next < self.parts as usize {
            return Ok(None);
        }
        let writer = st.writer.take().expect("file finished once");
        let buf = writer.into_inner()?;
        let file = buf
            .into_inner()
            .map_err(|e| io_err("cannot write", &self.tmp_path, e.error()))?;
        file.sync_all()
            .map_err(|e| io_err("cannot write", &self.tmp_path, e))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| io_err("cannot rename to", &self.final_path, e))?;
        Ok(Some(TableReport {
            table: self.spec.table,
            path: self.final_path.clone(),
            rows: st.rows,
            row_groups: st.row_groups,
            bytes,
            elapsed: st.started.map(|s| s.elapsed()).unwrap_or_default(),
        }))
    }
}

fn write_batch(
    schema: &SchemaRef,
    batch: &RecordBatch,
    writers: &mut [parquet::arrow::arrow_writer::ArrowColumnWriter],
) -> Result<()> {
    let mut leaf = 0;
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        for leaves in compute_leaves(field, column)? {
            writers[leaf].write(&leaves)?;
            leaf += 1;
        }
    }
    Ok(())
}

/// Writes TPC-H tables at scale factor `sf` into `out` (created if missing).
/// `on_table` is called (from a worker thread) as each table's file is
/// complete; the reports are also returned, in [`TABLES`] order.
pub fn generate_with(
    sf: f64,
    out: &Path,
    options: &GenerateOptions,
    on_table: &(dyn Fn(&TableReport) + Sync),
) -> Result<Vec<TableReport>> {
    generate_with_progress(sf, out, options, on_table, &|_| {})
}

/// [`generate_with`], calling `on_part` (from a worker thread) with the rows
/// of each part as it is encoded: progress against [`estimated_rows`].
pub fn generate_with_progress(
    sf: f64,
    out: &Path,
    options: &GenerateOptions,
    on_table: &(dyn Fn(&TableReport) + Sync),
    on_part: &(dyn Fn(u64) + Sync),
) -> Result<Vec<TableReport>> {
    validate_sf(sf)?;
    if options.parts == Some(0) {
        return Err(QuarryError::Config(
            "invalid number of parts 0: it must be at least 1".into(),
        ));
    }
    for t in &options.tables {
        if !TABLES.contains(&t.as_str()) {
            return Err(QuarryError::Config(format!(
                "unknown TPC-H table '{t}' (tables: {})",
                TABLES.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| io_err("cannot create directory", out, e))?;

    let selected: Vec<&'static str> = TABLES
        .iter()
        .copied()
        .filter(|t| options.tables.is_empty() || options.tables.iter().any(|s| s == t))
        .collect();
    let mut sinks = Vec::with_capacity(selected.len());
    for table in selected {
        let spec = table_spec(table, sf);
        let parts = part_count(&spec, options);
        match TableSink::create(spec, parts, out) {
            Ok(sink) => sinks.push(sink),
            Err(e) => {
                remove_tmp_files(&sinks);
                return Err(e);
            }
        }
    }
    // The queue: (sink, part index), big tables first, parts in order.
    let jobs: Vec<(usize, usize)> = sinks
        .iter()
        .enumerate()
        .flat_map(|(s, sink)| (0..sink.parts as usize).map(move |p| (s, p)))
        .collect();

    let threads = if options.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        options.threads
    }
    .clamp(1, jobs.len().max(1));

    let next_job = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<QuarryError>> = Mutex::new(None);
    let reports: Mutex<Vec<TableReport>> = Mutex::new(Vec::new());

    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let work = || -> Result<()> {
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let j = next_job.fetch_add(1, Ordering::Relaxed);
                        let Some(&(s, p)) = jobs.get(j) else {
                            return Ok(());
                        };
                        let sink = &sinks[s];
                        sink.mark_started()?;
                        let part = sink.encode_part(sf, p)?;
                        on_part(part.rows);
                        if let Some(report) = sink.submit(p, part)? {
                            on_table(&report);
                            reports
                                .lock()
                                .map_err(|_| QuarryError::exec("TPC-H generation: poisoned"))?
                                .push(report);
                        }
                    }
                };
                if let Err(e) = work() {
                    failed.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });

    if let Some(e) = first_error.into_inner().ok().flatten() {
        remove_tmp_files(&sinks);
        return Err(e);
    }
    let mut reports = reports.into_inner().unwrap_or_default();
    reports.sort_by_key(|r| TABLES.iter().position(|t| *t == r.table));
    Ok(reports)
}

fn remove_tmp_files(sinks: &[TableSink]) {
    for sink in sinks {
        let _ = std::fs::remove_file(&sink.tmp_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn read_all(path: &Path) -> (SchemaRef, Vec<RecordBatch>) {
        let file = File::open(path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let schema = Arc::clone(builder.schema());
        let batches = builder
            .build()
            .unwrap()
            .collect::<std::result::Result<Vec<_>, _>>();
        (schema, batches.unwrap())
    }

    fn row_groups(path: &Path) -> Vec<i64> {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        reader
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| rg.num_rows())
            .collect()
    }

    #[test]
    fn rejects_bad_scale_factors() {
        let dir = tempfile::tempdir().unwrap();
        for sf in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = generate(sf, dir.path()).unwrap_err();
            assert!(matches!(err, QuarryError::Config(_)), "{sf}: {err:?}");
            assert!(err.to_string().contains("scale factor"), "{err}");
        }
        // nothing written
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn rejects_unknown_table() {
        let dir = tempfile::tempdir().unwrap();
        let options = GenerateOptions {
            tables: vec!["lineitems".into()],
            ..Default::default()
        };
        let err = generate_with(0.01, dir.path(), &options, &|_| {}).unwrap_err();
        assert!(
            err.to_string().contains("unknown TPC-H table 'lineitems'"),
            "{err}"
        );
    }

    #[test]
    fn default_out_dir_names_the_scale_factor() {
        assert_eq!(default_out_dir(1.0), PathBuf::from("data/tpch-sf1"));
        assert_eq!(default_out_dir(0.01), PathBuf::from("data/tpch-sf0.01"));
        assert_eq!(default_out_dir(10.0), PathBuf::from("data/tpch-sf10"));
    }

    #[test]
    fn sf_0_01_row_counts_and_types() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Mutex::new(Vec::new());
        let reports = generate_with(0.01, dir.path(), &GenerateOptions::default(), &|r| {
            seen.lock().unwrap().push(r.table)
        })
        .unwrap();
        assert_eq!(seen.into_inner().unwrap().len(), 8);
        let counts: Vec<(&str, u64)> = reports.iter().map(|r| (r.table, r.rows)).collect();
        assert_eq!(
            counts,
            vec![
                ("lineitem", 60175),
                ("orders", 15000),
                ("partsupp", 8000),
                ("part", 2000),
                ("customer", 1500),
                ("supplier", 100),
                ("nation", 25),
                ("region", 5),
            ]
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "customer", "lineitem", "nation", "orders", "part", "partsupp", "region",
                "supplier"
            ]
            .map(|t| format!("{t}.parquet"))
        );
        for r in &reports {
            let (schema, batches) = read_all(&r.path);
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows as u64, r.rows, "{}", r.table);
            // the Parquet file keeps the generator's Arrow types
            assert_eq!(
                schema.fields(),
                table_schema(r.table).unwrap().fields(),
                "{}",
                r.table
            );
        }
        let (_, region) = read_all(&dir.path().join("region.parquet"));
        let names = arrow::util::pretty::pretty_format_batches(&region)
            .unwrap()
            .to_string();
        for n in ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"] {
            assert!(names.contains(n), "{names}");
        }
    }

    #[test]
    fn several_row_groups_same_rows_any_thread_count() {
        let one = tempfile::tempdir().unwrap();
        let many = tempfile::tempdir().unwrap();
        let tables = vec!["orders".to_string(), "partsupp".into(), "nation".into()];
        // one part per table, one thread
        let single = GenerateOptions {
            row_group_rows: usize::MAX,
            parts: None,
            threads: 1,
            tables: tables.clone(),
        };
        generate_with(0.01, one.path(), &single, &|_| {}).unwrap();
        // many small parts, three threads
        let split = GenerateOptions {
            row_group_rows: 1000,
            parts: None,
            threads: 3,
            tables: tables.clone(),
        };
        let reports = generate_with(0.01, many.path(), &split, &|_| {}).unwrap();
        assert_eq!(reports[0].row_groups, 15);
        assert_eq!(
            row_groups(&many.path().join("orders.parquet")),
            vec![1000; 15]
        );
        assert_eq!(row_groups(&one.path().join("orders.parquet")), vec![15000]);
        assert_eq!(
            row_groups(&many.path().join("partsupp.parquet")),
            vec![1000; 8]
        );
        for t in &tables {
            let (_, a) = read_all(&one.path().join(format!("{t}.parquet")));
            let (_, b) = read_all(&many.path().join(format!("{t}.parquet")));
            let a = arrow::compute::concat_batches(&a[0].schema(), &a).unwrap();
            let b = arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
            assert_eq!(a, b, "{t}: split generation differs");
        }
        // same parts with a different thread count: byte-identical files
        let again = tempfile::tempdir().unwrap();
        let split1 = GenerateOptions {
            threads: 1,
            ..split
        };
        generate_with(0.01, again.path(), &split1, &|_| {}).unwrap();
        for t in &tables {
            let a = std::fs::read(many.path().join(format!("{t}.parquet"))).unwrap();
            let b = std::fs::read(again.path().join(format!("{t}.parquet"))).unwrap();
            assert!(a == b, "{t}: output depends on the thread count");
        }
    }

    #[test]
    fn lineitem_parts_follow_orders() {
        let dir = tempfile::tempdir().unwrap();
        let options = GenerateOptions {
            row_group_rows: 20_000,
            parts: None,
            threads: 2,
            tables: vec!["lineitem".into()],
        };
        let reports = generate_with(0.01, dir.path(), &options, &|_| {}).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].rows, 60175);
        // 15000 orders * 4 / 20000 = 3 parts of 5000 orders each
        let groups = row_groups(&dir.path().join("lineitem.parquet"));
        assert_eq!(groups.len(), 3);
        assert_eq!(groups.iter().sum::<i64>(), 60175);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["lineitem.parquet"]);
    }

    #[test]
    fn parts_fix_the_row_groups_and_progress_adds_up() {
        let dir = tempfile::tempdir().unwrap();
        let options = GenerateOptions {
            parts: Some(3),
            tables: vec!["lineitem".into(), "customer".into(), "region".into()],
            ..Default::default()
        };
        let done = AtomicUsize::new(0);
        let parts_seen = AtomicUsize::new(0);
        let reports = generate_with_progress(0.01, dir.path(), &options, &|_| {}, &|rows| {
            done.fetch_add(rows as usize, Ordering::Relaxed);
            parts_seen.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let rows: u64 = reports.iter().map(|r| r.rows).sum();
        assert_eq!(done.into_inner() as u64, rows);
        // 3 + 3 + 1: region is always one part
        assert_eq!(parts_seen.into_inner(), 7);
        assert_eq!(row_groups(&dir.path().join("lineitem.parquet")).len(), 3);
        assert_eq!(
            row_groups(&dir.path().join("customer.parquet")),
            vec![500; 3]
        );
        assert_eq!(row_groups(&dir.path().join("region.parquet")), vec![5]);
        // the estimate is close for lineitem, exact for the others
        let estimate = estimated_rows(0.01, &options);
        assert!(estimate.abs_diff(rows) < 1000, "{estimate} vs {rows}");

        let err = generate_with(
            0.01,
            dir.path(),
            &GenerateOptions {
                parts: Some(0),
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("parts"), "{err}");
    }

    #[test]
    fn expected_row_counts() {
        assert_eq!(expected_rows("orders", 1.0), Some(1_500_000..=1_500_000));
        assert_eq!(expected_rows("partsupp", 0.01), Some(8000..=8000));
        assert_eq!(expected_rows("nation", 10.0), Some(25..=25));
        assert_eq!(expected_rows("lineitem", 0.01), Some(15000..=105_000));
        assert!(expected_rows("lineitem", 0.01).unwrap().contains(&60175));
        assert_eq!(expected_rows("lineitems", 1.0), None);
    }
}
