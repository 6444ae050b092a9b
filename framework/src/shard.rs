//! Splitting the case list across CI jobs: `--shard i/n` orders the cases by a
//! stable hash of their names and deals them out in turn, so shards are
//! disjoint, cover every case, differ in size by at most one, and do not
//! depend on file order.

use sha2::{Digest, Sha256};
use std::str::FromStr;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Shard {
    /// The names, out of all of `names`, that fall in this shard.
    pub fn select<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        let mut dealt: Vec<(u64, &str)> = names.iter().map(|n| (stable_hash(n), *n)).collect();
        dealt.sort();
        let (index, count) = (self.index as usize - 1, self.count as usize);
        let mine = dealt
            .into_iter()
            .enumerate()
            .filter(|(at, _)| at % count == index);
        mine.map(|(_, (_, name))| name).collect()
    }
}

fn stable_hash(name: &str) -> u64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || format!("`{text}` is not a shard: write i/n with 1 <= i <= n, e.g. 2/4");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: u32 = index.trim().parse().map_err(|_| usage())?;
        let count: u32 = count.trim().parse().map_err(|_| usage())?;
        if index == 0 || count == 0 || index > count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_cases_evenly() {
        let owned: Vec<String> = (0..50).map(|i| format!("case-{i}")).collect();
        for size in [0, 1, 2, 7, 8, 50] {
            let names: Vec<&str> = owned[..size].iter().map(String::as_str).collect();
            for count in 1..=5 {
                let shards: Vec<Vec<&str>> = (1..=count)
                    .map(|index| Shard { index, count }.select(&names))
                    .collect();
                let mut union: Vec<&str> = shards.concat();
                union.sort();
                let mut all = names.clone();
                all.sort();
                assert_eq!(union, all, "{count} shards of {size} cases");
                let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
                let spread = sizes.iter().max().unwrap() - sizes.iter().min().unwrap();
                assert!(spread <= 1, "uneven shards {sizes:?}");
            }
        }
    }

    #[test]
    fn shards_do_not_depend_on_file_order() {
        let names = ["a", "b", "c", "d", "e"];
        let reversed: Vec<&str> = names.iter().rev().copied().collect();
        let shard = Shard { index: 2, count: 3 };
        assert_eq!(shard.select(&names), shard.select(&reversed));
    }

    #[test]
    fn shard_syntax_is_checked() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/2", "3/2", "1/0", "1", "a/b", "", "/", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
