//! The push-based operator interface of a fused pipeline, and the streaming
//! operators (filter, project, limit).

use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::expr::evaluate_array;
use crate::error::Result;
use crate::plan::Expr;

/// One step of a pipeline. A task pushes every input batch through the chain
/// and then calls `finish_into` on each operator in order; blocking operators
/// (aggregate, sort) emit their output at the finish.
pub trait Operator: Send {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()>;
    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()>;
    /// Emits the operator's remaining output batch by batch, so that an
    /// operator whose output does not fit in memory (a merge of spilled runs)
    /// can hand each batch on before making the next. By default: `finish`.
    fn finish_into(&mut self, emit: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()> {
        let mut out = Vec::new();
        self.finish(&mut out)?;
        out.into_iter().try_for_each(emit)
    }
    /// True while the last `push` left output the operator has not emitted
    /// yet: a join whose batch matches more rows than fit in a few batches
    /// emits them a part at a time, so that memory stays bounded and the
    /// task can be cancelled in between.
    fn has_pending(&self) -> bool {
        false
    }
    /// Emits the next part of the pending output.
    fn resume(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }
    /// What the operator wrote to spill files so far.
    fn spilled(&self) -> SpillCount {
        SpillCount::default()
    }
    /// True when no further input can change the output (a satisfied LIMIT),
    /// so the task may stop reading.
    fn is_done(&self) -> bool {
        false
    }
}

/// Bytes and files an operator spilled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillCount {
    pub bytes: u64,
    pub files: usize,
}

impl SpillCount {
    pub fn add(&mut self, file: &crate::runtime::spill::SpillFile) {
        self.bytes += file.bytes;
        self.files += 1;
    }
}

impl std::ops::AddAssign for SpillCount {
    fn add_assign(&mut self, o: SpillCount) {
        self.bytes += o.bytes;
        self.files += o.files;
    }
}

pub struct ProjectOp {
    pub exprs: Vec<Expr>,
    pub schema: SchemaRef,
}

impl Operator for ProjectOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        out.push(project_batch(&batch, &self.exprs, &self.schema)?);
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }
}

/// Evaluates `exprs` over `batch` into a batch of `schema`.
pub fn project_batch(
    batch: &RecordBatch,
    exprs: &[Expr],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let columns = exprs
        .iter()
        .zip(schema.fields())
        .map(|(e, f)| {
            let a = evaluate_array(e, batch)?;
            // Literal types may differ in nullability only; cast if the type differs.
            if a.data_type() != f.data_type() {
                super::expr::cast_checked(&a, f.data_type())
            } else {
                Ok(a)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &opts,
    )?)
}

pub struct LimitOp {
    pub skip: usize,
    pub fetch: Option<usize>,
    seen: usize,
    emitted: usize,
}

impl LimitOp {
    pub fn new(skip: usize, fetch: Option<usize>) -> Self {
        LimitOp {
            skip,
            fetch,
            seen: 0,
            emitted: 0,
        }
    }
}

impl Operator for LimitOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.is_done() {
            return Ok(());
        }
        let n = batch.num_rows();
        let start = self.skip.saturating_sub(self.seen).min(n);
        self.seen += n;
        let mut len = n - start;
        if let Some(f) = self.fetch {
            len = len.min(f - self.emitted);
        }
        if len > 0 {
            out.push(batch.slice(start, len));
            self.emitted += len;
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.fetch.is_some_and(|f| self.emitted >= f)
    }
}
