//! Byte-pair encoding of one pre-token.
//!
//! Reference: huggingface/tokenizers `tokenizers/src/models/bpe/word.rs` (`merge_all`):
//! the symbols form a doubly linked list; a min-heap holds candidate pairs ordered by
//! (merge rank, position), so the lowest-ranked pair is merged first and, among equal
//! ranks, the leftmost. Stale heap entries (a neighbour changed since the entry was
//! pushed) are detected and skipped. O(n log n) per piece, so even a 100k-character
//! "word" without spaces encodes quickly.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Merge table: (left id, right id) -> (rank, merged id).
pub(crate) type Merges = HashMap<(u32, u32), (u32, u32)>;

/// Heap entry: (rank, left position, left id, right id, merged id).
type Candidate = (u32, usize, u32, u32, u32);

#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: Option<usize>,
    next: Option<usize>,
    /// Merged into its left neighbour.
    dead: bool,
}

/// Apply the merges to the initial symbol ids of one piece; returns the final ids.
pub(crate) fn merge(ids: &[u32], merges: &Merges) -> Vec<u32> {
    let n = ids.len();
    if n < 2 {
        return ids.to_vec();
    }
    let mut syms: Vec<Symbol> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| Symbol {
            id,
            prev: i.checked_sub(1),
            next: if i + 1 < n { Some(i + 1) } else { None },
            dead: false,
        })
        .collect();
    let mut heap: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
    for i in 0..n - 1 {
        if let Some(&(rank, new_id)) = merges.get(&(ids[i], ids[i + 1])) {
            heap.push(Reverse((rank, i, ids[i], ids[i + 1], new_id)));
        }
    }
    while let Some(Reverse((_rank, left, left_id, right_id, new_id))) = heap.pop() {
        let l = syms[left];
        if l.dead || l.id != left_id {
            continue;
        }
        let Some(right) = l.next else { continue };
        let r = syms[right];
        if r.dead || r.id != right_id {
            continue;
        }
        // Merge right into left.
        syms[left].id = new_id;
        syms[left].next = r.next;
        syms[right].dead = true;
        if let Some(nn) = r.next {
            syms[nn].prev = Some(left);
        }
        if let Some(p) = l.prev {
            if let Some(&(rk, id)) = merges.get(&(syms[p].id, new_id)) {
                heap.push(Reverse((rk, p, syms[p].id, new_id, id)));
            }
        }
        if let Some(nn) = r.next {
            if let Some(&(rk, id)) = merges.get(&(new_id, syms[nn].id)) {
                heap.push(Reverse((rk, left, new_id, syms[nn].id, id)));
            }
        }
    }
    let mut out = Vec::new();
    let mut cur = Some(0);
    while let Some(i) = cur {
        out.push(syms[i].id);
        cur = syms[i].next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_lowest_rank_first_then_leftmost() {
        // ids: a=0 b=1 c=2; ab=3 (rank 1), bc=4 (rank 0), abc via a+bc=5 (rank 2)
        let mut m = Merges::new();
        m.insert((0, 1), (1, 3));
        m.insert((1, 2), (0, 4));
        m.insert((0, 4), (2, 5));
        assert_eq!(merge(&[0, 1, 2], &m), vec![5]);
        assert_eq!(merge(&[0, 1, 0, 1], &m), vec![3, 3]);
        assert_eq!(merge(&[2], &m), vec![2]);
    }
}
