//! The "expected" set: every keyword, token or category the parser tried at the current
//! token. Failed checks record themselves for free (a few bit operations), so an error at
//! any point can list exactly what would have been accepted there, and suggest the closest.

use crate::keyword::Keyword;
use crate::token::TokenKind;

/// Categories of tokens that are not a single keyword or punctuation mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Statement,
    Expression,
    Identifier,
    Type,
    Duration,
    Integer,
    Operator,
}

const CATEGORIES: [(Category, &str); 7] = [
    (Category::Statement, "a statement"),
    (Category::Expression, "an expression"),
    (Category::Identifier, "an identifier"),
    (Category::Type, "a type"),
    (Category::Duration, "a duration such as '30s'"),
    (Category::Integer, "an integer"),
    (Category::Operator, "an operator"),
];

/// A set of things that would have been accepted at one token position.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Expected {
    keywords: [u64; 3],
    tokens: u64,
    categories: u16,
}

impl Expected {
    pub(crate) fn keyword(&mut self, kw: Keyword) {
        let i = kw as usize;
        if let Some(word) = self.keywords.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }

    pub(crate) fn token(&mut self, kind: TokenKind) {
        self.tokens |= 1u64 << kind.bit();
    }

    pub(crate) fn category(&mut self, cat: Category) {
        self.categories |= 1 << cat as u16;
    }

    pub(crate) fn has_category(&self, cat: Category) -> bool {
        self.categories & (1 << cat as u16) != 0
    }

    /// The expected keywords, alphabetically.
    pub(crate) fn keywords(&self) -> impl Iterator<Item = Keyword> + '_ {
        Keyword::ALL.iter().copied().filter(|&kw| {
            let i = kw as usize;
            self.keywords.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
        })
    }

    /// Every item, described for a message: categories, then punctuation, then keywords.
    pub(crate) fn describe(&self) -> Vec<String> {
        if self.has_category(Category::Statement) {
            // The statement keywords are kept for "did you mean", not listed.
            return vec!["a statement".to_string()];
        }
        let mut items: Vec<String> = CATEGORIES
            .iter()
            .filter(|(cat, _)| self.has_category(*cat))
            .map(|(_, text)| (*text).to_string())
            .collect();
        items.extend(
            TokenKind::BY_BIT
                .iter()
                .filter(|kind| self.tokens & (1u64 << kind.bit()) != 0)
                .map(|kind| kind.describe().to_string()),
        );
        items.extend(self.keywords().map(|kw| format!("`{kw}`")));
        items
    }
}

/// "X", "X or Y", "one of X, Y, or Z" (long lists are cut short).
pub(crate) fn join_expected(items: &[String]) -> String {
    const SHOWN: usize = 16;
    match items {
        [] => "something else".to_string(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        _ if items.len() > SHOWN => {
            format!("one of {}, … ({} more)", items[..SHOWN].join(", "), items.len() - SHOWN)
        }
        [init @ .., last] => format!("one of {}, or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyword_table_fits_the_bit_set() {
        assert!(Keyword::ALL.len() <= 192);
        assert_eq!(TokenKind::BY_BIT.len(), 34);
        assert!(TokenKind::BY_BIT.len() < 64);
        for (i, kind) in TokenKind::BY_BIT.iter().enumerate() {
            assert_eq!(kind.bit() as usize, i);
        }
    }

    #[test]
    fn describes_in_order() {
        let mut e = Expected::default();
        e.token(TokenKind::Semicolon);
        e.keyword(Keyword::Where);
        e.keyword(Keyword::Limit);
        e.category(Category::Expression);
        assert_eq!(e.describe(), ["an expression", "`;`", "`LIMIT`", "`WHERE`"]);
        assert_eq!(join_expected(&e.describe()), "one of an expression, `;`, `LIMIT`, or `WHERE`");
    }
}
