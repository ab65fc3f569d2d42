//! Rendezvous (highest-random-weight) hashing: which live replica owns a key. Every replica computes the
//! same answer from the same member list, and a replica joining or leaving moves only the keys it wins or
//! held, never keys between two other replicas.

/// The member with the highest score for `key`, or `None` when there is no member. Ties (a 2^-64 chance)
/// go to the smaller name, so the answer never depends on the order of `members`.
pub fn owner<'a>(key: &str, members: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key_hash = fnv1a(key.as_bytes());
    members
        .into_iter()
        .map(|m| (score(fnv1a(m.as_bytes()), key_hash), m))
        .max_by(|(sa, a), (sb, b)| sa.cmp(sb).then_with(|| b.cmp(a)))
        .map(|(_, m)| m)
}

/// The weight of one (member, key) pair: the two hashes mixed by SplitMix64's finaliser, so a small change
/// of either spreads over all 64 bits.
fn score(member: u64, key: u64) -> u64 {
    let mut z = member ^ key.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a (64 bits): fixed by its definition, so every replica and every version of berth agree.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("argocd/app-{i}")).collect()
    }

    #[test]
    fn no_member_owns_nothing_and_one_member_owns_everything() {
        assert_eq!(owner("a", std::iter::empty()), None);
        assert_eq!(owner("a", ["r1"]), Some("r1"));
    }

    #[test]
    fn the_hash_is_stable_across_versions() {
        // Replicas of two berth versions during a rolling update must agree: these values are pinned.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(owner("argocd/guestbook", ["berth-0", "berth-1", "berth-2"]), Some("berth-0"));
    }

    #[test]
    fn three_replicas_share_a_thousand_apps_evenly() {
        let members = ["berth-0", "berth-1", "berth-2"];
        let mut counts = std::collections::HashMap::new();
        for k in keys(3000) {
            *counts.entry(owner(&k, members).unwrap()).or_insert(0) += 1;
        }
        for m in members {
            let n = counts[m];
            assert!((850..=1150).contains(&n), "{m} owns {n} of 3000");
        }
    }

    proptest! {
        #[test]
        fn the_answer_does_not_depend_on_the_order_of_members(
            members in proptest::collection::hash_set("[a-z0-9-]{1,12}", 1..8),
            key in "[a-z0-9/-]{1,30}",
        ) {
            let forward: Vec<&str> = members.iter().map(String::as_str).collect();
            let mut backward = forward.clone();
            backward.reverse();
            prop_assert_eq!(owner(&key, forward), owner(&key, backward));
        }

        #[test]
        fn a_member_leaving_moves_only_its_own_keys(
            members in proptest::collection::hash_set("[a-z0-9-]{1,12}", 2..8),
            leaving in 0usize..8,
        ) {
            let all: Vec<&str> = members.iter().map(String::as_str).collect();
            let gone = all[leaving % all.len()];
            let rest: Vec<&str> = all.iter().copied().filter(|m| *m != gone).collect();
            for k in keys(200) {
                let before = owner(&k, all.iter().copied()).unwrap();
                let after = owner(&k, rest.iter().copied()).unwrap();
                if before != gone {
                    prop_assert_eq!(before, after, "{} moved although {} left", k, gone);
                }
            }
        }

        #[test]
        fn a_member_joining_takes_keys_only_for_itself(
            members in proptest::collection::hash_set("[a-z0-9-]{1,12}", 1..8),
            joining in "[A-Z]{1,8}",
        ) {
            let before: Vec<&str> = members.iter().map(String::as_str).collect();
            let mut after = before.clone();
            after.push(&joining);
            for k in keys(200) {
                let (b, a) = (owner(&k, before.iter().copied()).unwrap(), owner(&k, after.iter().copied()).unwrap());
                prop_assert!(a == b || a == joining, "{} moved from {} to {}", k, b, a);
            }
        }
    }
}
