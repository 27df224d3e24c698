//! "Did you mean …?": the closest candidate by edit distance, when it is close enough.

/// Optimal string alignment distance (Levenshtein plus adjacent transposition), ignoring
/// ASCII case.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let width = b.len() + 1;
    // Three rows: two back (for transpositions), one back, current.
    let mut rows = vec![0usize; width * 3];
    for (j, cell) in rows.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    let mut prev2 = 2 * width; // unused until i >= 2
    let mut prev = 0;
    let mut cur = width;
    for i in 1..=a.len() {
        rows[cur] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best =
                (rows[prev + j] + 1).min(rows[cur + j - 1] + 1).min(rows[prev + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[prev2 + j - 2] + 1);
            }
            rows[cur + j] = best;
        }
        let old_prev2 = prev2;
        prev2 = prev;
        prev = cur;
        cur = old_prev2;
    }
    rows[prev + b.len()]
}

/// The candidate closest to `word`, if it is a plausible typo of it.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = match word.chars().count() {
        0..=2 => return None,
        3..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .filter(|c| !c.eq_ignore_ascii_case(word))
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("FORM", "FROM"), 1);
        assert_eq!(edit_distance("selec", "SELECT"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("WHRE", ["WHERE", "ORDER"]), Some("WHERE"));
        assert_eq!(did_you_mean("STRNG", ["STRING", "INT"]), Some("STRING"));
        assert_eq!(did_you_mean("banana", ["WHERE"]), None);
        assert_eq!(did_you_mean("to", ["TO"]), None);
    }
}
