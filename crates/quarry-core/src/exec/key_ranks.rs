//! The rank of an integer key among a set of keys, from a bit per value of
//! the keys' range and a running count of keys every 64 values.
//!
//! A join table of integer keys spread over a few to a hundred times their
//! number (the keys left of a large table after a filter: the orders of one
//! year among all order keys) uses the rank as the index of a direct table:
//! a lookup is two loads and no hash, the structure takes a quarter byte per
//! value of the range, and probe keys in order (a table sorted by its key)
//! walk it in order instead of jumping around a hash table.

/// 64 values of the range: which are keys, and how many keys come before.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(16))]
struct Block {
    bits: u64,
    rank: u32,
}

#[derive(Debug)]
pub(crate) struct KeyRanks {
    min: i64,
    /// Values in the range `min..min + width`.
    width: u64,
    blocks: Vec<Block>,
    distinct: usize,
}

impl KeyRanks {
    /// The ranks of `keys`, all within `min..=max` (others are left out);
    /// the caller keeps the range small enough to hold a bit per value.
    pub(crate) fn new(min: i64, max: i64, keys: impl Iterator<Item = i64>) -> KeyRanks {
        let width = (max as i128 - min as i128 + 1).max(0) as u64;
        let mut blocks = vec![Block::default(); width.div_ceil(64) as usize];
        for k in keys {
            let d = k.wrapping_sub(min) as u64;
            if d < width {
                blocks[(d >> 6) as usize].bits |= 1 << (d & 63);
            }
        }
        let mut distinct = 0usize;
        for b in &mut blocks {
            b.rank = distinct as u32;
            distinct += b.bits.count_ones() as usize;
        }
        KeyRanks {
            min,
            width,
            blocks,
            distinct,
        }
    }

    /// `k`'s position among the keys in ascending order; None when `k` is
    /// not one of them.
    #[inline]
    pub(crate) fn rank(&self, k: i64) -> Option<u32> {
        let d = k.wrapping_sub(self.min) as u64;
        if d >= self.width {
            return None;
        }
        let b = self.blocks[(d >> 6) as usize];
        let bit = 1u64 << (d & 63);
        (b.bits & bit != 0).then(|| b.rank + (b.bits & (bit - 1)).count_ones())
    }

    /// The block `k` falls in, for a prefetch; None outside the range.
    #[inline]
    pub(crate) fn block_of(&self, k: i64) -> Option<&impl Sized> {
        let d = k.wrapping_sub(self.min) as u64;
        (d < self.width).then(|| &self.blocks[(d >> 6) as usize])
    }

    /// How many distinct keys there are.
    pub(crate) fn distinct(&self) -> usize {
        self.distinct
    }

    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of_val(self.blocks.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_positions_among_the_sorted_distinct_keys() {
        let keys = [-70i64, 5, 5, 63, 64, 127, 128, 1000, -70];
        let r = KeyRanks::new(-70, 1000, keys.iter().copied());
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(r.distinct(), sorted.len());
        for k in -100..1100 {
            assert_eq!(
                r.rank(k),
                sorted.iter().position(|&s| s == k).map(|p| p as u32),
                "{k}"
            );
        }
        assert_eq!(r.rank(i64::MIN), None);
        assert_eq!(r.rank(i64::MAX), None);
        assert!(r.block_of(1001).is_none() && r.block_of(-70).is_some());
    }

    #[test]
    fn a_range_of_one_value() {
        let r = KeyRanks::new(7, 7, [7, 7].into_iter());
        assert_eq!((r.rank(7), r.rank(6), r.rank(8)), (Some(0), None, None));
        assert_eq!(r.distinct(), 1);
    }
}
