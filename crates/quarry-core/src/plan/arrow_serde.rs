//! serde for the Arrow values that plans and task graphs carry, for the
//! task graph's wire format (`graph::wire`): literals (`ScalarValue`, which
//! has no serde of its own) and record batches (VALUES, in-memory tables).
//!
//! Both must come back exactly, for every type: the common literal types
//! are written as readable JSON, every other one (floats, timestamps with
//! their zone, intervals, structs, …) and every batch as Arrow IPC stream
//! bytes in base64, which Arrow reads back bit for bit.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use base64::Engine;
use datafusion_common::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::error::{QuarryError, Result};

/// A literal on the wire.
#[derive(Serialize, Deserialize)]
enum WireScalar {
    Boolean(Option<bool>),
    Int8(Option<i8>),
    Int16(Option<i16>),
    Int32(Option<i32>),
    Int64(Option<i64>),
    UInt8(Option<u8>),
    UInt16(Option<u16>),
    UInt32(Option<u32>),
    UInt64(Option<u64>),
    Utf8(Option<String>),
    LargeUtf8(Option<String>),
    Utf8View(Option<String>),
    Date32(Option<i32>),
    /// The unscaled value as text (an i128 is beyond what many JSON
    /// readers take as a number), the precision and the scale.
    Decimal128(Option<String>, u8, i8),
    /// Any other scalar: a one-row array of its type, as IPC.
    Arrow(String),
}

impl WireScalar {
    fn new(v: &ScalarValue) -> Result<WireScalar> {
        use ScalarValue as S;
        Ok(match v {
            S::Boolean(x) => WireScalar::Boolean(*x),
            S::Int8(x) => WireScalar::Int8(*x),
            S::Int16(x) => WireScalar::Int16(*x),
            S::Int32(x) => WireScalar::Int32(*x),
            S::Int64(x) => WireScalar::Int64(*x),
            S::UInt8(x) => WireScalar::UInt8(*x),
            S::UInt16(x) => WireScalar::UInt16(*x),
            S::UInt32(x) => WireScalar::UInt32(*x),
            S::UInt64(x) => WireScalar::UInt64(*x),
            S::Utf8(x) => WireScalar::Utf8(x.clone()),
            S::LargeUtf8(x) => WireScalar::LargeUtf8(x.clone()),
            S::Utf8View(x) => WireScalar::Utf8View(x.clone()),
            S::Date32(x) => WireScalar::Date32(*x),
            S::Decimal128(x, p, s) => WireScalar::Decimal128(x.map(|x| x.to_string()), *p, *s),
            other => {
                let array = other.to_array()?;
                WireScalar::Arrow(encode_ipc(&one_column_batch(array)?)?)
            }
        })
    }

    fn into_scalar(self) -> Result<ScalarValue> {
        use ScalarValue as S;
        Ok(match self {
            WireScalar::Boolean(x) => S::Boolean(x),
            WireScalar::Int8(x) => S::Int8(x),
            WireScalar::Int16(x) => S::Int16(x),
            WireScalar::Int32(x) => S::Int32(x),
            WireScalar::Int64(x) => S::Int64(x),
            WireScalar::UInt8(x) => S::UInt8(x),
            WireScalar::UInt16(x) => S::UInt16(x),
            WireScalar::UInt32(x) => S::UInt32(x),
            WireScalar::UInt64(x) => S::UInt64(x),
            WireScalar::Utf8(x) => S::Utf8(x),
            WireScalar::LargeUtf8(x) => S::LargeUtf8(x),
            WireScalar::Utf8View(x) => S::Utf8View(x),
            WireScalar::Date32(x) => S::Date32(x),
            WireScalar::Decimal128(x, p, s) => {
                let x = x
                    .map(|t| {
                        t.parse::<i128>().map_err(|_| {
                            QuarryError::exec(format!("'{t}' is not a DECIMAL's unscaled value"))
                        })
                    })
                    .transpose()?;
                S::Decimal128(x, p, s)
            }
            WireScalar::Arrow(text) => {
                let batch = decode_ipc(&text)?;
                if batch.num_columns() != 1 || batch.num_rows() != 1 {
                    return Err(QuarryError::exec(format!(
                        "a literal must be one value, got {} columns of {} rows",
                        batch.num_columns(),
                        batch.num_rows()
                    )));
                }
                S::try_from_array(batch.column(0), 0)?
            }
        })
    }
}

fn one_column_batch(array: ArrayRef) -> Result<RecordBatch> {
    let schema = Schema::new(vec![Field::new("v", array.data_type().clone(), true)]);
    Ok(RecordBatch::try_new(Arc::new(schema), vec![array])?)
}

/// A batch as an IPC stream (its schema and the batch), in base64.
fn encode_ipc(batch: &RecordBatch) -> Result<String> {
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The one batch of a stream `encode_ipc` wrote.
fn decode_ipc(text: &str) -> Result<RecordBatch> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| QuarryError::exec(format!("bad base64 of Arrow data: {e}")))?;
    let mut reader = StreamReader::try_new(bytes.as_slice(), None)?;
    let batch = reader
        .next()
        .ok_or_else(|| QuarryError::exec("Arrow data without a batch"))??;
    if reader.next().is_some() {
        return Err(QuarryError::exec("Arrow data with more than one batch"));
    }
    Ok(batch)
}

/// `#[serde(with = "scalar")]` on a `ScalarValue`.
pub mod scalar {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        v: &ScalarValue,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        WireScalar::new(v)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<ScalarValue, D::Error> {
        WireScalar::deserialize(d)?
            .into_scalar()
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "batches")]` on a `Vec<RecordBatch>`: each batch an IPC
/// stream of its own (they need not share a schema).
pub mod batches {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        v: &[RecordBatch],
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let texts = v
            .iter()
            .map(encode_ipc)
            .collect::<Result<Vec<_>>>()
            .map_err(serde::ser::Error::custom)?;
        texts.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Vec<RecordBatch>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| decode_ipc(t))
            .collect::<Result<Vec<_>>>()
            .map_err(serde::de::Error::custom)
    }
}
