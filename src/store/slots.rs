//! Redis Cluster hash slots, for key naming ([`super::Layout::Slotted`]).
//!
//! Redis Cluster runs a script only on keys of one hash slot, and a key's
//! slot is CRC16 of its `{hash tag}` (or of the whole key without one), mod
//! 16384. keygate keeps a user's grant state on the slot of the user's
//! record, `kg:user:<id>`, whose name predates the cluster. [`tag_for`] finds
//! a short tag with that slot, so that `{tag}` can go into other keys and
//! into the tokens that must lead back to them (a code or refresh token is
//! looked up by its string alone). The tag is a 14-bit hash of the key: it
//! tells nothing of the user id but the slot.
//!
//! The slot function is the redis crate's ([`Slot::for_key`]), so keygate
//! and the cluster client can never disagree on it.

use std::collections::HashMap;
use std::sync::OnceLock;

use redis::cluster_routing::Slot;

/// Number of hash slots of a Redis Cluster.
pub const SLOT_COUNT: usize = 16384;
/// Characters of a tag: never a brace (which would end the tag) nor a `.`
/// (which ends the tag in a token).
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Longest tag: 62^3 candidates already cover every slot (a unit test checks).
const MAX_TAG_LEN: usize = 4;

/// The first tag (shortest, then in alphabet order) of every slot.
fn table() -> &'static HashMap<Slot, String> {
    static TABLE: OnceLock<HashMap<Slot, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::with_capacity(SLOT_COUNT);
        let base = ALPHABET.len();
        let mut count = 1; // candidates of the current length: base^len
        for len in 1..=MAX_TAG_LEN {
            count *= base;
            for n in 0..count {
                // The `len` base-62 digits of `n`, most significant first.
                let mut tag = vec![0u8; len];
                let mut rest = n;
                for c in tag.iter_mut().rev() {
                    *c = ALPHABET[rest % base];
                    rest /= base;
                }
                table
                    .entry(Slot::for_key(&tag))
                    .or_insert_with(|| String::from_utf8_lossy(&tag).into_owned());
                if table.len() == SLOT_COUNT {
                    return table;
                }
            }
        }
        table
    })
}

/// A short tag (`[0-9a-zA-Z]{1,4}`) that hashes to the slot of `key`.
pub fn tag_for(key: &str) -> &'static str {
    // Every slot has a tag (tested); the fallback keeps this total anyway.
    table().get(&Slot::for_key(key)).map_or("0", String::as_str)
}

/// Whether `s` has the shape of a tag made by [`tag_for`] (so that a token
/// from a client cannot smuggle braces or an unbounded string into a key).
pub fn is_tag(s: &str) -> bool {
    (1..=MAX_TAG_LEN).contains(&s.len()) && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// Whether every key hashes to one slot (vacuously true for none).
pub fn same_slot<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    let Some(first) = keys.next() else {
        return true;
    };
    let slot = Slot::for_key(first);
    keys.all(|k| Slot::for_key(k) == slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_a_short_tag() {
        assert_eq!(table().len(), SLOT_COUNT);
        assert!(table().values().all(|t| is_tag(t) && t.len() <= 3));
    }

    #[test]
    fn a_tag_shares_the_slot_of_its_key() {
        for id in ["u1", "cfg-alice", "Zx9_-Q", ""] {
            let user = format!("kg:user:{id}");
            let tag = tag_for(&user);
            assert!(same_slot(
                [user.as_str(), &format!("kg:rt:{{{tag}}}abc"), tag].into_iter()
            ));
        }
        // The known CRC16 test vector of the cluster spec: "123456789" → 12739.
        assert_eq!(Slot::for_key("123456789"), Slot::new(12739).unwrap());
        assert_eq!(
            Slot::for_key("{user1000}.following"),
            Slot::for_key("user1000")
        );
    }

    #[test]
    fn tags_are_recognised_strictly() {
        assert!(is_tag("a") && is_tag("Zz9") && is_tag("abcd"));
        for bad in ["", "abcde", "a}", "{a", "a.b", "a-b", "é"] {
            assert!(!is_tag(bad), "{bad}");
        }
    }
}
