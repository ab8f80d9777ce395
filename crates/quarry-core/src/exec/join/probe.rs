//! The probe side: [`HashJoinOp`] streams the left input through a
//! [`JoinHashTable`], expanding key matches into output rows.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, BooleanArray, UInt32Array};
use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::hash_table::JoinHashTable;
use super::keys::check_columns;
use super::{Grace, MAX_BATCH_ROWS, NONE};
use crate::error::{QuarryError, Result};
use crate::exec::expr::{evaluate_array, evaluate_predicate};
use crate::exec::operator::{Operator, SpillCount};
use crate::plan::{Expr, JoinKind};
use crate::runtime::memory::Reservation;

/// `Some(first)` when `idx` is `first, first+1, …` (then a slice will do).
pub(super) fn contiguous(idx: &[u32]) -> Option<usize> {
    let first = *idx.first()?;
    idx.iter()
        .enumerate()
        .all(|(k, &i)| i as usize == first as usize + k)
        .then_some(first as usize)
}

pub(super) fn take_columns(columns: &[ArrayRef], indices: &UInt32Array) -> Result<Vec<ArrayRef>> {
    columns
        .iter()
        .map(|c| Ok(take(c.as_ref(), indices, None)?))
        .collect()
}

/// Columns of `batch` at rows `idx` (all valid).
pub(super) fn take_probe(batch: &RecordBatch, idx: &[u32]) -> Result<Vec<ArrayRef>> {
    match contiguous(idx) {
        Some(start) if start + idx.len() <= batch.num_rows() => {
            if start == 0 && idx.len() == batch.num_rows() {
                Ok(batch.columns().to_vec())
            } else {
                Ok(batch.slice(start, idx.len()).columns().to_vec())
            }
        }
        _ => take_columns(
            batch.columns(),
            &UInt32Array::new(ScalarBuffer::from(idx.to_vec()), None),
        ),
    }
}

/// Appends (probe row, build row) pairs, starting at `cursor` (probe row,
/// offset within its matches), until `probe` holds `limit` pairs or the rows
/// run out. With `unmatched`, a probe row without matches yields `(row, NONE)`.
pub(super) fn expand(
    groups: &[(u32, u32)],
    row_ids: &[u32],
    cursor: &mut (usize, u32),
    limit: usize,
    unmatched: bool,
    probe: &mut Vec<u32>,
    build: &mut Vec<u32>,
) {
    while cursor.0 < groups.len() && probe.len() < limit {
        let row = cursor.0;
        let (start, len) = groups[row];
        if len == 0 {
            if unmatched {
                probe.push(row as u32);
                build.push(NONE);
            }
            *cursor = (row + 1, 0);
            continue;
        }
        if len == 1 {
            // (a key the build side holds once, the usual case: two pushes,
            // not a call to copy one element and a resize)
            probe.push(row as u32);
            build.push(row_ids[start as usize]);
            *cursor = (row + 1, 0);
            continue;
        }
        let take = (len - cursor.1).min((limit - probe.len()) as u32);
        let s = (start + cursor.1) as usize;
        build.extend_from_slice(&row_ids[s..s + take as usize]);
        probe.resize(probe.len() + take as usize, row as u32);
        cursor.1 += take;
        if cursor.1 == len {
            *cursor = (row + 1, 0);
        }
    }
}

/// The residual predicate, rewritten over just the columns it reads.
pub(super) struct JoinFilter {
    pub(super) expr: Expr,
    /// Columns of left ++ right that the filter reads, in its new order.
    pub(super) columns: Vec<usize>,
    pub(super) schema: SchemaRef,
}

/// A probe batch being joined a part at a time (see `Operator::resume`).
pub(super) struct PendingProbe {
    pub(super) batch: RecordBatch,
    /// Per probe row, its range of matches.
    pub(super) groups: Vec<(u32, u32)>,
    /// Where to go on: probe row, and offset among its matches.
    pub(super) cursor: (usize, u32),
    /// Left/Full with a filter: which probe rows some pair passed.
    pub(super) probe_matched: Vec<bool>,
}

/// Candidate pairs a join looks at per call before it hands on what it has:
/// a probe batch against a cross join's build side makes billions.
pub(super) const PAIRS_PER_STEP: usize = 8 * MAX_BATCH_ROWS;

pub struct HashJoinOp {
    pub(super) kind: JoinKind,
    pub(super) table: Arc<JoinHashTable>,
    pub(super) probe_keys: Vec<Expr>,
    pub(super) filter: Option<JoinFilter>,
    pub(super) left_width: usize,
    pub(super) output_schema: SchemaRef,
    /// Right/Full: which build rows found a match.
    pub(super) build_matched: Vec<bool>,
    pub(super) finished: bool,
    /// Scratch: per probe row, its range of matches.
    pub(super) groups: Vec<(u32, u32)>,
    /// The probe batch whose pairs are not all emitted yet.
    pub(super) pending: Option<PendingProbe>,
    /// Properties of the whole build side (in grace mode `table` holds one
    /// sub-partition at a time, but mark joins answer for all of it).
    pub(super) build_has_null_key: bool,
    pub(super) build_nonempty: bool,
    /// Set when the build side was spilled: the probe side is partitioned
    /// too and joined sub-partition by sub-partition at the finish.
    pub(super) grace: Option<Box<Grace>>,
    /// What this operator spilled (build and probe sides).
    pub(super) spilled: SpillCount,
    /// The memory of a table this operator owns alone (a partitioned join);
    /// given back when the operator is dropped.
    pub(super) _reservation: Option<Reservation>,
    /// See [`HashJoinOp::counting_pairs`].
    pub(super) count_pairs: bool,
}

impl HashJoinOp {
    /// `probe_keys` are expressions over the left schema, of the same types as the build keys (the planner casts).
    /// `filter` is a residual predicate over the concatenation left ++ right columns (column i < left.len() is left column i,
    /// column left.len()+j is right column j); a pair of rows matches only when the keys are equal AND the filter is true.
    /// `output_schema`: Inner/Left/Right/Full: left fields ++ right fields (fields of the outer side made nullable by the planner);
    /// Semi/Anti: left fields; Mark: left fields ++ one nullable Boolean field.
    pub fn new(
        kind: JoinKind,
        table: Arc<JoinHashTable>,
        probe_keys: Vec<Expr>,
        filter: Option<Expr>,
        left_schema: SchemaRef,
        output_schema: SchemaRef,
    ) -> Result<Self> {
        let left_width = left_schema.fields().len();
        let right_width = table.schema.fields().len();
        if probe_keys.len() != table.key_types.len() {
            return Err(QuarryError::exec(format!(
                "hash join: {} probe keys for {} build keys",
                probe_keys.len(),
                table.key_types.len()
            )));
        }
        check_columns(
            &probe_keys.iter().collect::<Vec<_>>(),
            left_width,
            "a probe key",
        )?;
        for (k, build_type) in probe_keys.iter().zip(&table.key_types) {
            let t = k.data_type(&left_schema)?;
            if &t != build_type {
                return Err(QuarryError::exec(format!(
                    "hash join: probe key of type {t} against build key of type {build_type}"
                )));
            }
        }
        let expected = match kind {
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full => {
                left_width + right_width
            }
            JoinKind::Semi | JoinKind::Anti => left_width,
            JoinKind::Mark => left_width + 1,
            JoinKind::RightSemi | JoinKind::RightAnti => right_width,
        };
        if output_schema.fields().len() != expected {
            return Err(QuarryError::exec(format!(
                "hash join: {kind:?} join output has {} columns, expected {expected}",
                output_schema.fields().len()
            )));
        }
        let filter = match filter {
            None => None,
            Some(f) => {
                check_columns(&[&f], left_width + right_width, "the join filter")?;
                let mut columns = vec![];
                f.columns(&mut columns);
                columns.sort_unstable();
                columns.dedup();
                let fields: Vec<Field> = columns
                    .iter()
                    .map(|&c| {
                        let field = if c < left_width {
                            left_schema.field(c)
                        } else {
                            table.schema.field(c - left_width)
                        };
                        field.clone().with_nullable(true)
                    })
                    .collect();
                let pos = |c: usize| columns.binary_search(&c).unwrap_or_default();
                let expr = f.remap_columns(&pos);
                Some(JoinFilter {
                    expr,
                    columns,
                    schema: Arc::new(Schema::new(fields)),
                })
            }
        };
        let build_matched = match kind {
            JoinKind::Right | JoinKind::Full | JoinKind::RightSemi | JoinKind::RightAnti => {
                vec![false; table.num_rows()]
            }
            _ => vec![],
        };
        Ok(HashJoinOp {
            kind,
            build_has_null_key: table.has_null_key,
            build_nonempty: table.num_rows() > 0,
            table,
            probe_keys,
            filter,
            left_width,
            output_schema,
            build_matched,
            finished: false,
            groups: vec![],
            pending: None,
            grace: None,
            spilled: SpillCount::default(),
            _reservation: None,
            count_pairs: false,
        })
    }

    /// For an inner or left join without a residual filter whose columns
    /// nobody reads (a `count(*)` above it): the join emits, per probe
    /// batch, one batch without columns whose row count is its number of
    /// output rows, instead of making them. A join of two large sides can
    /// have more pairs than could ever be made one by one.
    pub fn counting_pairs(mut self) -> Result<Self> {
        if !matches!(self.kind, JoinKind::Inner | JoinKind::Left) || self.filter.is_some() {
            return Err(QuarryError::exec(format!(
                "internal error: only an inner or left join without a filter can count its pairs, not a {:?} join{}",
                self.kind,
                if self.filter.is_some() { " with a filter" } else { "" }
            )));
        }
        self.count_pairs = true;
        self.output_schema = Arc::new(Schema::empty());
        Ok(self)
    }

    pub(super) fn batch(&self, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
        let opts = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &opts,
        )?)
    }

    /// The joined rows of pairs (probe row, build row or NONE).
    pub(super) fn gather(&self, probe: &RecordBatch, p: &[u32], b: &[u32]) -> Result<RecordBatch> {
        let mut columns = take_probe(probe, p)?;
        columns.extend(self.table.take_rows(b)?);
        self.batch(columns, p.len())
    }

    /// Which pairs pass the residual filter.
    pub(super) fn evaluate_filter(
        &self,
        f: &JoinFilter,
        probe: &RecordBatch,
        p: &[u32],
        b: &[u32],
    ) -> Result<BooleanArray> {
        let p_idx = UInt32Array::new(ScalarBuffer::from(p.to_vec()), None);
        let b_idx = UInt32Array::new(ScalarBuffer::from(b.to_vec()), None);
        let columns = f
            .columns
            .iter()
            .map(|&c| {
                Ok(if c < self.left_width {
                    take(probe.column(c).as_ref(), &p_idx, None)?
                } else {
                    take(
                        self.table.batch.column(c - self.left_width).as_ref(),
                        &b_idx,
                        None,
                    )?
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = RecordBatchOptions::new().with_row_count(Some(p.len()));
        let batch = RecordBatch::try_new_with_options(f.schema.clone(), columns, &opts)?;
        evaluate_predicate(&f.expr, &batch)
    }

    /// Inner/Left/Right/Full: emits the joined pairs of the pending probe
    /// batch, going on from where the last call stopped, until about
    /// `PAIRS_PER_STEP` candidate pairs have been looked at. Returns
    /// whether the batch is done.
    pub(super) fn probe_pairs(
        &self,
        p: &mut PendingProbe,
        build_matched: &mut [bool],
        out: &mut Vec<RecordBatch>,
    ) -> Result<bool> {
        let outer_left = matches!(self.kind, JoinKind::Left | JoinKind::Full);
        let track_build = matches!(self.kind, JoinKind::Right | JoinKind::Full);
        let (batch, groups) = (&p.batch, &p.groups);
        let mut examined = 0;
        let (mut out_p, mut out_b) = (Vec::new(), Vec::new());
        let Some(f) = &self.filter else {
            if self.count_pairs {
                // (this path never stops within a probe row: cursor.1 is 0)
                // (a left join's row without matches is one row)
                let rows = |len: u32| if outer_left { len.max(1) } else { len } as usize;
                let pairs: usize = groups[p.cursor.0..].iter().map(|g| rows(g.1)).sum();
                p.cursor = (groups.len(), 0);
                if pairs > 0 {
                    out.push(self.batch(vec![], pairs)?);
                }
                return Ok(true);
            }
            loop {
                if examined >= PAIRS_PER_STEP {
                    return Ok(false);
                }
                expand(
                    groups,
                    &self.table.row_ids,
                    &mut p.cursor,
                    MAX_BATCH_ROWS,
                    outer_left,
                    &mut out_p,
                    &mut out_b,
                );
                if out_p.is_empty() {
                    return Ok(true);
                }
                examined += out_p.len();
                if track_build {
                    for &b in out_b.iter().filter(|&&b| b != NONE) {
                        build_matched[b as usize] = true;
                    }
                }
                out.push(self.gather(batch, &out_p, &out_b)?);
                out_p.clear();
                out_b.clear();
            }
        };
        let (mut cp, mut cb) = (Vec::new(), Vec::new());
        loop {
            if examined >= PAIRS_PER_STEP {
                if !out_p.is_empty() {
                    out.push(self.gather(batch, &out_p, &out_b)?);
                }
                return Ok(false);
            }
            cp.clear();
            cb.clear();
            expand(
                groups,
                &self.table.row_ids,
                &mut p.cursor,
                MAX_BATCH_ROWS,
                false,
                &mut cp,
                &mut cb,
            );
            if cp.is_empty() {
                break;
            }
            examined += cp.len();
            let mask = self.evaluate_filter(f, batch, &cp, &cb)?;
            for k in mask.values().set_indices() {
                let (pr, b) = (cp[k], cb[k]);
                if outer_left {
                    p.probe_matched[pr as usize] = true;
                }
                if track_build {
                    build_matched[b as usize] = true;
                }
                out_p.push(pr);
                out_b.push(b);
                if out_p.len() == MAX_BATCH_ROWS {
                    out.push(self.gather(batch, &out_p, &out_b)?);
                    out_p.clear();
                    out_b.clear();
                }
            }
        }
        for (i, _) in p.probe_matched.iter().enumerate().filter(|(_, &m)| !m) {
            out_p.push(i as u32);
            out_b.push(NONE);
            if out_p.len() == MAX_BATCH_ROWS {
                out.push(self.gather(batch, &out_p, &out_b)?);
                out_p.clear();
                out_b.clear();
            }
        }
        if !out_p.is_empty() {
            out.push(self.gather(batch, &out_p, &out_b)?);
        }
        Ok(true)
    }

    /// Goes on with the pending probe batch; once it is done, its scratch
    /// space goes back to the operator.
    pub(super) fn step_pending(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        let mut build_matched = std::mem::take(&mut self.build_matched);
        let done = self.probe_pairs(&mut p, &mut build_matched, out);
        self.build_matched = build_matched;
        if done? {
            self.groups = p.groups;
        } else {
            self.pending = Some(p);
        }
        Ok(())
    }

    /// RightSemi/RightAnti: records which build rows some probe row matches;
    /// the rows are emitted at `finish`.
    pub(super) fn mark_build_matches(
        &self,
        batch: &RecordBatch,
        groups: &[(u32, u32)],
        build_matched: &mut [bool],
    ) -> Result<()> {
        let Some(f) = &self.filter else {
            for &(start, len) in groups {
                for &b in &self.table.row_ids[start as usize..(start + len) as usize] {
                    build_matched[b as usize] = true;
                }
            }
            return Ok(());
        };
        let mut cursor = (0usize, 0u32);
        let (mut cp, mut cb) = (Vec::new(), Vec::new());
        loop {
            cp.clear();
            cb.clear();
            expand(
                groups,
                &self.table.row_ids,
                &mut cursor,
                MAX_BATCH_ROWS,
                false,
                &mut cp,
                &mut cb,
            );
            if cp.is_empty() {
                return Ok(());
            }
            let mask = self.evaluate_filter(f, batch, &cp, &cb)?;
            for k in mask.values().set_indices() {
                build_matched[cb[k] as usize] = true;
            }
        }
    }

    /// Semi/Anti/Mark: per probe row, whether some build row matches it.
    pub(super) fn probe_matches(
        &self,
        batch: &RecordBatch,
        groups: &[(u32, u32)],
    ) -> Result<Vec<bool>> {
        let Some(f) = &self.filter else {
            return Ok(groups.iter().map(|&(_, len)| len > 0).collect());
        };
        let mut matched = vec![false; batch.num_rows()];
        let mut cursor = (0usize, 0u32);
        let (mut cp, mut cb) = (Vec::new(), Vec::new());
        loop {
            cp.clear();
            cb.clear();
            // Rows already matched need not be tried again.
            while cursor.0 < matched.len() && matched[cursor.0] && cursor.1 == 0 {
                cursor.0 += 1;
            }
            expand(
                groups,
                &self.table.row_ids,
                &mut cursor,
                MAX_BATCH_ROWS,
                false,
                &mut cp,
                &mut cb,
            );
            if cp.is_empty() {
                return Ok(matched);
            }
            let mask = self.evaluate_filter(f, batch, &cp, &cb)?;
            for k in mask.values().set_indices() {
                matched[cp[k] as usize] = true;
            }
        }
    }

    /// Joins one probe batch; `groups` and `build_matched` are the
    /// operator's own, lent for the call.
    pub(super) fn probe(
        &self,
        batch: &RecordBatch,
        keys: &[ArrayRef],
        groups: &mut Vec<(u32, u32)>,
        build_matched: &mut [bool],
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let n = batch.num_rows();
        let probe_nulls = self.table.lookup(keys, n, groups)?;
        match self.kind {
            // the pairs are made by `step_pending`
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full => Ok(()),
            JoinKind::Semi => {
                let matched = self.probe_matches(batch, groups)?;
                self.emit_filtered(batch, matched, out)
            }
            JoinKind::Anti => {
                let mut matched = self.probe_matches(batch, groups)?;
                matched.iter_mut().for_each(|m| *m = !*m);
                self.emit_filtered(batch, matched, out)
            }
            JoinKind::RightSemi | JoinKind::RightAnti => {
                self.mark_build_matches(batch, groups, build_matched)
            }
            JoinKind::Mark => {
                let matched = self.probe_matches(batch, groups)?;
                let build_nonempty = self.build_nonempty;
                let validity = if self.build_has_null_key {
                    // Unmatched rows are all NULL.
                    Some(NullBuffer::from(matched.as_slice()))
                } else {
                    match &probe_nulls {
                        Some(pn) if build_nonempty => Some(NullBuffer::from_iter(
                            matched
                                .iter()
                                .enumerate()
                                .map(|(i, &m)| m || pn.is_valid(i)),
                        )),
                        _ => None,
                    }
                };
                let validity = validity.filter(|v| v.null_count() > 0);
                let mark = BooleanArray::new(BooleanBuffer::from(matched), validity);
                let mut columns = batch.columns().to_vec();
                columns.push(Arc::new(mark));
                out.push(self.batch(columns, n)?);
                Ok(())
            }
        }
    }

    /// Joins one probe batch against `table` (the in-memory hot path).
    pub(super) fn probe_batch(
        &mut self,
        batch: &RecordBatch,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let keys = self
            .probe_keys
            .iter()
            .map(|k| evaluate_array(k, batch))
            .collect::<Result<Vec<_>>>()?;
        let mut groups = std::mem::take(&mut self.groups);
        let mut build_matched = std::mem::take(&mut self.build_matched);
        let result = self.probe(batch, &keys, &mut groups, &mut build_matched, out);
        self.build_matched = build_matched;
        result?;
        if matches!(
            self.kind,
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
        ) {
            let filtered_outer =
                self.filter.is_some() && matches!(self.kind, JoinKind::Left | JoinKind::Full);
            self.pending = Some(PendingProbe {
                batch: batch.clone(),
                groups,
                cursor: (0, 0),
                probe_matched: vec![false; if filtered_outer { batch.num_rows() } else { 0 }],
            });
            self.step_pending(out)
        } else {
            self.groups = groups;
            Ok(())
        }
    }

    /// Joins one probe batch whole, handing each part of the output to
    /// `emit` (the grace join's sub-partitions).
    pub(super) fn probe_batch_into(
        &mut self,
        batch: &RecordBatch,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut out = Vec::new();
        self.probe_batch(batch, &mut out)?;
        out.drain(..).try_for_each(&mut *emit)?;
        while self.pending.is_some() {
            self.step_pending(&mut out)?;
            out.drain(..).try_for_each(&mut *emit)?;
        }
        Ok(())
    }

    /// Right/Full: the build rows of `table` that never matched, with NULL
    /// left columns; RightSemi/RightAnti: the (un)matched build rows.
    pub(super) fn emit_build_rows(&self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if matches!(self.kind, JoinKind::RightSemi | JoinKind::RightAnti) {
            let want = self.kind == JoinKind::RightSemi;
            let rows: Vec<u32> = (0..self.build_matched.len() as u32)
                .filter(|&i| self.build_matched[i as usize] == want)
                .collect();
            for chunk in rows.chunks(MAX_BATCH_ROWS) {
                let columns = self.table.take_rows(chunk)?;
                out.push(self.batch(columns, chunk.len())?);
            }
            return Ok(());
        }
        if !matches!(self.kind, JoinKind::Right | JoinKind::Full) {
            return Ok(());
        }
        let unmatched: Vec<u32> = self
            .build_matched
            .iter()
            .enumerate()
            .filter(|(_, &m)| !m)
            .map(|(i, _)| i as u32)
            .collect();
        for chunk in unmatched.chunks(MAX_BATCH_ROWS) {
            let mut columns: Vec<ArrayRef> = self.output_schema.fields()[..self.left_width]
                .iter()
                .map(|f| new_null_array(f.data_type(), chunk.len()))
                .collect();
            columns.extend(self.table.take_rows(chunk)?);
            out.push(self.batch(columns, chunk.len())?);
        }
        Ok(())
    }

    pub(super) fn emit_filtered(
        &self,
        batch: &RecordBatch,
        keep: Vec<bool>,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let kept = keep.iter().filter(|&&k| k).count();
        if kept == 0 {
            return Ok(());
        }
        let columns = if kept == batch.num_rows() {
            batch.columns().to_vec()
        } else {
            filter_record_batch(batch, &BooleanArray::from(keep))?
                .columns()
                .to_vec()
        };
        out.push(self.batch(columns, kept)?);
        Ok(())
    }
}

impl Operator for HashJoinOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.finished {
            return Err(QuarryError::exec("hash join: push after finish"));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.num_columns() != self.left_width {
            return Err(QuarryError::exec(format!(
                "hash join: probe batch has {} columns, expected {}",
                batch.num_columns(),
                self.left_width
            )));
        }
        if let Some(g) = &mut self.grace {
            // Grace mode: nothing can be joined before the finish.
            return g.push_probe(&batch);
        }
        self.probe_batch(&batch, out)
    }

    fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn resume(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.step_pending(out)
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.finish_into(&mut |b| {
            out.push(b);
            Ok(())
        })
    }

    /// Right/Full (and RightSemi/RightAnti): the build rows that never
    /// matched; in grace mode, the whole join, one sub-partition at a time.
    fn finish_into(&mut self, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if self.grace.is_some() {
            return self.finish_grace(emit);
        }
        let mut out = Vec::new();
        self.emit_build_rows(&mut out)?;
        out.into_iter().try_for_each(emit)
    }

    fn spilled(&self) -> SpillCount {
        self.spilled
    }

    fn is_done(&self) -> bool {
        // Against an empty build side these joins produce nothing more.
        !self.build_nonempty
            && matches!(
                self.kind,
                JoinKind::Inner | JoinKind::Semi | JoinKind::Right | JoinKind::RightSemi
            )
    }
}
