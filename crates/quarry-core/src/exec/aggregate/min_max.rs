//! min and max.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ArrowPrimitiveType, AsArray, PrimitiveArray, StringArray};
use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;

use super::GroupAccumulator;
use crate::error::{QuarryError, Result};
use crate::exec::expr::cast_checked;

pub(super) fn new_min_max(is_min: bool, t: &DataType) -> Box<dyn GroupAccumulator> {
    use arrow::datatypes::*;
    macro_rules! prim {
        ($ty:ty) => {
            Box::new(PrimMinMax::<$ty> {
                is_min,
                values: vec![],
                data_type: t.clone(),
            })
        };
    }
    match t {
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::Decimal128(_, _) => prim!(Decimal128Type),
        DataType::Date32 => prim!(Date32Type),
        DataType::Timestamp(TimeUnit::Microsecond, _) => prim!(TimestampMicrosecondType),
        DataType::Interval(IntervalUnit::MonthDayNano) => Box::new(IntervalMinMax {
            is_min,
            values: vec![],
        }),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Box::new(StringMinMax {
            is_min,
            values: vec![],
            data_type: t.clone(),
        }),
        _ => Box::new(ScalarMinMax {
            is_min,
            values: vec![],
            data_type: t.clone(),
        }),
    }
}

/// True when `new` should replace `old` for min (or max).
pub(super) fn better<T: PartialOrd>(is_min: bool, new: &T, old: &T) -> bool {
    if is_min {
        new < old
    } else {
        new > old
    }
}

pub(super) struct PrimMinMax<T: ArrowPrimitiveType> {
    is_min: bool,
    values: Vec<Option<T::Native>>,
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> GroupAccumulator for PrimMinMax<T> {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("min/max need an argument"))?;
        let v = values.as_primitive::<T>();
        for (row, &g) in groups.iter().enumerate() {
            if v.is_valid(row) {
                let x = v.value(row);
                match &self.values[g] {
                    Some(old) if !better(self.is_min, &x, old) => {}
                    _ => self.values[g] = Some(x),
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let a: PrimitiveArray<T> = std::mem::take(&mut self.values).into_iter().collect();
        Ok(Arc::new(a.with_data_type(self.data_type.clone())))
    }
}

pub(super) struct StringMinMax {
    is_min: bool,
    values: Vec<Option<String>>,
    data_type: DataType,
}

impl GroupAccumulator for StringMinMax {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("min/max need an argument"))?;
        let values = cast_checked(values, &DataType::Utf8)?;
        let v = values.as_string::<i32>();
        for (row, &g) in groups.iter().enumerate() {
            if v.is_valid(row) {
                let x = v.value(row);
                match &self.values[g] {
                    Some(old) if !better(self.is_min, &x, &old.as_str()) => {}
                    _ => self.values[g] = Some(x.to_string()),
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let a: StringArray = std::mem::take(&mut self.values).into_iter().collect();
        cast_checked(&(Arc::new(a) as ArrayRef), &self.data_type)
    }
}

/// min/max of intervals, compared as they compare in SQL (normalized: a
/// month is 30 days, a day 24 hours), not field by field. Of intervals
/// that are equal so (`1 month`, `30 days`), the first met is kept.
pub(super) struct IntervalMinMax {
    is_min: bool,
    values: Vec<Option<arrow::datatypes::IntervalMonthDayNano>>,
}

impl GroupAccumulator for IntervalMinMax {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        use crate::exec::timestamp::normalized;
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("min/max need an argument"))?;
        let v = values.as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>();
        for (row, &g) in groups.iter().enumerate() {
            if v.is_valid(row) {
                let x = v.value(row);
                match &self.values[g] {
                    Some(old) if !better(self.is_min, &normalized(x), &normalized(*old)) => {}
                    _ => self.values[g] = Some(x),
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let a: arrow::array::IntervalMonthDayNanoArray =
            std::mem::take(&mut self.values).into_iter().collect();
        Ok(Arc::new(a))
    }
}

/// min/max for any other type, one ScalarValue per group.
pub(super) struct ScalarMinMax {
    is_min: bool,
    values: Vec<Option<ScalarValue>>,
    data_type: DataType,
}

impl GroupAccumulator for ScalarMinMax {
    fn update(&mut self, groups: &[usize], n: usize, values: Option<&ArrayRef>) -> Result<()> {
        self.resize(n);
        let values = values.ok_or_else(|| QuarryError::exec("min/max need an argument"))?;
        for (row, &g) in groups.iter().enumerate() {
            if values.is_valid(row) {
                let x = ScalarValue::try_from_array(values, row)?;
                match &self.values[g] {
                    Some(old) if !better(self.is_min, &x, old) => {}
                    _ => self.values[g] = Some(x),
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, groups: &[usize], n: usize, states: &[ArrayRef]) -> Result<()> {
        self.update(groups, n, Some(&states[0]))
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn state(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ArrayRef> {
        let null = ScalarValue::try_from(&self.data_type)?;
        let values: Vec<ScalarValue> = std::mem::take(&mut self.values)
            .into_iter()
            .map(|v| v.unwrap_or_else(|| null.clone()))
            .collect();
        if values.is_empty() {
            return Ok(arrow::array::new_empty_array(&self.data_type));
        }
        Ok(ScalarValue::iter_to_array(values)?)
    }
}
