//! Estimates a region's ASLR entropy from addresses sampled in separate processes, and
//! sorts the estimate into a bucket coarse enough to be stable from run to run.

/// Bits below this are the offset within a 4 KiB page, which randomisation of a
/// mapping's base does not touch.
pub const PAGE_SHIFT: u32 = 12;

/// How many bit positions above the page offset differ between the first address and
/// any other: 0 for no addresses, or for addresses that never change.
///
/// This undercounts when there are few samples (a random bit stays put across n samples
/// with probability 2^-(n-1)) and can overcount by a bit or two when randomisation
/// carries into higher bits, which is why snapshots compare buckets rather than bits.
pub fn varying_bits<I>(addresses: I) -> u32
where
    I: IntoIterator<Item = u64>,
{
    let mut addresses = addresses.into_iter();
    let Some(first) = addresses.next() else {
        return 0;
    };
    let varied = addresses.fold(0, |varied, address| varied | (address ^ first));
    (varied >> PAGE_SHIFT).count_ones()
}

/// The bucket of an entropy estimate: `none` (0 bits), `low` (1 to 15), `medium`
/// (16 to 27) or `high` (28 and more).
pub fn bucket(bits: u32) -> &'static str {
    match bits {
        0 => "none",
        1..=15 => "low",
        16..=27 => "medium",
        _ => "high",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simple generator, so that synthetic samples need no random-number crate.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// `count` addresses whose bits `low..high` are random and the rest fixed.
    fn addresses(count: usize, low: u32, high: u32) -> Vec<u64> {
        let mask = ((1u64 << (high - low)) - 1) << low;
        let base = 0x7f00_0000_0000u64 & !mask;
        let mut state = 0x9e37_79b9_7f4a_7c15;
        (0..count)
            .map(|_| base | (xorshift(&mut state) & mask))
            .collect()
    }

    #[test]
    fn identical_addresses_have_no_entropy() {
        assert_eq!(varying_bits(vec![0x5555_5555_4000; 64]), 0);
        assert_eq!(varying_bits(Vec::new()), 0);
        assert_eq!(varying_bits(vec![0x1000]), 0);
    }

    #[test]
    fn bits_twelve_to_forty_give_twenty_eight() {
        assert_eq!(varying_bits(addresses(64, 12, 40)), 28);
    }

    #[test]
    fn page_offset_bits_do_not_count() {
        assert_eq!(varying_bits(addresses(64, 0, 12)), 0);
        assert_eq!(varying_bits(addresses(64, 4, 20)), 8);
    }

    #[test]
    fn buckets_have_fixed_edges() {
        let cases = [
            (0, "none"),
            (1, "low"),
            (15, "low"),
            (16, "medium"),
            (27, "medium"),
            (28, "high"),
            (52, "high"),
        ];
        for (bits, expected) in cases {
            assert_eq!(bucket(bits), expected, "{bits} bits");
        }
    }
}
