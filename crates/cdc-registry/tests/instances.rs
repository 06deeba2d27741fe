//! Several registry instances on one database, restarts, and the store's own settings.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeSet, HashMap};

use cdc_core::Secret;
use cdc_registry::{RegistryStore, StoreConfig};
use serde_json::json;
use support::{record, Server};

fn schema(n: usize) -> String {
    record(
        "Evt",
        &[
            r#"{"name":"id","type":"int"}"#,
            &format!(r#"{{"name":"f{n}","type":"string","default":""}}"#),
        ],
    )
}

#[tokio::test]
async fn two_instances_registering_at_once_agree_on_ids() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    // Both instances migrate the same empty database at the same time.
    let (a, b) = tokio::join!(support::store(&db), support::store(&db));
    let servers = [Server::start(a).await, Server::start(b).await];
    servers[0]
        .http
        .put("/config", json!({"compatibility": "NONE"}))
        .await
        .ok();

    // 8 schemas, each registered under 3 subjects, 3 times, through both servers, all at once.
    let mut tasks = Vec::new();
    for round in 0..3 {
        for n in 0..8 {
            for subject in ["s-a", "s-b", "s-c"] {
                let http = servers[(n + round) % 2].http.clone();
                let text = schema(n);
                tasks.push(tokio::spawn(async move {
                    let id = http.register_ok(subject, &text).await;
                    (n, subject, id)
                }));
            }
        }
    }
    let mut ids: HashMap<usize, BTreeSet<u64>> = HashMap::new();
    for task in tasks {
        let (n, _, id) = task.await.unwrap();
        ids.entry(n).or_default().insert(id);
    }
    // One id per schema, distinct across schemas, dense from 1.
    let mut all = BTreeSet::new();
    for (n, set) in &ids {
        assert_eq!(set.len(), 1, "schema {n} got ids {set:?}");
        all.extend(set.iter().copied());
    }
    assert_eq!(all, (1..=8).collect::<BTreeSet<u64>>());
    // Every subject holds each schema exactly once: versions 1..=8, no duplicates.
    for subject in ["s-a", "s-b", "s-c"] {
        for server in &servers {
            let versions = server
                .http
                .get(&format!("/subjects/{subject}/versions"))
                .await;
            assert_eq!(versions.ok(), &json!([1, 2, 3, 4, 5, 6, 7, 8]));
        }
        let mut seen = BTreeSet::new();
        for version in 1..=8 {
            let reply = servers[0]
                .http
                .get(&format!("/subjects/{subject}/versions/{version}"))
                .await;
            assert!(seen.insert(reply.ok()["id"].as_u64().unwrap()));
        }
    }
    // Both instances answer the same for every id.
    for id in 1..=8 {
        let path = format!("/schemas/ids/{id}");
        assert_eq!(
            servers[0].http.get(&path).await.ok(),
            servers[1].http.get(&path).await.ok()
        );
    }
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test]
async fn restart_keeps_schemas_ids_versions_and_levels() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = server.http.clone();
    assert_eq!(http.register_ok("orders-value", &schema(1)).await, 1);
    assert_eq!(http.register_ok("orders-value", &schema(2)).await, 2);
    assert_eq!(http.register_ok("staff-value", &schema(3)).await, 3);
    http.put("/config/orders-value", json!({"compatibility": "FULL"}))
        .await
        .ok();
    http.put("/config", json!({"compatibility": "FORWARD"}))
        .await
        .ok();
    http.delete("/subjects/staff-value").await.ok();
    let before_1 = http.get("/schemas/ids/1").await.json;
    let before_latest = http
        .get("/subjects/orders-value/versions/latest")
        .await
        .json;
    server.stop().await;

    // A new store on the same database, as after a process restart.
    let server = Server::start(support::store(&db).await).await;
    let http = server.http.clone();
    assert_eq!(http.get("/schemas/ids/1").await.ok(), &before_1);
    assert_eq!(
        http.get("/subjects/orders-value/versions/latest")
            .await
            .ok(),
        &before_latest
    );
    assert_eq!(
        http.get("/subjects/orders-value/versions").await.ok(),
        &json!([1, 2])
    );
    assert_eq!(http.get("/subjects").await.ok(), &json!(["orders-value"]));
    assert_eq!(
        http.get("/subjects?deleted=true").await.ok(),
        &json!(["orders-value", "staff-value"])
    );
    assert_eq!(
        http.get("/config/orders-value").await.ok(),
        &json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        http.get("/config").await.ok(),
        &json!({"compatibilityLevel": "FORWARD"})
    );
    // Known schemas keep their ids; the next new one continues the sequence.
    assert_eq!(http.register_ok("orders-value", &schema(1)).await, 1);
    assert_eq!(http.register_ok("staff-value", &schema(3)).await, 3);
    assert_eq!(http.register_ok("orders-value", &schema(4)).await, 4);
    server.stop().await;
}

#[tokio::test]
async fn store_settings_quote_the_schema_and_keep_registries_apart() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let odd = "Registry \"B\"; DROP TABLE x --";
    let conn = Secret::new(db.conn_string());
    let a = RegistryStore::connect(StoreConfig::new(conn.clone()).pool_size(1))
        .await
        .unwrap();
    let b = RegistryStore::connect(StoreConfig::new(conn.clone()).schema(odd))
        .await
        .unwrap();
    assert_eq!(a.schema_name(), "schema_registry");
    assert_eq!(b.schema_name(), odd);
    let (sa, sb) = (Server::start(a).await, Server::start(b).await);
    assert_eq!(sa.http.register_ok("x", &schema(1)).await, 1);
    assert_eq!(sb.http.register_ok("y", &schema(2)).await, 1);
    assert_eq!(sa.http.get("/subjects").await.ok(), &json!(["x"]));
    assert_eq!(sb.http.get("/subjects").await.ok(), &json!(["y"]));
    let client = db.client().await.unwrap();
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)",
            &[&vec!["schema_registry", odd]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 2);
    // A pool of one still serves requests that arrive together.
    let requests: Vec<_> = (0..10)
        .map(|n| {
            let http = sa.http.clone();
            tokio::spawn(async move {
                http.get(&format!("/schemas/ids/{}", 1 + n % 2))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 5);
    sa.stop().await;
    sb.stop().await;

    // A password given apart from the connection string wins over none in it.
    let no_password = db.conn_string().replace("password=postgres", "");
    let store = RegistryStore::connect(
        StoreConfig::new(Secret::new(no_password.clone())).password(Secret::new("postgres")),
    )
    .await;
    assert!(store.is_ok(), "{store:?}");
    let wrong = RegistryStore::connect(
        StoreConfig::new(Secret::new(no_password)).password(Secret::new("wrong-password")),
    )
    .await
    .unwrap_err();
    assert!(!format!("{wrong} {wrong:?}").contains("wrong-password"));
    let bad = RegistryStore::connect(StoreConfig::new(Secret::new("host=x port=notaport")))
        .await
        .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "invalid PostgreSQL connection string for the schema registry"
    );
    assert!(RegistryStore::connect(StoreConfig::new(conn).schema(""))
        .await
        .is_err());
}
