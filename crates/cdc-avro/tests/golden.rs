//! The checked-in schemas under `schemas/avro/` are exactly what the code derives from the
//! simulator's DDL, read back from a real PostgreSQL catalog.
//!
//! After an intended change, regenerate them with
//! `UPDATE_SCHEMAS=1 cargo test -p cdc-avro --test golden` and review the diff.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::PathBuf;

use cdc_avro::{key_schema, schema_json, value_schema};
use cdc_core::TableName;
use cdc_postgres::catalog;
use cdc_sim::SchemaVariant;
use cdc_testkit::TestDb;
use serde_json::Value as Json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/avro")
}

/// `<table>-key.avsc` and `<table>-value.avsc` texts for every totesys table of `variant`.
async fn derive(
    variant: SchemaVariant,
) -> Result<BTreeMap<String, String>, Box<dyn std::error::Error>> {
    let db = TestDb::create().await?;
    let client = db.client().await?;
    cdc_sim::create_schema(&client, variant).await?;
    let mut files = BTreeMap::new();
    for table in cdc_sim::TABLES {
        let id = catalog::table_id(&client, &TableName::new("public", table)).await?;
        let schema = catalog::table_schema(&client, id).await?;
        files.insert(
            format!("{table}-key.avsc"),
            schema_json(&key_schema(&schema)?)?,
        );
        files.insert(
            format!("{table}-value.avsc"),
            schema_json(&value_schema(&schema, None)?)?,
        );
    }
    Ok(files)
}

#[tokio::test]
async fn checked_in_schemas_match_the_simulator_ddl() -> TestResult {
    let derived = derive(SchemaVariant::default()).await?;
    assert_eq!(derived.len(), 22);
    let dir = schema_dir();
    if std::env::var("UPDATE_SCHEMAS").as_deref() == Ok("1") {
        std::fs::create_dir_all(&dir)?;
        for (name, text) in &derived {
            std::fs::write(dir.join(name), text)?;
        }
    }
    let mut problems = Vec::new();
    for (name, text) in &derived {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(checked_in) if checked_in == *text => {}
            Ok(_) => problems.push(format!("{name} differs")),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".avsc") && !derived.contains_key(&name) {
            problems.push(format!("{name} is checked in but no table derives it"));
        }
    }
    assert!(
        problems.is_empty(),
        "schemas/avro is out of date: {problems:?}\nIf the change is intended, regenerate with \
         `UPDATE_SCHEMAS=1 cargo test -p cdc-avro --test golden` and review the diff."
    );
    // Every file parses back to itself.
    for text in derived.values() {
        let parsed = apache_avro::Schema::parse_str(text)?;
        assert_eq!(schema_json(&parsed)?, *text);
    }
    Ok(())
}

/// Paths and values where two JSON documents differ; array items with a `name` are keyed by it.
fn differences(a: &Json, b: &Json, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (va, vb) = (
                    x.get(key).unwrap_or(&Json::Null),
                    y.get(key).unwrap_or(&Json::Null),
                );
                differences(va, vb, &format!("{path}/{key}"), out);
            }
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                let label = va["name"]
                    .as_str()
                    .map_or_else(|| i.to_string(), str::to_owned);
                differences(va, vb, &format!("{path}/{label}"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} -> {b}")),
    }
}

#[tokio::test]
async fn the_deployment_variant_differs_only_where_expected() -> TestResult {
    let default = derive(SchemaVariant::default()).await?;
    let variant = derive(SchemaVariant::BOTH).await?;
    let mut found = Vec::new();
    for (name, text) in &default {
        let a: Json = serde_json::from_str(text)?;
        let b: Json = serde_json::from_str(&variant[name])?;
        let mut diffs = Vec::new();
        differences(&a, &b, "", &mut diffs);
        found.extend(diffs.into_iter().map(|d| format!("{name}{d}")));
    }
    let decimal =
        r#""string" -> {"logicalType":"decimal","precision":10,"scale":2,"type":"bytes"}"#;
    let row = "/fields/before/type/Value/fields";
    let expected = [
        format!("payment-value.avsc{row}/payment_amount/pg.type: \"numeric\" -> \"numeric(10,2)\""),
        format!("payment-value.avsc{row}/payment_amount/type: {decimal}"),
        format!("purchase_order-value.avsc{row}/item_unit_price/pg.type: \"numeric\" -> \"numeric(10,2)\""),
        format!("purchase_order-value.avsc{row}/item_unit_price/type: {decimal}"),
        format!("sales_order-value.avsc{row}/unit_price/pg.type: \"numeric\" -> \"numeric(10,2)\""),
        format!("sales_order-value.avsc{row}/unit_price/type: {decimal}"),
        format!(
            "transaction-value.avsc{row}/transaction_type/pg.type: \"character varying\" -> \"transaction_type_enum\""
        ),
    ];
    assert_eq!(found, expected);
    Ok(())
}
