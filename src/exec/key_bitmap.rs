//! A bit per value of an integer key's range: membership in one bit test.
//! Runtime join filters use it instead of their hash set, and join tables
//! of sparse integer keys to turn away the probe rows that cannot match
//! before they walk a probe sequence.

/// Bit `k - min` is set for each key `k`.
pub(crate) struct KeyBitmap {
    min: i64,
    width: u64,
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
        let span = (max as i128 - min as i128) as u128;
        if max < min || span >= max_width as u128 {
            return None;
        }
        let width = span as u64 + 1;
        let mut bits = vec![0u64; width.div_ceil(64) as usize];
        for k in keys {
            let d = k.wrapping_sub(min) as u64;
            if d < width {
                bits[(d >> 6) as usize] |= 1 << (d & 63);
            }
        }
        Some(KeyBitmap { min, width, bits })
    }

    #[inline]
    pub(crate) fn contains(&self, k: i64) -> bool {
        let d = k.wrapping_sub(self.min) as u64;
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
}
