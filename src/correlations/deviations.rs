//! What is over-represented in a group, as Mozilla's crash correlations find it
//! (marco-c/crashcorrelations, `find_deviations`): every attribute = value of the group's
//! crashes against a reference set, then pairs of the survivors that are not just the product
//! of their parts. Thresholds, pruning and the final tests are theirs; the "prior" refinement
//! (re-reading a pair given one of its items) is left out.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::stats::{chi2_contingency, fisher_exact, phi};

/// Counts below this are no evidence (the chi-square test needs 5).
pub const MIN_COUNT: u64 = 5;
/// The least difference between the shares in the group and in the reference.
pub const MIN_SUPPORT_DIFF: f64 = 0.15;
/// The least effect size φ.
pub const MIN_CORRELATION: f64 = 0.03;
/// The significance level, before Bonferroni's correction.
const ALPHA: f64 = 0.05;

/// One attribute of a crash: its name and value (`annotation.gpu_driver` = `31.0.15.3623`).
pub type Item = (String, String);

/// An attribute (or a pair of them) over-represented, or under-represented, in the group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deviation {
    /// The attribute, or two.
    pub items: Vec<Item>,
    /// Crashes of the group that have it.
    pub group_count: u64,
    /// Crashes of the reference set that have it.
    pub reference_count: u64,
    /// Its share in the group, 0–1.
    pub group_share: f64,
    /// Its share in the reference set, 0–1.
    pub reference_share: f64,
    /// The chi-square test's p-value.
    pub p_value: f64,
    /// The effect size φ.
    pub phi: f64,
}

/// The crashes as sets of interned items, and the counts of items and item sets.
struct Counts {
    group_total: f64,
    reference_total: f64,
    single: HashMap<u32, [u64; 2]>,
    pairs: HashMap<(u32, u32), [u64; 2]>,
}

impl Counts {
    fn of(&self, candidate: &[u32]) -> [u64; 2] {
        match candidate {
            [one] => self.single.get(one).copied().unwrap_or_default(),
            [a, b] => self.pairs.get(&(*a, *b)).copied().unwrap_or_default(),
            _ => [0, 0],
        }
    }

    fn shares(&self, counts: [u64; 2]) -> (f64, f64) {
        (
            counts[0] as f64 / self.group_total,
            counts[1] as f64 / self.reference_total,
        )
    }
}

/// The group's deviations from the reference set: single attributes first, by the difference
/// of their shares, then pairs.
pub fn find_deviations(group: &[Vec<Item>], reference: &[Vec<Item>]) -> Vec<Deviation> {
    if group.is_empty() || reference.is_empty() {
        return Vec::new();
    }
    let mut names: Vec<Item> = Vec::new();
    let mut ids: HashMap<Item, u32> = HashMap::new();
    let mut intern = |crashes: &[Vec<Item>]| -> Vec<Vec<u32>> {
        crashes
            .iter()
            .map(|items| {
                let mut set: Vec<u32> = items
                    .iter()
                    .map(|item| {
                        *ids.entry(item.clone()).or_insert_with(|| {
                            names.push(item.clone());
                            names.len() as u32 - 1
                        })
                    })
                    .collect();
                set.sort_unstable();
                set.dedup();
                set
            })
            .collect()
    };
    let (group_sets, reference_sets) = (intern(group), intern(reference));
    let mut counts = Counts {
        group_total: group.len() as f64,
        reference_total: reference.len() as f64,
        single: HashMap::new(),
        pairs: HashMap::new(),
    };
    for (side, sets) in [(0, &group_sets), (1, &reference_sets)] {
        for set in sets {
            for id in set {
                counts.single.entry(*id).or_default()[side] += 1;
            }
        }
    }
    let mut singles: Vec<u32> = counts
        .single
        .keys()
        .copied()
        .filter(|id| !should_prune(&counts, &[*id], None))
        .collect();
    singles.sort_unstable_by(|a, b| names[*a as usize].cmp(&names[*b as usize]));
    let pairs = pair_candidates(&mut counts, &names, &singles, &group_sets, &reference_sets);
    let singles: Vec<Vec<u32>> = singles.into_iter().map(|id| vec![id]).collect();
    let mut found = final_filter(&counts, [singles, pairs]);
    // Singles before pairs; the largest difference first (to the hundredth, as Mozilla prints
    // them), over-represented before under-represented, then by name.
    found.sort_by(|a, b| {
        let key = |d: &(Vec<u32>, [u64; 2], f64, f64)| {
            let (g, r) = counts.shares(d.1);
            (((g - r).abs() * 100.0).round() as i64, g > r)
        };
        let names_of = |d: &(Vec<u32>, [u64; 2], f64, f64)| -> Vec<Item> {
            d.0.iter().map(|id| names[*id as usize].clone()).collect()
        };
        a.0.len()
            .cmp(&b.0.len())
            .then(key(b).cmp(&key(a)))
            .then_with(|| names_of(a).cmp(&names_of(b)))
    });
    found
        .into_iter()
        .map(|(candidate, c, p_value, phi)| {
            let (group_share, reference_share) = counts.shares(c);
            Deviation {
                items: candidate
                    .iter()
                    .map(|id| names[*id as usize].clone())
                    .collect(),
                group_count: c[0],
                reference_count: c[1],
                group_share,
                reference_share,
                p_value,
                phi,
            }
        })
        .collect()
}

/// Pairs of surviving single attributes (of different names), counted, pruned as Mozilla
/// prunes them; each as its two IDs in order.
fn pair_candidates(
    counts: &mut Counts,
    names: &[Item],
    singles: &[u32],
    group_sets: &[Vec<u32>],
    reference_sets: &[Vec<u32>],
) -> Vec<Vec<u32>> {
    let kept: HashSet<u32> = singles.iter().copied().collect();
    for (side, sets) in [(0, group_sets), (1, reference_sets)] {
        for set in sets {
            let present: Vec<u32> = set.iter().copied().filter(|id| kept.contains(id)).collect();
            for (i, a) in present.iter().enumerate() {
                for b in &present[i + 1..] {
                    if names[*a as usize].0 != names[*b as usize].0 {
                        counts.pairs.entry((*a, *b)).or_default()[side] += 1;
                    }
                }
            }
        }
    }
    let mut pairs: BTreeMap<(Item, Item), Vec<u32>> = BTreeMap::new();
    for (&(a, b), _) in counts.pairs.iter() {
        let candidate = [a, b];
        if !should_prune(counts, &candidate, Some((a, b))) {
            let key = (names[a as usize].clone(), names[b as usize].clone());
            pairs.insert(key, candidate.to_vec());
        }
    }
    pairs.into_values().collect()
}

/// Mozilla's `should_prune`: too few crashes, too rare on both sides, or (for a pair) no
/// change from either of its parts.
fn should_prune(counts: &Counts, candidate: &[u32], parents: Option<(u32, u32)>) -> bool {
    let c = counts.of(candidate);
    if c[1] < MIN_COUNT || c[0] < MIN_COUNT {
        return true;
    }
    let (sg, sr) = counts.shares(c);
    if sr < MIN_SUPPORT_DIFF && sg < MIN_SUPPORT_DIFF {
        return true;
    }
    let Some((p1, p2)) = parents else {
        return false;
    };
    let (c1, c2) = (counts.of(&[p1]), counts.of(&[p2]));
    let ((s1g, s1r), (s2g, s2r)) = (counts.shares(c1), counts.shares(c2));
    let given = |parent: [u64; 2]| {
        (
            c[1] as f64 / parent[1] as f64,
            c[0] as f64 / parent[0] as f64,
        )
    };
    let ((g1r, g1g), (g2r, g2g)) = (given(c1), given(c2));
    let t = 0.05f64.min(MIN_SUPPORT_DIFF / 2.0);
    if ((s1r - g1r).abs() > t || (s1g - g1g).abs() > t)
        && ((s2r - g2r).abs() > t || (s2g - g2g).abs() > t)
    {
        return false;
    }
    if ((s1r - sr).abs() < t && (s1g - sg).abs() < t)
        || ((s2r - sr).abs() < t && (s2g - sg).abs() < t)
    {
        return true;
    }
    let table = |parent: [u64; 2]| {
        [
            [parent[0] as f64, c[0] as f64],
            [parent[1] as f64, c[1] as f64],
        ]
    };
    let (_, q1) = chi2_contingency(table(c1));
    let (_, q2) = chi2_contingency(table(c2));
    q1 > 0.5 && q2 > 0.5
}

/// The final tests, level by level: the difference of shares, (for pairs) not the product of
/// the parts, the chi-square test at Bonferroni's level, the effect size.
fn final_filter(
    counts: &Counts,
    levels: [Vec<Vec<u32>>; 2],
) -> Vec<(Vec<u32>, [u64; 2], f64, f64)> {
    let mut alpha_k = ALPHA;
    let mut kept = Vec::new();
    for (level, list) in levels.into_iter().enumerate() {
        let size = level + 1;
        let number = list.len().max(1) as f64;
        for candidate in list {
            let c = counts.of(&candidate);
            let (sg, sr) = counts.shares(c);
            if (sr - sg).abs() < MIN_SUPPORT_DIFF {
                continue;
            }
            let (ng, nr) = (counts.group_total, counts.reference_total);
            if size > 1 {
                let parts: Vec<u64> = candidate.iter().map(|id| counts.of(&[*id])[0]).collect();
                let independent: f64 = parts.iter().map(|n| *n as f64 / ng).product();
                if (independent - sg).abs() <= 0.01f64.max(0.15 * sg) {
                    continue;
                }
                let ng = ng as u64;
                let table = [[c[0], ng - parts[0]], [ng - parts[1], ng - c[0]]];
                if fisher_exact(table) > alpha_k {
                    continue;
                }
            }
            let (chi2, p) = chi2_contingency([
                [c[0] as f64, c[1] as f64],
                [ng - c[0] as f64, nr - c[1] as f64],
            ]);
            alpha_k = (ALPHA / 2f64.powi(size as i32) / number).min(alpha_k);
            if p > alpha_k {
                continue;
            }
            let effect = phi(chi2, nr + ng);
            if effect < MIN_CORRELATION {
                continue;
            }
            kept.push((candidate, c, p, effect));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(items: &[(&str, &str)]) -> Vec<Item> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// 100 crashes of a group, 72 with one driver; 1,000 of the reference, 30 with it (and
    /// the group's crashes among them, as Mozilla's "overall"); the OS is the same everywhere.
    #[test]
    fn an_over_represented_driver_is_found_and_a_common_os_is_not() {
        let driver = ("annotation.gpu_driver", "31.0.15.3623");
        let other = ("annotation.gpu_driver", "30.0.1");
        let os = ("os", "Windows NT");
        let mut group = Vec::new();
        for i in 0..100 {
            group.push(crash(&[if i < 72 { driver } else { other }, os]));
        }
        let mut reference = group.clone();
        for i in 0..900 {
            reference.push(crash(&[if i < 30 { driver } else { other }, os]));
        }
        let found = find_deviations(&group, &reference);
        assert_eq!(found[0].items, crash(&[driver]), "{found:?}");
        assert_eq!((found[0].group_count, found[0].reference_count), (72, 102));
        assert!((found[0].group_share - 0.72).abs() < 1e-9);
        assert!(found[0].p_value < 1e-10 && found[0].phi > 0.03);
        assert!(
            !found.iter().any(|d| d.items.contains(&crash(&[os])[0])),
            "{found:?}"
        );
    }

    #[test]
    fn too_few_crashes_are_no_evidence() {
        let group: Vec<Vec<Item>> = (0..4).map(|_| crash(&[("cpu", "arm64")])).collect();
        let reference: Vec<Vec<Item>> = (0..400).map(|_| crash(&[("cpu", "amd64")])).collect();
        assert!(find_deviations(&group, &reference).is_empty());
    }
}
