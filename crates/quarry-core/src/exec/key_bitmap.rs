//! A bit per value of an integer key's range: membership in one bit test.
//! Runtime join filters use it instead of their hash set, and join tables
//! of sparse integer keys to turn away the probe rows that cannot match
//! before they walk a probe sequence.

/// Bit `(k >> shift) - min` is set for each key `k`.
pub(crate) struct KeyBitmap {
    /// The smallest key, shifted.
    min: i64,
    width: u64,
    /// 0 for a bit per key; more for a bit per `1 << shift` keys (a
    /// coarser filter of a range too wide for a bit each).
    shift: u32,
    bits: Vec<u64>,
}

impl KeyBitmap {
    /// The bitmap of `keys`, all within `min..=max`; None when that range
    /// has more than `max_width` values.
    pub(crate) fn new(
        min: i64,
        max: i64,
        max_width: u64,
        keys: impl Iterator<Item = i64>,
    ) -> Option<KeyBitmap> {
        Self::with_shift(min, max, max_width, 0, keys)
    }

    /// A bitmap of at most `max_width` bits of `keys`, all within
    /// `min..=max`, each bit standing for as few keys as that allows. For
    /// packed join keys the high bits are the key column of the widest
    /// range: the bitmap then filters by it.
    pub(crate) fn coarse(
        min: i64,
        max: i64,
        max_width: u64,
        keys: impl Iterator<Item = i64>,
    ) -> Option<KeyBitmap> {
        let shift =
            (0..64).find(|&s| ((max >> s) as i128 - (min >> s) as i128) < max_width as i128)?;
        Self::with_shift(min, max, max_width, shift, keys)
    }

    fn with_shift(
        min: i64,
        max: i64,
        max_width: u64,
        shift: u32,
        keys: impl Iterator<Item = i64>,
    ) -> Option<KeyBitmap> {
        let (min, max) = (min >> shift, max >> shift);
        let span = (max as i128 - min as i128) as u128;
        if max < min || span >= max_width as u128 {
            return None;
        }
        let width = span as u64 + 1;
        let mut bits = vec![0u64; width.div_ceil(64) as usize];
        for k in keys {
            let d = (k >> shift).wrapping_sub(min) as u64;
            if d < width {
                bits[(d >> 6) as usize] |= 1 << (d & 63);
            }
        }
        Some(KeyBitmap {
            min,
            width,
            shift,
            bits,
        })
    }

    /// False when `k` is certainly not a key.
    #[inline]
    pub(crate) fn contains(&self, k: i64) -> bool {
        let d = (k >> self.shift).wrapping_sub(self.min) as u64;
        d < self.width && self.bits[(d >> 6) as usize] & (1 << (d & 63)) != 0
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_its_keys_and_nothing_else() {
        let keys = [-3i64, 0, 64, 65, 1000];
        let b = KeyBitmap::new(-3, 1000, 1 << 20, keys.iter().copied()).unwrap();
        for k in -10..1010 {
            assert_eq!(b.contains(k), keys.contains(&k), "{k}");
        }
        assert!(!b.contains(i64::MIN) && !b.contains(i64::MAX));
        assert!(KeyBitmap::new(0, 1 << 20, 1 << 20, [0].into_iter()).is_none());
        assert!(KeyBitmap::new(i64::MIN, i64::MAX, u64::MAX, [0].into_iter()).is_none());
    }

    #[test]
    fn a_coarse_bitmap_has_a_bit_per_block_of_keys() {
        // keys 0, 1 << 40 and 5 << 40 in 8 bits: a bit per 1 << 40 keys
        let keys = [0i64, 1 << 40, 5 << 40];
        let b = KeyBitmap::coarse(0, 5 << 40, 8, keys.iter().copied()).unwrap();
        assert!(b.contains(0) && b.contains((1 << 40) + 12345) && b.contains(5 << 40));
        assert!(!b.contains(2 << 40) && !b.contains(6 << 40) && !b.contains(-1));
        let exact = KeyBitmap::coarse(-3, 1000, 1 << 20, [-3i64, 64].into_iter()).unwrap();
        assert!(exact.contains(64) && !exact.contains(65) && !exact.contains(-2));
    }
}
