//! The config file: settings for every subcommand in one TOML file, below the
//! environment and the command line.
//!
//! Top-level keys are long option names (`lake-url = "s3://lake"`) and apply to every
//! subcommand that has that option; a table named after a subcommand (`[capture]`) holds
//! settings for that subcommand alone and wins over a top-level key. A setting reaches
//! the subcommand only when neither its flag is on the command line nor its environment
//! variable is set, so the precedence is: flag, environment, file, default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction};

/// Environment variable naming the config file (as `--config` does).
pub const CONFIG_ENV: &str = "TOTESYS_CDC_CONFIG";

/// Options a top-level key does not fill: `replay` writes to NEW targets, so the live
/// lake, warehouse and group at the top of the file are not its own.
const OWN_TABLE_ONLY: &[(&str, &str)] = &[
    ("replay", "lake-url"),
    ("replay", "warehouse-url"),
    ("replay", "group"),
];

/// A config file that cannot be used; each names the file and the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, one line.
        message: String,
    },
    /// A key no subcommand has as an option.
    #[error("config file {path}: unknown setting `{key}`{hint}")]
    UnknownSetting {
        /// The file.
        path: PathBuf,
        /// The key, with its table (`capture.foo`).
        key: String,
        /// Where it would be valid, if anywhere.
        hint: String,
    },
    /// A value of the wrong kind (a table where a value belongs, a date).
    #[error("config file {path}: setting `{key}` must be {expected}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key, with its table.
        key: String,
        /// What it must be.
        expected: &'static str,
    },
}

/// Where the config file is: `--config PATH` / `--config=PATH` in `args`, else the
/// environment variable [`CONFIG_ENV`].
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

/// `args` with the settings of the config file (if one is named) inserted after the
/// subcommand, for those the command line and the environment leave unset.
pub fn apply(args: Vec<OsString>, command: &clap::Command) -> Result<Vec<OsString>, ConfigError> {
    let Some(path) = config_path(&args) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    apply_text(args, command, &path, &text, &|name| {
        std::env::var_os(name).is_some()
    })
}

/// [`apply`] over the file's `text`; `env_set` says whether an environment variable is set.
fn apply_text(
    args: Vec<OsString>,
    command: &clap::Command,
    path: &Path,
    text: &str,
    env_set: &dyn Fn(&str) -> bool,
) -> Result<Vec<OsString>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().replace('\n', " "),
        })?;
    validate(&table, command, path)?;
    let Some(position) = subcommand_position(&args, command) else {
        return Ok(args);
    };
    let name = args[position].to_string_lossy().into_owned();
    let Some(sub) = command.find_subcommand(&name) else {
        return Ok(args);
    };
    // Top-level settings the subcommand has, then its own table's, which win.
    let mut settings: Vec<(String, &toml::Value)> = table
        .iter()
        .filter(|(key, value)| {
            !value.is_table()
                && long_arg(sub, key).is_some()
                && !OWN_TABLE_ONLY.contains(&(name.as_str(), key.as_str()))
        })
        .map(|(key, value)| (key.clone(), value))
        .collect();
    if let Some(toml::Value::Table(own)) = table.get(&name) {
        for (key, value) in own {
            settings.retain(|(k, _)| k != key);
            settings.push((key.clone(), value));
        }
    }
    let given = &args[position + 1..];
    let mut inserted = Vec::new();
    for (key, value) in settings {
        let Some(arg) = long_arg(sub, &key) else {
            continue;
        };
        let on_command_line = given.iter().any(|a| {
            let a = a.to_string_lossy();
            a == format!("--{key}") || a.starts_with(&format!("--{key}="))
        });
        let in_environment = arg
            .get_env()
            .is_some_and(|env| env_set(&env.to_string_lossy()));
        if on_command_line || in_environment {
            continue;
        }
        let qualified = format!("{name}.{key}");
        inserted.extend(flag_values(arg, &key, value, path, &qualified)?);
    }
    let mut out = args[..=position].to_vec();
    out.extend(inserted);
    out.extend_from_slice(given);
    Ok(out)
}

/// Every key names an option of some subcommand; every table names a subcommand and
/// holds only its options.
fn validate(table: &toml::Table, command: &clap::Command, path: &Path) -> Result<(), ConfigError> {
    for (key, value) in table {
        match value {
            toml::Value::Table(own) => {
                let Some(sub) = command.find_subcommand(key) else {
                    return Err(ConfigError::UnknownSetting {
                        path: path.to_owned(),
                        key: format!("[{key}]"),
                        hint: " (a table must name a subcommand)".to_owned(),
                    });
                };
                for inner in own.keys() {
                    if long_arg(sub, inner).is_none() {
                        let elsewhere: Vec<&str> = command
                            .get_subcommands()
                            .filter(|s| long_arg(s, inner).is_some())
                            .map(|s| s.get_name())
                            .collect();
                        return Err(ConfigError::UnknownSetting {
                            path: path.to_owned(),
                            key: format!("{key}.{inner}"),
                            hint: if elsewhere.is_empty() {
                                format!(" (`{key} --help` lists its options)")
                            } else {
                                format!(" (an option of {})", elsewhere.join(", "))
                            },
                        });
                    }
                }
            }
            _ => {
                if !command
                    .get_subcommands()
                    .any(|s| long_arg(s, key).is_some())
                {
                    return Err(ConfigError::UnknownSetting {
                        path: path.to_owned(),
                        key: key.clone(),
                        hint: " (keys are long option names without `--`, as `--help` lists them)"
                            .to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The index of the subcommand's name in `args`, skipping global options.
fn subcommand_position(args: &[OsString], command: &clap::Command) -> Option<usize> {
    let mut i = 1;
    while i < args.len() {
        let text = args[i].to_string_lossy();
        if text == "--config" {
            i += 2;
            continue;
        }
        if text.starts_with('-') {
            i += 1;
            continue;
        }
        return command.find_subcommand(text.as_ref()).map(|_| i);
    }
    None
}

/// The option of `sub` whose long name is `key` (not `help`, not positional).
fn long_arg<'a>(sub: &'a clap::Command, key: &str) -> Option<&'a Arg> {
    sub.get_arguments()
        .find(|a| a.get_long() == Some(key) && a.get_id() != "help" && a.get_id() != "config")
}

/// The command-line words that give `arg` the value `value`.
fn flag_values(
    arg: &Arg,
    key: &str,
    value: &toml::Value,
    path: &Path,
    qualified: &str,
) -> Result<Vec<OsString>, ConfigError> {
    let bad = |expected| ConfigError::BadValue {
        path: path.to_owned(),
        key: qualified.to_owned(),
        expected,
    };
    let flag = OsString::from(format!("--{key}"));
    let is_switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    if is_switch {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![flag]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err(bad("true or false")),
        };
    }
    let scalar = |v: &toml::Value| -> Result<String, ConfigError> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(n) => Ok(n.to_string()),
            toml::Value::Float(x) => Ok(x.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            _ => Err(bad("a string, a number, a boolean or a list of them")),
        }
    };
    let values = match value {
        toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
        other => vec![scalar(other)?],
    };
    let mut words = Vec::new();
    for v in values {
        words.push(flag.clone());
        words.push(OsString::from(v));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Parser, Subcommand};

    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(Debug, Subcommand)]
    enum Cmd {
        Capture(Capture),
        Lake(Lake),
    }

    #[derive(Debug, Args)]
    struct Capture {
        #[arg(long, env = "TEST_SOURCE")]
        source: String,
        #[arg(long, default_value_t = 4)]
        parallelism: u32,
        #[arg(long)]
        no_snapshot: bool,
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        #[arg(long)]
        metrics_listen: Option<String>,
    }

    #[derive(Debug, Args)]
    struct Lake {
        #[arg(long)]
        lake_url: String,
        #[arg(long)]
        metrics_listen: Option<String>,
    }

    fn words(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run(args: &[&str], text: &str, env: &[&str]) -> Result<Cli, String> {
        use clap::CommandFactory;
        let command = Cli::command();
        let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
        let args = apply_text(
            words(args),
            &command,
            Path::new("test.toml"),
            text,
            &|name| env.iter().any(|e| e == name),
        )
        .map_err(|e| e.to_string())?;
        Cli::try_parse_from(args).map_err(|e| e.to_string())
    }

    const FILE: &str = r#"
        source = "host=db"
        lake-url = "s3://lake"
        metrics-listen = "0.0.0.0:9100"
        [capture]
        parallelism = 8
        no-snapshot = true
        tables = ["public.a", "public.b"]
        metrics-listen = "0.0.0.0:9101"
    "#;

    #[test]
    fn file_settings_reach_the_subcommand_and_its_table_wins() {
        let cli = run(&["t", "--config", "x", "capture"], FILE, &[]).unwrap();
        let Cmd::Capture(c) = cli.command else {
            panic!("capture")
        };
        assert_eq!(c.source, "host=db");
        assert_eq!(c.parallelism, 8);
        assert!(c.no_snapshot);
        assert_eq!(c.tables, ["public.a", "public.b"]);
        assert_eq!(c.metrics_listen.as_deref(), Some("0.0.0.0:9101"));
        let cli = run(&["t", "lake", "--config=x"], FILE, &[]).unwrap();
        let Cmd::Lake(l) = cli.command else {
            panic!("lake")
        };
        assert_eq!(l.lake_url, "s3://lake");
        assert_eq!(l.metrics_listen.as_deref(), Some("0.0.0.0:9100"));
    }

    #[test]
    fn command_line_and_environment_win_over_the_file() {
        let cli = run(
            &["t", "capture", "--parallelism", "2", "--source=host=cli"],
            FILE,
            &[],
        )
        .unwrap();
        let Cmd::Capture(c) = cli.command else {
            panic!("capture")
        };
        assert_eq!((c.parallelism, c.source.as_str()), (2, "host=cli"));
        // With TEST_SOURCE set the file's `source` is not inserted; clap reads the
        // variable itself (not set in this process, so the flag is missing).
        let err = run(&["t", "capture"], FILE, &["TEST_SOURCE"]).unwrap_err();
        assert!(err.contains("--source"), "{err}");
    }

    #[test]
    fn unknown_settings_name_the_key() {
        let err = run(&["t", "capture"], "sourec = \"x\"", &[]).unwrap_err();
        assert!(err.contains("unknown setting `sourec`"), "{err}");
        let err = run(&["t", "capture"], "[lake]\nparallelism = 3", &[]).unwrap_err();
        assert!(
            err.contains("`lake.parallelism`") && err.contains("option of capture"),
            "{err}"
        );
        let err = run(&["t", "capture"], "[model]\nx = 1", &[]).unwrap_err();
        assert!(err.contains("[model]"), "{err}");
        let err = run(&["t", "capture"], "[capture]\nno-snapshot = 1", &[]).unwrap_err();
        assert!(err.contains("true or false"), "{err}");
        let err = run(&["t", "capture"], "source = ", &[]).unwrap_err();
        assert!(err.contains("not valid TOML"), "{err}");
    }

    #[test]
    fn no_config_leaves_the_arguments_alone() {
        let args = words(&["t", "capture", "--source", "x"]);
        assert_eq!(
            config_path(&args),
            std::env::var_os(CONFIG_ENV).map(PathBuf::from)
        );
    }
}
