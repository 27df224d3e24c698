//! The keyword table: every word KQL gives a meaning to, and which of them are reserved.

use std::fmt;

macro_rules! keywords {
    ($($variant:ident = $text:literal $(reserved $reserved:literal)?,)*) => {
        /// A KQL keyword. Keywords are matched case-insensitively and printed in upper case.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)]
        pub enum Keyword {
            $($variant,)*
        }

        impl Keyword {
            /// Every keyword, in alphabetical order.
            pub const ALL: &'static [Keyword] = &[$(Keyword::$variant,)*];

            /// The canonical (upper-case) spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Keyword::$variant => $text,)*
                }
            }

            /// Reserved words cannot be bare identifiers (quote them with backticks:
            /// `` `order` ``); every other keyword is also a valid identifier.
            pub const fn is_reserved(self) -> bool {
                match self {
                    $($(Keyword::$variant => $reserved,)?)*
                    #[allow(unreachable_patterns)]
                    _ => false,
                }
            }

            fn from_upper(word: &str) -> Option<Keyword> {
                match word {
                    $($text => Some(Keyword::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

keywords! {
    Ack = "ACK",
    Add = "ADD",
    After = "AFTER" reserved true,
    Alter = "ALTER",
    And = "AND" reserved true,
    Array = "ARRAY",
    As = "AS" reserved true,
    Asc = "ASC",
    At = "AT",
    Backoff = "BACKOFF",
    Begin = "BEGIN",
    Belongs = "BELONGS",
    Between = "BETWEEN" reserved true,
    Bool = "BOOL",
    Boolean = "BOOLEAN",
    By = "BY",
    Bytes = "BYTES",
    Cascade = "CASCADE",
    Case = "CASE" reserved true,
    Check = "CHECK",
    Commit = "COMMIT",
    Contains = "CONTAINS" reserved true,
    Database = "DATABASE",
    Date = "DATE",
    Dead = "DEAD",
    Default = "DEFAULT",
    Define = "DEFINE",
    Delay = "DELAY",
    Delete = "DELETE",
    Dequeue = "DEQUEUE",
    Desc = "DESC",
    Describe = "DESCRIBE",
    Distinct = "DISTINCT" reserved true,
    Do = "DO",
    Drop = "DROP",
    Else = "ELSE",
    End = "END",
    Enqueue = "ENQUEUE",
    Enum = "ENUM",
    Exists = "EXISTS" reserved true,
    Expire = "EXPIRE",
    Explain = "EXPLAIN",
    False = "FALSE" reserved true,
    Field = "FIELD",
    Float = "FLOAT",
    From = "FROM" reserved true,
    Get = "GET",
    Group = "GROUP",
    Has = "HAS",
    Having = "HAVING",
    If = "IF",
    Ilike = "ILIKE",
    Immutable = "IMMUTABLE",
    In = "IN" reserved true,
    Include = "INCLUDE" reserved true,
    Index = "INDEX",
    Indexes = "INDEXES",
    Insert = "INSERT",
    Int = "INT",
    Integer = "INTEGER",
    Into = "INTO",
    Is = "IS" reserved true,
    Key = "KEY",
    Kv = "KV",
    Letter = "LETTER",
    Like = "LIKE" reserved true,
    Limit = "LIMIT" reserved true,
    List = "LIST",
    Lowercase = "LOWERCASE",
    Many = "MANY",
    Model = "MODEL",
    Models = "MODELS",
    Nack = "NACK",
    Never = "NEVER",
    Not = "NOT" reserved true,
    Null = "NULL" reserved true,
    Object = "OBJECT",
    Offset = "OFFSET" reserved true,
    On = "ON",
    One = "ONE",
    Or = "OR" reserved true,
    Order = "ORDER" reserved true,
    Prefix = "PREFIX",
    Primary = "PRIMARY",
    Priority = "PRIORITY",
    Purge = "PURGE",
    Queue = "QUEUE",
    Queues = "QUEUES",
    Relate = "RELATE",
    Relation = "RELATION",
    Rename = "RENAME",
    Restrict = "RESTRICT",
    Retries = "RETRIES",
    Retry = "RETRY",
    Returning = "RETURNING" reserved true,
    Reverse = "REVERSE",
    Rollback = "ROLLBACK",
    Select = "SELECT" reserved true,
    Set = "SET",
    Show = "SHOW",
    Starts = "STARTS" reserved true,
    Stats = "STATS",
    Stored = "STORED",
    String = "STRING",
    Then = "THEN",
    Through = "THROUGH",
    Timeout = "TIMEOUT",
    Timestamp = "TIMESTAMP",
    Timestamps = "TIMESTAMPS",
    To = "TO",
    Transaction = "TRANSACTION",
    Trim = "TRIM",
    True = "TRUE" reserved true,
    U64 = "U64",
    Ulid = "ULID",
    Unique = "UNIQUE",
    Unrelate = "UNRELATE",
    Update = "UPDATE",
    Uppercase = "UPPERCASE",
    Upsert = "UPSERT",
    Uuid = "UUID",
    Via = "VIA",
    Virtual = "VIRTUAL",
    Wait = "WAIT",
    Watch = "WATCH",
    When = "WHEN",
    Where = "WHERE" reserved true,
    With = "WITH",
}

/// The longest keyword, in bytes: longer words are never keywords.
const MAX_LEN: usize = 12;

impl Keyword {
    /// Classify a word (ASCII letters, digits, `_`), ignoring case.
    pub fn from_word(word: &str) -> Option<Keyword> {
        let bytes = word.as_bytes();
        if bytes.len() < 2 || bytes.len() > MAX_LEN {
            return None;
        }
        let mut upper = [0u8; MAX_LEN];
        for (dst, src) in upper.iter_mut().zip(bytes) {
            *dst = src.to_ascii_uppercase();
        }
        let upper = upper.get(..bytes.len())?;
        Keyword::from_upper(std::str::from_utf8(upper).ok()?)
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyword_round_trips_and_the_table_is_sorted() {
        for pair in Keyword::ALL.windows(2) {
            assert!(pair[0].as_str() < pair[1].as_str(), "{} before {}", pair[0], pair[1]);
        }
        for &kw in Keyword::ALL {
            assert!(kw.as_str().len() <= MAX_LEN);
            assert_eq!(Keyword::from_word(kw.as_str()), Some(kw));
            assert_eq!(Keyword::from_word(&kw.as_str().to_lowercase()), Some(kw));
        }
        assert_eq!(Keyword::from_word("users"), None);
        assert!(Keyword::Where.is_reserved());
        assert!(!Keyword::Key.is_reserved());
    }
}
