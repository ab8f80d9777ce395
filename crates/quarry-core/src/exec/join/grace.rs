//! Grace hash join: build sides that do not fit the memory budget are cut
//! by a hash of the keys into sub-partitions of spill files, the probe side
//! with them, and joined sub-partition by sub-partition.

use super::*;

/// Sub-partitions a spilled build side (and the probe side with it) is cut into.
pub(super) const GRACE_PARTITIONS: usize = 16;

/// How many times a sub-partition that still does not fit is cut again,
/// with a new hash seed each time, before the join gives up.
const MAX_GRACE_DEPTH: usize = 3;

const BUILD_OWNER: &str = "a hash join's build side";
const PROBE_OWNER: &str = "a hash join's probe side (grace hash join)";

/// The build side of one hash join operator, as the task context hands it
/// over: a table in memory, or sub-partitions in spill files.
pub struct JoinBuild {
    pub side: BuildSide,
    /// The table's memory when this operator alone owns it (a partitioned
    /// join); a broadcast table's memory is held by whoever shares it.
    pub reservation: Option<Reservation>,
}

#[derive(Clone)]
pub enum BuildSide {
    Table(Arc<JoinHashTable>),
    Spilled(Arc<SpilledBuild>),
}

/// A build side that did not fit: its rows cut by a hash of the keys into
/// `GRACE_PARTITIONS` sub-partitions of spill files (read-only, so the
/// probe tasks of a broadcast join can share them). The files are removed
/// when the last owner drops it.
pub struct SpilledBuild {
    /// A table of no rows: the build schema and key types.
    empty: Arc<JoinHashTable>,
    keys: Vec<Expr>,
    files: Vec<Vec<SpillFile>>,
    rows: usize,
    has_null_key: bool,
    spilled: SpillCount,
    /// Whether some operator already reports `spilled` (counted once even
    /// when shared by many tasks).
    reported: AtomicBool,
}

impl SpilledBuild {
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    pub fn spilled(&self) -> SpillCount {
        self.spilled
    }
}

/// Builds the hash table of `batches` if the budget allows it, else spills
/// them by sub-partition. With `range`, the one key is compared by that
/// inequality (a range join, which cannot be split by hash: past the budget
/// it is the memory error).
pub fn build_side(
    schema: &SchemaRef,
    keys: &[Expr],
    range: Option<BinaryOp>,
    batches: impl Iterator<Item = Result<RecordBatch>>,
    pool: &Arc<MemoryPool>,
    temp_dir: &Path,
    cancel: &AtomicBool,
) -> Result<JoinBuild> {
    let mut batches = batches;
    let held = match load_table(schema, keys, range, &mut batches, pool, cancel)? {
        Loaded::Table(table, r) => {
            return Ok(JoinBuild {
                side: BuildSide::Table(Arc::from(table)),
                reservation: Some(r),
            })
        }
        Loaded::Refused(held) => held,
    };
    if range.is_some() {
        let held_bytes: usize = held.iter().map(|(b, _)| batch_bytes(b)).sum();
        return Err(QuarryError::Execution(format!(
            "a range join's build side (joined by an inequality, which cannot be split by \
             hash to spill) needs more than {} but the memory limit of {} is used up ({} in \
             use); raise it with SET memory_limit",
            format_bytes(held_bytes),
            format_bytes(pool.limit()),
            format_bytes(pool.used())
        )));
    }
    let empty = Arc::new(JoinHashTable::build(schema.clone(), vec![], keys)?);
    let splitter = Splitter::new(keys, &empty.key_types, 0)?;
    let mut buckets = Buckets::new(splitter, schema.clone(), pool, temp_dir, BUILD_OWNER);
    buckets.push_all(held, &mut batches)?;
    buckets.spill_all()?;
    let rows = buckets.rows();
    let has_null_key = buckets.saw_null_key;
    let spilled = buckets.spilled;
    let files = buckets.parts.into_iter().map(|p| p.files).collect();
    Ok(JoinBuild {
        side: BuildSide::Spilled(Arc::new(SpilledBuild {
            empty,
            keys: keys.to_vec(),
            files,
            rows,
            has_null_key,
            spilled,
            reported: AtomicBool::new(false),
        })),
        reservation: None,
    })
}

/// A batch read for a table, with the memory it holds.
type Held = (RecordBatch, Reservation);

enum Loaded {
    Table(Box<JoinHashTable>, Reservation),
    /// The budget refused: the batches read so far (the rest is still in
    /// the iterator).
    Refused(Vec<Held>),
}

/// Bytes a table of `rows` rows and `bytes` of data needs beyond the data,
/// at worst, while it is built: the copy `concat_batches` makes, the row ids
/// and the largest index (a slot table at most 1/3 full: 48 B a row; the
/// `arrow::row` keys of non-integer keys on top).
fn table_overhead(rows: usize, bytes: usize, key_types: &[DataType], range: bool) -> usize {
    let mut per_row = 4 + 48;
    if range {
        // row order, its merge scratch, and the keys in order (views for
        // strings)
        per_row = 4 + 4 + 16;
    } else if !key_types.iter().all(is_int_key) {
        per_row += 8 + 24 * key_types.len();
    }
    bytes + rows * per_row + 4096
}

/// Reads `batches`, reserving as it goes, and builds their table if the
/// budget allows; the table's reservation ends up at its actual size.
fn load_table(
    schema: &SchemaRef,
    keys: &[Expr],
    range: Option<BinaryOp>,
    batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
    pool: &Arc<MemoryPool>,
    cancel: &AtomicBool,
) -> Result<Loaded> {
    let mut held: Vec<Held> = Vec::new();
    let (mut rows, mut bytes) = (0, 0);
    for b in batches {
        check_cancel(cancel)?;
        let b = b?;
        if b.num_rows() == 0 {
            continue;
        }
        let size = batch_bytes(&b);
        let mut r = Reservation::new(pool, BUILD_OWNER);
        let fits = r.try_grow(size);
        rows += b.num_rows();
        bytes += size;
        held.push((b, r));
        if !fits {
            return Ok(Loaded::Refused(held));
        }
    }
    if rows == 0 {
        // Nothing to hold: an empty table never spills.
        let table = JoinHashTable::build(schema.clone(), vec![], keys)?;
        return Ok(Loaded::Table(
            Box::new(table),
            Reservation::new(pool, BUILD_OWNER),
        ));
    }
    let key_types = keys
        .iter()
        .map(|k| k.data_type(schema))
        .collect::<Result<Vec<_>>>()?;
    let mut extra = Reservation::new(pool, BUILD_OWNER);
    if !extra.try_grow(table_overhead(rows, bytes, &key_types, range.is_some())) {
        return Ok(Loaded::Refused(held));
    }
    let (batches, reservations): (Vec<_>, Vec<_>) = held.into_iter().unzip();
    let table = JoinHashTable::build_cancellable(schema.clone(), batches, keys, range, cancel)?;
    // Trade the estimate for the actual size.
    drop(reservations);
    drop(extra);
    let mut r = Reservation::new(pool, BUILD_OWNER);
    if r.try_grow(table.memory_size()) {
        Ok(Loaded::Table(Box::new(table), r))
    } else {
        // Another task took the memory in between: spill after all.
        Ok(Loaded::Refused(vec![(table.batch, r)]))
    }
}

/// Cuts batches into sub-partitions by a hash of their keys. The seed
/// depends on the depth and differs from the exchange's: all rows of one
/// exchange partition share a residue of its hash, which must not skew the
/// sub-partitions, nor a sub-partition's re-partitioning.
struct Splitter {
    keys: Vec<Expr>,
    converter: RowConverter,
    hasher: ahash::RandomState,
}

impl Splitter {
    fn new(keys: &[Expr], key_types: &[DataType], depth: usize) -> Result<Self> {
        let d = depth as u64;
        Ok(Splitter {
            keys: keys.to_vec(),
            converter: RowConverter::new(
                key_types
                    .iter()
                    .map(|t| SortField::new(t.clone()))
                    .collect(),
            )?,
            hasher: ahash::RandomState::with_seeds(
                0x243f_6a88_85a3_08d3 ^ d,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0 ^ d.rotate_left(32),
                0x082e_fa98_ec4e_6c89,
            ),
        })
    }

    /// The non-empty sub-partitions of `batch`, and whether some row has a
    /// NULL key.
    fn split(&self, batch: &RecordBatch) -> Result<(Vec<(usize, RecordBatch)>, bool)> {
        let keys = self
            .keys
            .iter()
            .map(|e| evaluate_array(e, batch))
            .collect::<Result<Vec<_>>>()?;
        let keys = equality_keys(&keys)?;
        let has_null = key_nulls(&keys).is_some_and(|b| b.null_count() > 0);
        let mut idx: Vec<Vec<u32>> = vec![Vec::new(); GRACE_PARTITIONS];
        if keys.is_empty() {
            idx[0] = (0..batch.num_rows() as u32).collect();
        } else {
            let rows = self.converter.convert_columns(&keys)?;
            for (i, row) in rows.iter().enumerate() {
                let h = self.hasher.hash_one(row.as_ref());
                idx[(h % GRACE_PARTITIONS as u64) as usize].push(i as u32);
            }
        }
        let mut out = Vec::new();
        for (p, idx) in idx.into_iter().enumerate() {
            if idx.len() == batch.num_rows() {
                out.push((p, batch.clone()));
            } else if !idx.is_empty() {
                let idx = UInt32Array::new(ScalarBuffer::from(idx), None);
                let piece = arrow::compute::take_record_batch(batch, &idx)?;
                out.push((p, compact_views(piece)?));
            }
        }
        Ok((out, has_null))
    }
}

/// One sub-partition: rows buffered under a reservation, and spill files.
struct Bucket {
    batches: Vec<RecordBatch>,
    reservation: Reservation,
    pool: Arc<MemoryPool>,
    files: Vec<SpillFile>,
    rows: usize,
}

impl Bucket {
    /// Writes the buffered batches to a file and gives their memory back;
    /// false when there were none.
    fn spill(
        &mut self,
        temp_dir: &Path,
        schema: &SchemaRef,
        count: &mut SpillCount,
    ) -> Result<bool> {
        if self.batches.is_empty() {
            return Ok(false);
        }
        // Pieces cut from batches are small: one batch per file reads back
        // faster and cuts better if this sub-partition must be cut again.
        let mut copy = Reservation::new(&self.pool, PROBE_OWNER);
        if self.batches.len() > 1 && copy.try_grow(self.reservation.size()) {
            self.batches = vec![concat_batches(schema, &self.batches)?];
        }
        let file = SpillFile::write(temp_dir, schema, &self.batches)?;
        count.add(&file);
        self.files.push(file);
        self.batches.clear();
        self.reservation.free();
        Ok(true)
    }

    /// Its rows: the buffered batches first, then the files'.
    fn drain(&mut self) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
        std::mem::take(&mut self.batches)
            .into_iter()
            .map(Ok)
            .chain(read_files(&self.files))
    }
}

/// The batches of `files`, in order, one at a time.
fn read_files(files: &[SpillFile]) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
    files.iter().flat_map(|f| match f.reader() {
        Ok(r) => Box::new(r) as Box<dyn Iterator<Item = Result<RecordBatch>>>,
        Err(e) => Box::new(std::iter::once(Err(e))),
    })
}

/// Rows cut into sub-partitions, each buffered under its own reservation;
/// when the budget refuses, or the buffers pass `max_buffered`, the largest
/// bucket goes to a spill file.
struct Buckets {
    splitter: Splitter,
    schema: SchemaRef,
    parts: Vec<Bucket>,
    temp_dir: PathBuf,
    spilled: SpillCount,
    saw_null_key: bool,
    /// A share of the limit, so that one operator's buffers leave room for
    /// the tables of others (and of its own finish).
    max_buffered: usize,
}

/// The share of the memory limit one [`Buckets`] may buffer.
const BUCKETS_SHARE: usize = 8;

impl Buckets {
    fn new(
        splitter: Splitter,
        schema: SchemaRef,
        pool: &Arc<MemoryPool>,
        temp_dir: &Path,
        owner: &'static str,
    ) -> Self {
        Buckets {
            splitter,
            schema,
            parts: (0..GRACE_PARTITIONS)
                .map(|_| Bucket {
                    batches: vec![],
                    reservation: Reservation::new(pool, owner),
                    pool: pool.clone(),
                    files: vec![],
                    rows: 0,
                })
                .collect(),
            temp_dir: temp_dir.to_path_buf(),
            spilled: SpillCount::default(),
            saw_null_key: false,
            max_buffered: pool.limit() / BUCKETS_SHARE,
        }
    }

    fn buffered(&self) -> usize {
        self.parts.iter().map(|p| p.reservation.size()).sum()
    }

    fn rows(&self) -> usize {
        self.parts.iter().map(|p| p.rows).sum()
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let (pieces, has_null) = self.splitter.split(batch)?;
        self.saw_null_key |= has_null;
        for (i, piece) in pieces {
            self.push_piece(i, piece)?;
        }
        Ok(())
    }

    /// Pushes `held` (each freed once cut) and then the rest of `batches`.
    fn push_all(
        &mut self,
        held: Vec<Held>,
        batches: &mut dyn Iterator<Item = Result<RecordBatch>>,
    ) -> Result<()> {
        for (b, r) in held {
            self.push(&b)?;
            drop((b, r));
        }
        for b in batches {
            self.push(&b?)?;
        }
        Ok(())
    }

    fn push_piece(&mut self, i: usize, piece: RecordBatch) -> Result<()> {
        let size = batch_bytes(&piece);
        self.parts[i].rows += piece.num_rows();
        loop {
            if self.buffered() + size <= self.max_buffered
                && self.parts[i].reservation.try_grow(size)
            {
                self.parts[i].batches.push(piece);
                return Ok(());
            }
            let largest = (0..self.parts.len())
                .filter(|&j| !self.parts[j].batches.is_empty())
                .max_by_key(|&j| self.parts[j].reservation.size());
            match largest {
                Some(j) => self.spill(j)?,
                None => {
                    // Nothing buffered to make room: the piece goes alone.
                    let file = SpillFile::write(&self.temp_dir, &self.schema, &[piece])?;
                    self.spilled.add(&file);
                    self.parts[i].files.push(file);
                    return Ok(());
                }
            }
        }
    }

    fn spill(&mut self, j: usize) -> Result<()> {
        self.parts[j].spill(&self.temp_dir, &self.schema, &mut self.spilled)?;
        Ok(())
    }

    fn spill_all(&mut self) -> Result<()> {
        (0..self.parts.len()).try_for_each(|j| self.spill(j))
    }
}

/// The state of a hash join whose build side was spilled.
pub(super) struct Grace {
    build: Arc<SpilledBuild>,
    /// The probe rows, by the build's sub-partitions.
    probe: Buckets,
    left_schema: SchemaRef,
    pool: Arc<MemoryPool>,
    temp_dir: PathBuf,
}

impl Grace {
    /// Keeps a probe batch, cut by the build's sub-partitions, for the
    /// finish.
    pub(super) fn push_probe(&mut self, batch: &RecordBatch) -> Result<()> {
        self.probe.push(batch)
    }
}

impl HashJoinOp {
    /// A join over the build side the task context gave: the in-memory
    /// table, or a spilled build for a grace hash join.
    #[allow(clippy::too_many_arguments)]
    pub fn with_build(
        kind: JoinKind,
        build: JoinBuild,
        probe_keys: Vec<Expr>,
        filter: Option<Expr>,
        left_schema: SchemaRef,
        output_schema: SchemaRef,
        pool: &Arc<MemoryPool>,
        temp_dir: &Path,
    ) -> Result<Self> {
        let spilled = match build.side {
            BuildSide::Table(table) => {
                let mut op =
                    Self::new(kind, table, probe_keys, filter, left_schema, output_schema)?;
                op._reservation = build.reservation;
                return Ok(op);
            }
            BuildSide::Spilled(s) => s,
        };
        let splitter = Splitter::new(&probe_keys, &spilled.empty.key_types, 0)?;
        let mut op = Self::new(
            kind,
            spilled.empty.clone(),
            probe_keys,
            filter,
            left_schema.clone(),
            output_schema,
        )?;
        op.build_has_null_key = spilled.has_null_key;
        op.build_nonempty = spilled.rows > 0;
        // A shared (broadcast) build is reported by the first of its tasks.
        if !spilled.reported.swap(true, Ordering::Relaxed) {
            op.spilled += spilled.spilled;
        }
        op.grace = Some(Box::new(Grace {
            probe: Buckets::new(splitter, left_schema.clone(), pool, temp_dir, PROBE_OWNER),
            build: spilled,
            left_schema,
            pool: pool.clone(),
            temp_dir: temp_dir.to_path_buf(),
        }));
        Ok(op)
    }

    /// Joins sub-partition by sub-partition; each one's memory is given
    /// back before the next.
    pub(super) fn finish_grace(
        &mut self,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let Some(mut grace) = self.grace.take() else {
            return Ok(());
        };
        let mut parts = std::mem::take(&mut grace.probe.parts);
        let build = grace.build.clone();
        for i in 0..parts.len() {
            let (done, pending) = parts.split_at_mut(i + 1);
            let probe = &mut done[i];
            self.join_sub(&mut grace, &build.files[i], probe, pending, 0, emit)?;
            // Its probe rows and files are gone before the next.
            drop(std::mem::take(&mut probe.files));
            probe.reservation.free();
        }
        self.spilled += grace.probe.spilled;
        Ok(())
    }

    /// Joins one sub-partition: its build rows (in `build_files`) against
    /// its probe rows. When the build rows do not fit, first the probe rows
    /// still buffered (of this and the `pending` sub-partitions) go to disk;
    /// if that is not enough, both sides are cut again.
    fn join_sub(
        &mut self,
        grace: &mut Grace,
        build_files: &[SpillFile],
        probe: &mut Bucket,
        pending: &mut [Bucket],
        depth: usize,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let outputs_build_rows = matches!(
            self.kind,
            JoinKind::Right | JoinKind::Full | JoinKind::RightSemi | JoinKind::RightAnti
        );
        let outputs_probe_rows = matches!(
            self.kind,
            JoinKind::Left | JoinKind::Full | JoinKind::Anti | JoinKind::Mark
        );
        if (probe.rows == 0 && !outputs_build_rows)
            || (build_files.is_empty() && !outputs_probe_rows)
        {
            return Ok(());
        }
        let build = grace.build.clone();
        let schema = build.empty.schema.clone();
        let mut reader: Box<dyn Iterator<Item = Result<RecordBatch>>> =
            Box::new(read_files(build_files));
        let mut freed_probe = false;
        let held = loop {
            // (the task looks at the cancel flag between sub-partitions)
            // (a grace join's spilled build is never a range join's)
            match load_table(
                &schema,
                &build.keys,
                None,
                &mut reader,
                &grace.pool,
                &AtomicBool::new(false),
            )? {
                Loaded::Table(table, reservation) => {
                    drop(reader);
                    self.table = Arc::from(table);
                    if outputs_build_rows {
                        self.build_matched = vec![false; self.table.num_rows()];
                    }
                    let mut out = Vec::new();
                    for b in probe.drain() {
                        self.probe_batch_into(&b?, emit)?;
                    }
                    self.emit_build_rows(&mut out)?;
                    out.into_iter().try_for_each(&mut *emit)?;
                    // Give this sub-partition's memory back before the next.
                    self.table = build.empty.clone();
                    self.build_matched = vec![];
                    drop(reservation);
                    return Ok(());
                }
                Loaded::Refused(held) if !freed_probe => {
                    freed_probe = true;
                    let (dir, sch) = (&grace.temp_dir, &grace.left_schema);
                    let mut any = probe.spill(dir, sch, &mut self.spilled)?;
                    for p in pending.iter_mut() {
                        any |= p.spill(dir, sch, &mut self.spilled)?;
                    }
                    if !any {
                        break held;
                    }
                    // Try again with the room made: what was read first.
                    let again: Vec<RecordBatch> = held.into_iter().map(|(b, _)| b).collect();
                    reader = Box::new(again.into_iter().map(Ok).chain(reader));
                }
                Loaded::Refused(held) => break held,
            }
        };
        let held_bytes: usize = held.iter().map(|(b, _)| batch_bytes(b)).sum();
        let kind = self.kind;
        let too_large = |why: &str| {
            QuarryError::Execution(format!(
                "{BUILD_OWNER} ({kind:?} join) {why}: more than {} of build rows of one sub-partition do not fit the memory limit of {} ({} in use); raise it with SET memory_limit",
                format_bytes(held_bytes),
                format_bytes(grace.pool.limit()),
                format_bytes(grace.pool.used())
            ))
        };
        if depth >= MAX_GRACE_DEPTH {
            return Err(too_large(&format!("after {MAX_GRACE_DEPTH} re-partitions")));
        }
        // Cut both sides of this sub-partition again, with a new seed.
        let splitter = Splitter::new(&build.keys, &build.empty.key_types, depth + 1)?;
        let mut sub_build =
            Buckets::new(splitter, schema, &grace.pool, &grace.temp_dir, BUILD_OWNER);
        sub_build.push_all(held, &mut reader)?;
        drop(reader);
        sub_build.spill_all()?;
        self.spilled += sub_build.spilled;
        if sub_build.parts.iter().filter(|p| p.rows > 0).count() <= 1 {
            // Every row has the same key: cutting again cannot help.
            return Err(too_large("cannot be split (one key has too many rows)"));
        }
        let splitter = Splitter::new(&self.probe_keys, &build.empty.key_types, depth + 1)?;
        let mut sub_probe = Buckets::new(
            splitter,
            grace.left_schema.clone(),
            &grace.pool,
            &grace.temp_dir,
            PROBE_OWNER,
        );
        for b in probe.drain() {
            sub_probe.push(&b?)?;
        }
        drop(std::mem::take(&mut probe.files));
        probe.reservation.free();
        let mut probe_parts = std::mem::take(&mut sub_probe.parts);
        self.spilled += sub_probe.spilled;
        for (i, b) in sub_build.parts.into_iter().enumerate() {
            let (done, pending) = probe_parts.split_at_mut(i + 1);
            let p = &mut done[i];
            self.join_sub(grace, &b.files, p, pending, depth + 1, emit)?;
            drop(std::mem::take(&mut p.files));
            p.reservation.free();
        }
        Ok(())
    }
}
