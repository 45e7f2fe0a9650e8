//! Splits one fuzz input into a run of telegrams, so that a compact frame (CI 0x79) can
//! meet the format learned from an earlier full frame of the same input, as in the
//! corpus entries that come with `prior_telegrams`.

/// Next telegram of `rest` and what follows it. A wireless telegram is sized by its
/// L-field (L + 1 bytes); a wired long frame `68 L L 68 … 16` by its own L (L + 6 bytes).
/// The last telegram takes whatever is left, so trailing bytes still reach the decoder.
pub fn next_telegram(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let size = match rest {
        [] => return None,
        [0x68, l1, l2, 0x68, ..] if l1 == l2 => usize::from(*l1) + 6,
        [l, ..] => usize::from(*l) + 1,
    };
    Some(rest.split_at(size.min(rest.len())))
}
