//! Spilling a group table: its groups' states written by hash of the key
//! to one file per sub-partition.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, UInt32Array};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{RowConverter, SortField};

use super::group_table::GroupTable;
use super::{BATCH_ROWS, SPILL_PARTITIONS};
use crate::error::Result;
use crate::exec::operator::SpillCount;
use crate::exec::timestamp::equality_keys;
use crate::runtime::spill::SpillFile;

/// Cuts `batch` into pieces of at most `BATCH_ROWS` rows (no copy); none if
/// it is empty.
pub(super) fn slices(batch: &RecordBatch) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(BATCH_ROWS)
        .map(|start| batch.slice(start, BATCH_ROWS.min(batch.num_rows() - start)))
        .collect()
}

/// Writes the table's groups as state batches (key columns, then state
/// columns: the layout a Final aggregate reads) to one file per non-empty
/// sub-partition, chosen by a hash of the key seeded by `depth`; then
/// empties the table and frees its reservation.
pub(super) fn spill_table(
    table: &mut GroupTable,
    parts: &mut Vec<Vec<SpillFile>>,
    depth: usize,
    dir: &Path,
    count: &mut SpillCount,
) -> Result<()> {
    if table.num_groups == 0 {
        return Ok(());
    }
    // A seed of its own per depth, so that a sub-partition does split again
    // (and unlike the table's hash, so its keys do not cluster in a table).
    let hasher = ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3 ^ depth as u64,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    );
    let key_count = table.keys.key_types().len();
    let (n, columns) = table.take_columns(false)?;
    table.reset()?;
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); SPILL_PARTITIONS];
    // (equal intervals to one file, where they merge into one group)
    let key_columns = equality_keys(&columns[..key_count])?;
    let converter = RowConverter::new(
        key_columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    for (g, row) in converter.convert_columns(&key_columns)?.iter().enumerate() {
        let p = (hasher.hash_one(row.as_ref()) % SPILL_PARTITIONS as u64) as usize;
        indices[p].push(g as u32);
    }
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let opts = RecordBatchOptions::new().with_row_count(Some(n));
    let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &opts)?;
    if parts.is_empty() {
        parts.resize_with(SPILL_PARTITIONS, Vec::new);
    }
    for (p, idx) in indices.into_iter().enumerate() {
        if idx.is_empty() {
            continue;
        }
        let part = arrow::compute::take_record_batch(&batch, &UInt32Array::from(idx))?;
        let file = SpillFile::write(dir, &schema, &slices(&part))?;
        count.add(&file);
        parts[p].push(file);
    }
    Ok(())
}
