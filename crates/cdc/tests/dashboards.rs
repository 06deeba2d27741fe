//! The Grafana dashboards and Prometheus alert rules name only what exists.
//!
//! - Every Prometheus query in `deploy/grafana/dashboards/*.json` and every alert
//!   expression in `deploy/prometheus/alerts.yml` names at least one metric, and every
//!   metric it names is one `totesys-cdc metrics --json` lists (histograms with their
//!   `_bucket`, `_sum` and `_count` series) or a Prometheus built-in (`up`, `scrape_*`).
//! - Every warehouse (PostgreSQL) query runs `EXPLAIN` against a fresh database with the
//!   warehouse DDL applied, as a role that may only read schema `public` (what dashboard
//!   readers get, docs/warehouse.md), with Grafana's macros expanded as Grafana does: so
//!   PostgreSQL itself checks tables, columns, types and permissions.
//! - Every dashboard has a unique uid and title; every panel a title and a datasource
//!   whose uid is `prometheus` or `warehouse`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository's root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Prometheus' own series, always there for a scraped target.
const BUILT_IN_METRICS: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Every series name the binary exports, plus Prometheus' built-ins.
fn exported_metrics() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_totesys-cdc"))
        .args(["metrics", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "totesys-cdc metrics --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: BTreeSet<String> = BUILT_IN_METRICS.iter().map(|s| s.to_string()).collect();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let metric: Value = serde_json::from_str(line).unwrap();
        let name = metric["name"].as_str().unwrap();
        match metric["type"].as_str().unwrap() {
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            "summary" => {
                names.insert(name.to_string());
                for suffix in ["_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    assert!(
        names.len() > BUILT_IN_METRICS.len(),
        "totesys-cdc metrics --json listed no metric"
    );
    names
}

// ---------------------------------------------------------------------------------------
// PromQL: the metric names an expression uses.

/// Words that are PromQL syntax, not metric names, even when not followed by `(`
/// (aggregations may put `by (…)` or `without (…)` before their parentheses).
const PROMQL_KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Removes quoted strings, label matchers `{…}` and ranges `[…]` (durations, subqueries).
fn strip_strings_matchers_ranges(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                // A string: skip to its closing quote (backslash escapes, except in `…`).
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                out.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut quote = None;
                for d in chars.by_ref() {
                    match quote {
                        Some(q) if d == q => quote = None,
                        Some(_) => {}
                        None if d == '"' || d == '\'' || d == '`' => quote = Some(d),
                        None if d == close => break,
                        None => {}
                    }
                }
                out.push(' ');
            }
            '#' => {
                // A comment runs to the end of the line.
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The metric names a PromQL expression selects, in order of appearance.
fn promql_metric_names(expr: &str) -> Vec<String> {
    let text = strip_strings_matchers_ranges(expr);
    let bytes: Vec<char> = text.chars().collect();
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let next_non_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '$' {
            // A Grafana variable ($instance, ${instance}, $__rate_interval).
            i += 1;
            if i < bytes.len() && bytes[i] == '{' {
                while i < bytes.len() && bytes[i] != '}' {
                    i += 1;
                }
            }
            while i < bytes.len() && ident_char(bytes[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && bytes.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or duration (5, 0.99, 1e3, 0x1f, 5m, 1h30m).
            while i < bytes.len() && (ident_char(bytes[i]) || bytes[i] == '.') {
                i += 1;
            }
        } else if ident_start(c) {
            let start = i;
            while i < bytes.len() && ident_char(bytes[i]) {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            let after = next_non_space(i);
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                if bytes.get(after) == Some(&'(') {
                    // Skip the label list.
                    i = after;
                    while i < bytes.len() && bytes[i] != ')' {
                        i += 1;
                    }
                }
            } else if bytes.get(after) == Some(&'(') || PROMQL_KEYWORDS.contains(&lower.as_str()) {
                // A function or aggregation, or an operator word.
            } else {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn extractor_finds_metrics_and_nothing_else() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"histogram_quantile(0.99, sum by (le, job) (rate(totesys_cdc_modeler_freshness_seconds_bucket{instance=~"$instance"}[$__rate_interval])))"#,
            &["totesys_cdc_modeler_freshness_seconds_bucket"],
        ),
        (
            r#"sum(rate(a_total{job="x",le="+Inf"}[5m])) by (job) / on (job) group_left(instance) sum without (table) (b_total offset 1h)"#,
            &["a_total", "b_total"],
        ),
        (
            r#"time() - max(w_seconds) > 5 and bool changes(lsn[10m:1m]) == 0 or vector(0)"#,
            &["w_seconds", "lsn"],
        ),
        (
            r#"label_replace(up{job=~"totesys-cdc-.*"}, "component", "$1", "job", "totesys-cdc-(.*)") == 0"#,
            &["up"],
        ),
        (
            "absent(up{job=\"a {b} [c]\"}) # a comment naming not_a_metric\n unless x_total > 1e3 * Inf",
            &["up", "x_total"],
        ),
        ("time()", &[]),
        ("10 * 1024 ^ 3", &[]),
    ];
    for (expr, want) in cases {
        assert_eq!(promql_metric_names(expr), *want, "expression: {expr}");
    }
}

// ---------------------------------------------------------------------------------------
// Dashboards: loading and walking panels.

/// One dashboard file, parsed.
struct Dashboard {
    file: String,
    json: Value,
}

fn dashboards() -> Vec<Dashboard> {
    let dir = repo_root().join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            Dashboard {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            }
        })
        .collect()
}

/// Every panel of a dashboard, including panels nested in (collapsed) rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

fn title(panel: &Value) -> &str {
    panel["title"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or("<untitled>")
}

/// A panel's query and the datasource uid it runs on (the target's own, else the panel's).
struct Query<'a> {
    dashboard: &'a str,
    panel: &'a str,
    datasource: &'a str,
    target: &'a Value,
}

fn queries(dashboard: &Dashboard) -> Vec<Query<'_>> {
    let mut out = Vec::new();
    for panel in all_panels(&dashboard.json) {
        if is_row(panel) {
            continue;
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let datasource = target["datasource"]["uid"]
                .as_str()
                .or(panel["datasource"]["uid"].as_str())
                .unwrap_or("");
            out.push(Query {
                dashboard: &dashboard.file,
                panel: title(panel),
                datasource,
                target,
            });
        }
    }
    out
}

#[test]
fn dashboards_have_unique_uids_titles_and_known_datasources() {
    let mut problems = Vec::new();
    let mut uids = BTreeMap::new();
    let mut titles = BTreeMap::new();
    let expected_type = BTreeMap::from([
        ("prometheus", "prometheus"),
        ("warehouse", "grafana-postgresql-datasource"),
    ]);
    for dashboard in &dashboards() {
        let file = &dashboard.file;
        let json = &dashboard.json;
        match json["uid"].as_str() {
            Some(uid) if !uid.is_empty() => {
                if let Some(other) = uids.insert(uid.to_string(), file.clone()) {
                    problems.push(format!("{file}: uid {uid} is also {other}'s"));
                }
            }
            _ => problems.push(format!("{file}: no uid")),
        }
        match json["title"].as_str() {
            Some(t) if !t.is_empty() => {
                if let Some(other) = titles.insert(t.to_string(), file.clone()) {
                    problems.push(format!("{file}: title {t:?} is also {other}'s"));
                }
            }
            _ => problems.push(format!("{file}: no title")),
        }
        let mut ids = BTreeSet::new();
        for panel in all_panels(json) {
            let name = title(panel);
            if panel["title"].as_str().is_none_or(str::is_empty) {
                problems.push(format!(
                    "{file}: a panel of type {} has no title",
                    panel["type"]
                ));
            }
            if let Some(id) = panel["id"].as_i64() {
                if !ids.insert(id) {
                    problems.push(format!("{file}: panel {name:?}: id {id} is used twice"));
                }
            }
            if is_row(panel) {
                continue;
            }
            let uid = panel["datasource"]["uid"].as_str().unwrap_or("");
            match expected_type.get(uid) {
                None => problems.push(format!(
                    "{file}: panel {name:?}: datasource uid {uid:?} is neither prometheus nor warehouse"
                )),
                Some(kind) if panel["datasource"]["type"] != *kind => problems.push(format!(
                    "{file}: panel {name:?}: datasource {uid} should have type {kind}"
                )),
                Some(_) => {}
            }
            if panel["targets"].as_array().is_none_or(Vec::is_empty) {
                problems.push(format!("{file}: panel {name:?} has no query"));
            }
        }
        for query in queries(dashboard) {
            if !expected_type.contains_key(query.datasource) {
                problems.push(format!(
                    "{file}: panel {:?}: a query's datasource uid {:?} is neither prometheus nor warehouse",
                    query.panel, query.datasource
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn prometheus_queries_name_exported_metrics() {
    let exported = exported_metrics();
    let mut problems = Vec::new();
    let mut checked = 0;
    for dashboard in &dashboards() {
        for query in queries(dashboard) {
            if query.datasource != "prometheus" {
                continue;
            }
            let where_ = format!("{}: panel {:?}", query.dashboard, query.panel);
            let Some(expr) = query.target["expr"].as_str() else {
                problems.push(format!("{where_}: a Prometheus query without expr"));
                continue;
            };
            checked += 1;
            let names = promql_metric_names(expr);
            if names.is_empty() {
                problems.push(format!("{where_}: names no metric: {expr}"));
            }
            for name in names {
                if !exported.contains(&name) {
                    problems.push(format!("{where_}: metric {name} is not exported"));
                }
            }
        }
    }
    assert!(checked > 0, "no Prometheus query in any dashboard");
    assert!(
        problems.is_empty(),
        "Prometheus queries:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Alert rules.

/// The `expr:` values of a Prometheus rule file: inline or as a `|`/`>` block.
fn rule_expressions(yaml: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(value) = trimmed.strip_prefix("expr:") {
            let value = value.trim();
            if value.starts_with('|') || value.starts_with('>') {
                let mut block = String::new();
                let mut j = i + 1;
                while j < lines.len()
                    && (lines[j].trim().is_empty()
                        || lines[j].len() - lines[j].trim_start().len() > indent)
                {
                    block.push_str(lines[j]);
                    block.push('\n');
                    j += 1;
                }
                out.push((i + 1, block));
                i = j;
                continue;
            }
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .map(|v| v.replace("''", "'"))
                .unwrap_or_else(|| value.to_string());
            out.push((i + 1, value));
        }
        i += 1;
    }
    out
}

#[test]
fn alert_rules_name_exported_metrics() {
    let exported = exported_metrics();
    let path = repo_root().join("deploy/prometheus/alerts.yml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let mut problems = BTreeSet::new();

    // Every totesys_cdc_… token anywhere in the file (comments and annotations too).
    let mut rest = yaml.as_str();
    while let Some(at) = rest.find("totesys_cdc_") {
        let token: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !exported.contains(&token) {
            problems.insert(format!("alerts.yml: metric {token} is not exported"));
        }
        rest = &rest[at + token.len()..];
    }

    // Every expression names at least one metric, and only exported ones.
    let expressions = rule_expressions(&yaml);
    assert!(!expressions.is_empty(), "no expr in {}", path.display());
    for (line, expr) in expressions {
        let names = promql_metric_names(&expr);
        if names.is_empty() {
            problems.insert(format!("alerts.yml line {line}: names no metric: {expr}"));
        }
        for name in names {
            if !exported.contains(&name) {
                problems.insert(format!(
                    "alerts.yml line {line}: metric {name} is not exported"
                ));
            }
        }
    }
    let problems: Vec<String> = problems.into_iter().collect();
    assert!(problems.is_empty(), "alert rules:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Warehouse queries.

/// The dashboard time range the macros expand to (Grafana's format).
const TIME_FROM: &str = "2024-01-01T00:00:00Z";
const TIME_TO: &str = "2025-12-31T23:59:59Z";
const TIME_FROM_EPOCH: i64 = 1_704_067_200;
const TIME_TO_EPOCH: i64 = 1_767_225_599;

/// The arguments of a macro call starting after its `(`, split at top-level commas, and
/// the index after its `)`.
fn macro_args(sql: &str, open: usize) -> Result<(Vec<String>, usize), String> {
    let mut depth = 0;
    let mut args = vec![String::new()];
    for (i, c) in sql[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                let args = args.into_iter().map(|a| a.trim().to_string()).collect();
                return Ok((args, open + i + 1));
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(String::new());
                continue;
            }
            _ => {}
        }
        args.last_mut().unwrap().push(c);
    }
    Err("a macro call is not closed".to_string())
}

/// An interval argument such as `'1h'`, `1d`, `$__interval` in seconds.
fn interval_seconds(arg: &str) -> Result<i64, String> {
    let arg = arg.trim().trim_matches('\'');
    if arg.starts_with("$__interval") || arg == "auto" {
        return Ok(3600);
    }
    let split = arg
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(format!("interval {arg} has no unit"))?;
    let n: i64 = arg[..split]
        .parse()
        .map_err(|_| format!("interval {arg} is not a number"))?;
    let unit = match &arg[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        other => return Err(format!("interval unit {other} is unknown")),
    };
    Ok(n * unit)
}

/// The SQL Grafana's PostgreSQL datasource would send: macros expanded the way it expands
/// them, template variables replaced by their current value.
fn expand_grafana_sql(sql: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while let Some(at) = sql[i..].find('$').map(|at| at + i) {
        out.push_str(&sql[i..at]);
        let name_end = sql[at + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(sql.len(), |n| at + 1 + n);
        let name = &sql[at + 1..name_end];
        if let Some(macro_name) = name.strip_prefix("__") {
            let takes_args = sql[name_end..].starts_with('(');
            let (args, end) = if takes_args {
                macro_args(sql, name_end + 1)?
            } else {
                (Vec::new(), name_end)
            };
            let arg = |n: usize| {
                args.get(n)
                    .filter(|a| !a.is_empty())
                    .cloned()
                    .ok_or(format!("$__{macro_name} needs argument {}", n + 1))
            };
            let group = |column: String, interval: &str| -> Result<String, String> {
                let secs = interval_seconds(interval)?;
                Ok(format!("floor(extract(epoch from {column})/{secs})*{secs}"))
            };
            let expanded = match macro_name {
                "timeFilter" => format!("{} BETWEEN '{TIME_FROM}' AND '{TIME_TO}'", arg(0)?),
                "timeFrom" => format!("'{TIME_FROM}'"),
                "timeTo" => format!("'{TIME_TO}'"),
                "time" => format!("{} AS \"time\"", arg(0)?),
                "timeEpoch" => format!("extract(epoch from {}) AS \"time\"", arg(0)?),
                "timeGroup" => group(arg(0)?, &arg(1)?)?,
                "timeGroupAlias" => format!("{} AS \"time\"", group(arg(0)?, &arg(1)?)?),
                "unixEpochFilter" => format!(
                    "{c} >= {TIME_FROM_EPOCH} AND {c} <= {TIME_TO_EPOCH}",
                    c = arg(0)?
                ),
                "unixEpochFrom" => TIME_FROM_EPOCH.to_string(),
                "unixEpochTo" => TIME_TO_EPOCH.to_string(),
                "interval" => "'1h'".to_string(),
                "interval_ms" => "3600000".to_string(),
                other => {
                    return Err(format!(
                        "Grafana macro $__{other} is not handled by this test"
                    ))
                }
            };
            out.push_str(&expanded);
            i = end;
        } else if let Some(braced) = sql[at + 1..].strip_prefix('{') {
            let close = braced.find('}').ok_or("a ${…} variable is not closed")?;
            let var = braced[..close].split(':').next().unwrap_or("");
            out.push_str(
                variables
                    .get(var)
                    .ok_or(format!("template variable {var} is not defined"))?,
            );
            i = at + 2 + close + 1;
        } else if name.is_empty() {
            // A literal `$` (positional parameters would fail in EXPLAIN anyway).
            out.push('$');
            i = at + 1;
        } else {
            out.push_str(
                variables
                    .get(name)
                    .ok_or(format!("template variable {name} is not defined"))?,
            );
            i = name_end;
        }
    }
    out.push_str(&sql[i..]);
    Ok(out)
}

/// A dashboard's template variables and their current values.
fn template_variables(dashboard: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let value = match &var["current"]["value"] {
            Value::String(s) => s.clone(),
            Value::Array(values) => values
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        };
        out.insert(name.to_string(), value);
    }
    out
}

#[test]
fn grafana_macros_expand_like_grafana() {
    let vars = BTreeMap::from([("currency".to_string(), "'GBP'".to_string())]);
    let sql = "SELECT $__timeGroupAlias(d.date_id, '1d'), count(*) FROM t \
               WHERE $__timeFilter(f.created_date) AND c = ${currency} AND x < $__timeTo() AND y = $currency";
    assert_eq!(
        expand_grafana_sql(sql, &vars).unwrap(),
        "SELECT floor(extract(epoch from d.date_id)/86400)*86400 AS \"time\", count(*) FROM t \
         WHERE f.created_date BETWEEN '2024-01-01T00:00:00Z' AND '2025-12-31T23:59:59Z' \
         AND c = 'GBP' AND x < '2025-12-31T23:59:59Z' AND y = 'GBP'"
    );
    assert!(expand_grafana_sql("SELECT $__unknown(x)", &vars).is_err());
    assert!(expand_grafana_sql("SELECT $nope", &vars).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouse_queries_run_against_the_warehouse_ddl() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let client = db.client().await.unwrap();
    cdc_modeler::warehouse::init(&client).await.unwrap();

    // A role that may read schema public only, like a dashboard reader (docs/warehouse.md).
    let reader = format!("{}_reader", db.name);
    client
        .batch_execute(&format!(
            "CREATE ROLE \"{reader}\" NOLOGIN;
             GRANT USAGE ON SCHEMA public TO \"{reader}\";
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{reader}\";"
        ))
        .await
        .unwrap();

    let mut problems = Vec::new();
    let mut checked = 0;
    for dashboard in &dashboards() {
        let variables = template_variables(&dashboard.json);
        for query in queries(dashboard) {
            if query.datasource != "warehouse" {
                continue;
            }
            let where_ = format!("{}: panel {:?}", query.dashboard, query.panel);
            let Some(raw) = query.target["rawSql"].as_str() else {
                problems.push(format!("{where_}: a warehouse query without rawSql"));
                continue;
            };
            checked += 1;
            let sql = match expand_grafana_sql(raw, &variables) {
                Ok(sql) => sql,
                Err(e) => {
                    problems.push(format!("{where_}: {e}"));
                    continue;
                }
            };
            client
                .batch_execute(&format!("BEGIN READ ONLY; SET LOCAL ROLE \"{reader}\""))
                .await
                .unwrap();
            if let Err(e) = client.query(&format!("EXPLAIN {sql}"), &[]).await {
                let why = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string());
                problems.push(format!(
                    "{where_}: {why}\n    in: {}",
                    sql.replace('\n', " ")
                ));
            }
            client.batch_execute("ROLLBACK").await.unwrap();
        }
    }
    client
        .batch_execute(&format!(
            "DROP OWNED BY \"{reader}\"; DROP ROLE \"{reader}\""
        ))
        .await
        .unwrap();
    assert!(checked > 0, "no warehouse query in any dashboard");
    assert!(
        problems.is_empty(),
        "warehouse queries:\n{}",
        problems.join("\n")
    );
}
