//! Dot-commands: the shell's own commands, one enum with one table that drives parsing, help
//! and completion.

use crate::render::Mode;

/// A parsed dot-command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dot {
    Help,
    Quit,
    Mode(Mode),
    Timer(bool),
    Read(String),
    Models,
    Schema(Option<String>),
    Indexes,
    Queues,
    Import { file: String, model: String, atomic: bool },
    Export { model: String, file: Option<String> },
    Open(String),
    Backup(String),
}

/// Name, arguments, description: the source of `.help` and of completion.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (".help", "", "Show this help"),
    (".quit", "", "Leave the shell (also .exit, Ctrl-D)"),
    (".mode", "table|line|json|ndjson|csv", "How results are printed"),
    (".timer", "on|off", "Print how long each statement took"),
    (".read", "FILE", "Run a KQL script"),
    (".models", "", "List models (SHOW MODELS)"),
    (".schema", "[MODEL]", "Show a model's definition (DESCRIBE)"),
    (".indexes", "", "List indexes (SHOW INDEXES)"),
    (".queues", "", "List queues with their job counts (SHOW QUEUES)"),
    (".import", "FILE INTO MODEL [--atomic]", "Load records from .json, .ndjson or .csv"),
    (".export", "MODEL [FILE]", "Write a model's records as NDJSON to stdout or a new FILE"),
    (".open", "DB", "Switch to another database file (`:memory:` for a throwaway one)"),
    (".backup", "FILE", "Write a consistent snapshot copy of the database to a new file"),
];

/// Parses a line that starts with `.`; the error explains what was expected.
pub fn parse(line: &str) -> Result<Dot, String> {
    let all: Vec<&str> = line.split_whitespace().collect();
    match all.as_slice() {
        [".import", file, into, model] | [".import", file, into, model, "--atomic"]
            if into.eq_ignore_ascii_case("into") =>
        {
            return Ok(Dot::Import {
                file: file.to_string(),
                model: model.to_string(),
                atomic: all.len() == 5,
            });
        }
        [".import", ..] => return Err("usage: .import FILE INTO MODEL [--atomic]".into()),
        [".export", model] => {
            return Ok(Dot::Export { model: model.to_string(), file: None });
        }
        [".export", model, file] => {
            return Ok(Dot::Export { model: model.to_string(), file: Some(file.to_string()) });
        }
        [".export", ..] => return Err("usage: .export MODEL [FILE]".into()),
        _ => {}
    }
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let arg = words.next();
    let extra = words.next();
    if extra.is_some() {
        return Err(format!("{name}: too many arguments"));
    }
    match (name, arg) {
        (".help", None) => Ok(Dot::Help),
        (".quit" | ".exit", None) => Ok(Dot::Quit),
        (".mode", Some(m)) => <Mode as clap::ValueEnum>::from_str(m, true)
            .map(Dot::Mode)
            .map_err(|_| format!(".mode: unknown mode `{m}` (table, line, json, ndjson or csv)")),
        (".timer", Some("on")) => Ok(Dot::Timer(true)),
        (".timer", Some("off")) => Ok(Dot::Timer(false)),
        (".read", Some(f)) => Ok(Dot::Read(f.to_owned())),
        (".models", None) => Ok(Dot::Models),
        (".schema", m) => Ok(Dot::Schema(m.map(str::to_owned))),
        (".indexes", None) => Ok(Dot::Indexes),
        (".queues", None) => Ok(Dot::Queues),
        (".open", Some(db)) => Ok(Dot::Open(db.to_owned())),
        (".backup", Some(f)) => Ok(Dot::Backup(f.to_owned())),
        _ => match COMMANDS.iter().find(|(n, ..)| *n == name) {
            Some((n, args, _)) => Err(format!("usage: {n} {args}")),
            None => Err(format!("unknown command `{name}`; try .help")),
        },
    }
}

/// The text of `.help`.
pub fn help() -> String {
    let mut s = String::from("Statements end with `;`. Shell commands:\n");
    for (name, args, what) in COMMANDS {
        s.push_str(&format!("  {:<28} {what}\n", format!("{name} {args}")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_command_and_explains_mistakes() {
        assert_eq!(parse(".mode json"), Ok(Dot::Mode(Mode::Json)));
        assert_eq!(parse(".timer on"), Ok(Dot::Timer(true)));
        assert_eq!(parse(".schema users"), Ok(Dot::Schema(Some("users".into()))));
        assert_eq!(parse(".schema"), Ok(Dot::Schema(None)));
        assert_eq!(parse(".exit"), Ok(Dot::Quit));
        assert_eq!(parse(".mode"), Err("usage: .mode table|line|json|ndjson|csv".into()));
        assert!(parse(".mode xml").is_err_and(|e| e.contains("unknown mode")));
        assert!(parse(".frob").is_err_and(|e| e.contains("unknown command")));
        assert!(help().contains(".read FILE"));
        assert_eq!(
            parse(".import a.csv INTO users --atomic"),
            Ok(Dot::Import { file: "a.csv".into(), model: "users".into(), atomic: true })
        );
        assert!(parse(".import a.csv users").is_err());
        assert_eq!(parse(".export users"), Ok(Dot::Export { model: "users".into(), file: None }));
    }
}
