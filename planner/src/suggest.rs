//! "Did you mean …?" for model, field and index names: the closest name by edit distance.

/// Optimal string alignment distance (Levenshtein plus adjacent swaps), ignoring ASCII case.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev2: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word` when it is a plausible typo (at most a third of the
/// word's length away, and at least one edit allowed).
pub fn did_you_mean<'c, S: AsRef<str> + 'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c S>,
) -> Option<String> {
    let max = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(word, c.as_ref()), c.as_ref()))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = vec!["email".to_string(), "name".to_string()];
        assert_eq!(did_you_mean("emial", &names).as_deref(), Some("email"));
        assert_eq!(did_you_mean("zzzzzz", &names), None);
    }
}
