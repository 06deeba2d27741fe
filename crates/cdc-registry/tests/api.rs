//! Every REST endpoint over raw HTTP against a real PostgreSQL: statuses, bodies, error codes, content type.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use cdc_registry::ALL_LEVELS;
use reqwest::Method;
use serde_json::{json, Value};
use support::{record, Server};

fn v1() -> String {
    record(
        "Order",
        &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"item","type":"string"}"#,
        ],
    )
}

fn v2() -> String {
    record(
        "Order",
        &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"item","type":"string"}"#,
            r#"{"name":"note","type":"string","default":""}"#,
        ],
    )
}

/// `v1` with `item` turned into an int: no level but NONE accepts it.
fn breaking() -> String {
    record(
        "Order",
        &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"item","type":"int"}"#,
        ],
    )
}

fn same_json(a: &str, b: &str) -> bool {
    serde_json::from_str::<Value>(a).ok() == serde_json::from_str::<Value>(b).ok()
}

#[tokio::test]
async fn root_health_and_types() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;

    assert_eq!(http.get("/").await.ok(), &json!({}));
    assert_eq!(http.get("/health").await.ok(), &json!({"status": "UP"}));
    assert_eq!(http.get("/schemas/types").await.ok(), &json!(["AVRO"]));
    assert_eq!(http.get("/subjects").await.ok(), &json!([]));
    assert_eq!(http.get("/mode").await.ok(), &json!({"mode": "READWRITE"}));
    assert_eq!(
        http.get("/mode/anything").await.ok(),
        &json!({"mode": "READWRITE"})
    );
    assert_eq!(
        http.get("/no/such/path").await.error(404, 404),
        "HTTP 404 Not Found"
    );
    let reply = http.send_raw(Method::PATCH, "/subjects", None, "").await;
    assert_eq!(reply.error(405, 405), "HTTP 405 Method Not Allowed");
    server.stop().await;
}

#[tokio::test]
async fn probes_answer_in_plain_text_and_readyz_follows_the_database() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;

    let alive = http.get("/healthz").await;
    assert_eq!((alive.status, alive.text.as_str()), (200, "ok\n"));
    let ready = http.get("/readyz").await;
    assert_eq!((ready.status, ready.text.as_str()), (200, "ready\n"));

    // The database stops taking connections and drops the registry's: not ready, still alive.
    let admin = cdc_testkit::database::connect(&db.cluster.superuser_conn_string("postgres"))
        .await
        .unwrap();
    let quoted = format!("\"{}\"", db.name);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .unwrap();
    let not_ready = wait_for_status(http, "/readyz", 503).await;
    assert!(not_ready.text.starts_with("not ready"), "{not_ready:?}");
    assert_eq!(http.get("/healthz").await.status, 200);

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .unwrap();
    wait_for_status(http, "/readyz", 200).await;
    server.stop().await;
}

/// Asks `path` until it answers `status` (a terminated connection is noticed on its next use).
async fn wait_for_status(http: &support::Http, path: &str, status: u16) -> support::Reply {
    for _ in 0..50 {
        let reply = http.get(path).await;
        if reply.status == status {
            return reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} never answered {status}");
}

#[tokio::test]
async fn register_read_and_look_up() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;
    let (v1, v2) = (v1(), v2());

    // Register, then again: same id, no new version.
    assert_eq!(
        http.register("orders-value", &v1).await.ok(),
        &json!({"id": 1})
    );
    assert_eq!(http.register_ok("orders-value", &v1).await, 1);
    let spaced =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v1).unwrap()).unwrap();
    assert_eq!(http.register_ok("orders-value", &spaced).await, 1);
    assert_eq!(
        http.get("/subjects/orders-value/versions").await.ok(),
        &json!([1])
    );
    // The same schema under another subject keeps its id, at version 1 there.
    assert_eq!(http.register_ok("other-value", &v1).await, 1);
    assert_eq!(
        http.get("/subjects/other-value/versions").await.ok(),
        &json!([1])
    );
    // A compatible evolution: new id, version 2.
    assert_eq!(http.register_ok("orders-value", &v2).await, 2);
    assert_eq!(
        http.get("/subjects/orders-value/versions").await.ok(),
        &json!([1, 2])
    );
    assert_eq!(
        http.get("/subjects").await.ok(),
        &json!(["orders-value", "other-value"])
    );
    assert_eq!(
        http.get("/subjects?subjectPrefix=oth").await.ok(),
        &json!(["other-value"])
    );

    // By id.
    let by_id = http.get("/schemas/ids/1").await;
    assert_eq!(by_id.ok()["schema"].as_str(), Some(v1.as_str()));
    assert!(by_id.json.get("schemaType").is_none(), "AVRO is implied");
    let with_subject = http.get("/schemas/ids/1?subject=other-value").await;
    assert_eq!(with_subject.ok()["schema"].as_str(), Some(v1.as_str()));
    let raw = http.get("/schemas/ids/2/schema").await;
    raw.ok();
    assert_eq!(raw.text, v2);
    assert_eq!(
        http.get("/schemas/ids/1/versions").await.ok(),
        &json!([
            {"subject": "orders-value", "version": 1},
            {"subject": "other-value", "version": 1}
        ])
    );
    assert_eq!(
        http.get("/schemas/ids/1/subjects").await.ok(),
        &json!(["orders-value", "other-value"])
    );
    assert_eq!(
        http.get("/schemas/ids/99").await.error(404, 40403),
        "Schema 99 not found"
    );
    http.get("/schemas/ids/99/schema").await.error(404, 40403);
    http.get("/schemas/ids/99/versions").await.error(404, 40403);
    http.get("/schemas/ids/99/subjects").await.error(404, 40403);
    http.get("/schemas/ids/abc").await.error(404, 40403);
    http.get("/schemas/ids/-1").await.error(404, 40403);

    // By subject and version.
    assert_eq!(
        http.get("/subjects/orders-value/versions/1").await.ok(),
        &json!({"subject": "orders-value", "version": 1, "id": 1, "schema": v1})
    );
    for latest in ["latest", "LATEST", "-1"] {
        let reply = http
            .get(&format!("/subjects/orders-value/versions/{latest}"))
            .await;
        assert_eq!(reply.ok()["version"], json!(2));
        assert_eq!(reply.json["id"], json!(2));
    }
    let raw = http.get("/subjects/orders-value/versions/2/schema").await;
    raw.ok();
    assert_eq!(raw.text, v2);
    assert_eq!(
        http.get("/subjects/orders-value/versions/1/referencedby")
            .await
            .ok(),
        &json!([])
    );
    assert_eq!(
        http.get("/subjects/orders-value/versions/3")
            .await
            .error(404, 40402),
        "Version 3 not found."
    );
    http.get("/subjects/orders-value/versions/3/schema")
        .await
        .error(404, 40402);
    for bad in ["0", "-2", "abc", "2147483648"] {
        http.get(&format!("/subjects/orders-value/versions/{bad}"))
            .await
            .error(422, 42202);
    }
    assert_eq!(
        http.get("/subjects/nope/versions/1")
            .await
            .error(404, 40401),
        "Subject 'nope' not found."
    );
    http.get("/subjects/nope/versions").await.error(404, 40401);

    // Lookup: is this schema registered under the subject?
    let found = http
        .post("/subjects/orders-value", json!({"schema": spaced}))
        .await;
    assert_eq!(
        found.ok(),
        &json!({"subject": "orders-value", "version": 1, "id": 1, "schema": v1})
    );
    http.post("/subjects/other-value", json!({"schema": v2}))
        .await
        .error(404, 40403);
    http.post("/subjects/nope", json!({"schema": v1}))
        .await
        .error(404, 40401);
    http.post("/subjects/orders-value", json!({"schema": "{"}))
        .await
        .error(422, 42201);

    // Subjects with characters that need encoding.
    assert_eq!(http.register_ok("a%2Fb%20c", &v1).await, 1);
    let listed = http.get("/subjects").await;
    assert!(listed.ok().as_array().unwrap().contains(&json!("a/b c")));
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_confluent_errors() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;
    let path = "/subjects/s/versions";

    for body in [
        json!({"schema": "{not json"}),
        json!({"schema": r#"{"type":"record","name":"r"}"#}),
        json!({"schema": r#"{"type":"nope"}"#}),
        json!({"schema": ""}),
        json!({}),
        json!({"schema": 42}),
        json!([1, 2]),
        json!({"schema": "\"string\"", "schemaType": "PROTOBUF"}),
        json!({"schema": "\"string\"", "references": [{"name": "x", "subject": "y", "version": 1}]}),
    ] {
        http.post(path, body).await.error(422, 42201);
    }
    for text in ["", "not json at all", "{\"schema\":", "\u{0}"] {
        http.send_raw(Method::POST, path, Some("application/json"), text)
            .await
            .error(422, 42201);
    }
    http.send_raw(
        Method::POST,
        path,
        Some("text/plain"),
        r#"{"schema":"\"string\""}"#,
    )
    .await
    .error(415, 415);
    // Every accepted content type, with parameters, and none at all.
    let schema =
        json!({"schema": "\"string\"", "schemaType": "AVRO", "references": []}).to_string();
    for content_type in [
        Some("application/vnd.schemaregistry.v1+json"),
        Some("application/vnd.schemaregistry+json"),
        Some("application/json; charset=utf-8"),
        Some("application/octet-stream"),
        None,
    ] {
        let reply = http
            .send_raw(Method::POST, path, content_type, &schema)
            .await;
        assert_eq!(reply.ok(), &json!({"id": 1}), "{content_type:?}");
    }
    // Ids are the registry's to assign.
    http.post(path, json!({"schema": "\"int\"", "id": 40}))
        .await
        .error(422, 42205);
    assert_eq!(
        http.post(path, json!({"schema": "\"string\"", "id": 1}))
            .await
            .ok(),
        &json!({"id": 1})
    );
    // Unusable subject names.
    http.register("bad%01name", "\"string\"")
        .await
        .error(422, 42208);
    server.stop().await;
}

#[tokio::test]
async fn incompatible_schemas_and_compatibility_checks() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;
    assert_eq!(http.register_ok("orders-value", &v1()).await, 1);

    let refused = http.register("orders-value", &breaking()).await;
    let message = refused.error(409, 409);
    assert!(message.contains("incompatible"), "{message}");
    assert!(message.contains("orders-value"), "{message}");
    assert_eq!(
        http.get("/subjects/orders-value/versions").await.ok(),
        &json!([1])
    );

    let check = |version: &'static str, schema: String, verbose: bool| {
        let http = http.clone();
        async move {
            let query = if verbose { "?verbose=true" } else { "" };
            http.post(
                &format!("/compatibility/subjects/orders-value/versions{version}{query}"),
                json!({ "schema": schema }),
            )
            .await
        }
    };
    assert_eq!(
        check("/latest", v2(), false).await.ok(),
        &json!({"is_compatible": true})
    );
    assert_eq!(
        check("/1", v2(), false).await.ok(),
        &json!({"is_compatible": true})
    );
    assert_eq!(
        check("", v2(), false).await.ok(),
        &json!({"is_compatible": true})
    );
    assert_eq!(
        check("/latest", breaking(), false).await.ok(),
        &json!({"is_compatible": false})
    );
    let verbose = check("/latest", breaking(), true).await;
    assert_eq!(verbose.ok()["is_compatible"], json!(false));
    let messages = verbose.json["messages"].as_array().unwrap();
    assert!(!messages.is_empty(), "{verbose:?}");
    assert_eq!(
        check("/latest", v2(), true).await.ok(),
        &json!({"is_compatible": true, "messages": []})
    );
    check("/7", v2(), false).await.error(404, 40402);
    check("/zero", v2(), false).await.error(422, 42202);
    check("/latest", "{".to_owned(), false)
        .await
        .error(422, 42201);
    // A subject without versions accepts anything.
    assert_eq!(
        http.post(
            "/compatibility/subjects/fresh/versions/latest",
            json!({"schema": breaking()})
        )
        .await
        .ok(),
        &json!({"is_compatible": true})
    );
    http.post(
        "/compatibility/subjects/fresh/versions/1",
        json!({"schema": breaking()}),
    )
    .await
    .error(404, 40401);
    server.stop().await;
}

#[tokio::test]
async fn soft_and_permanent_deletes() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;
    let (v1, v2) = (v1(), v2());
    assert_eq!(http.register_ok("orders-value", &v1).await, 1);
    assert_eq!(http.register_ok("orders-value", &v2).await, 2);
    assert_eq!(http.register_ok("other-value", &v1).await, 1);

    // Versions: soft, then permanent.
    assert_eq!(
        http.delete("/subjects/orders-value/versions/2").await.ok(),
        &json!(2)
    );
    assert_eq!(
        http.get("/subjects/orders-value/versions").await.ok(),
        &json!([1])
    );
    assert_eq!(
        http.get("/subjects/orders-value/versions?deleted=true")
            .await
            .ok(),
        &json!([1, 2])
    );
    http.get("/subjects/orders-value/versions/2")
        .await
        .error(404, 40402);
    assert_eq!(
        http.get("/subjects/orders-value/versions/2?deleted=true")
            .await
            .ok()["id"],
        json!(2)
    );
    assert_eq!(
        http.get("/subjects/orders-value/versions/latest")
            .await
            .ok()["version"],
        json!(1)
    );
    http.delete("/subjects/orders-value/versions/2")
        .await
        .error(404, 40406);
    http.delete("/subjects/orders-value/versions/1?permanent=true")
        .await
        .error(404, 40407);
    http.delete("/subjects/orders-value/versions/9")
        .await
        .error(404, 40402);
    http.delete("/subjects/orders-value/versions/x")
        .await
        .error(422, 42202);
    http.delete("/subjects/nope/versions/1")
        .await
        .error(404, 40401);
    assert_eq!(
        http.delete("/subjects/orders-value/versions/2?permanent=true")
            .await
            .ok(),
        &json!(2)
    );
    assert_eq!(
        http.get("/subjects/orders-value/versions?deleted=true")
            .await
            .ok(),
        &json!([1])
    );
    // The id still resolves: old messages stay readable.
    assert_eq!(
        http.get("/schemas/ids/2").await.ok()["schema"].as_str(),
        Some(v2.as_str())
    );
    assert_eq!(http.get("/schemas/ids/2/versions").await.ok(), &json!([]));
    // Registering it again reuses the id and takes the next free version.
    assert_eq!(http.register_ok("orders-value", &v2).await, 2);
    assert_eq!(
        http.get("/subjects/orders-value/versions").await.ok(),
        &json!([1, 2])
    );

    // Subjects: soft, then permanent.
    http.put("/config/other-value", json!({"compatibility": "FULL"}))
        .await
        .ok();
    http.delete("/subjects/other-value?permanent=true")
        .await
        .error(404, 40405);
    assert_eq!(http.delete("/subjects/other-value").await.ok(), &json!([1]));
    http.delete("/subjects/other-value").await.error(404, 40404);
    assert_eq!(http.get("/subjects").await.ok(), &json!(["orders-value"]));
    assert_eq!(
        http.get("/subjects?deleted=true").await.ok(),
        &json!(["orders-value", "other-value"])
    );
    http.get("/subjects/other-value/versions")
        .await
        .error(404, 40401);
    http.get("/subjects/other-value/versions/1")
        .await
        .error(404, 40401);
    assert_eq!(
        http.get("/subjects/other-value/versions?deleted=true")
            .await
            .ok(),
        &json!([1])
    );
    assert_eq!(
        http.get("/schemas/ids/1/versions").await.ok(),
        &json!([{"subject": "orders-value", "version": 1}])
    );
    assert_eq!(
        http.get("/schemas/ids/1/versions?deleted=true").await.ok(),
        &json!([
            {"subject": "orders-value", "version": 1},
            {"subject": "other-value", "version": 1}
        ])
    );
    http.post("/subjects/other-value", json!({"schema": v1}))
        .await
        .error(404, 40401);
    assert_eq!(
        http.post("/subjects/other-value?deleted=true", json!({"schema": v1}))
            .await
            .ok()["version"],
        json!(1)
    );
    // Soft-deleting the subject dropped its own compatibility level, as Confluent does.
    http.get("/config/other-value").await.error(404, 40408);
    assert_eq!(
        http.delete("/subjects/other-value?permanent=true")
            .await
            .ok(),
        &json!([1])
    );
    http.delete("/subjects/other-value").await.error(404, 40401);
    http.delete("/subjects/other-value?permanent=true")
        .await
        .error(404, 40401);
    assert_eq!(
        http.get("/subjects?deleted=true").await.ok(),
        &json!(["orders-value"])
    );
    // A permanently deleted subject starts again at version 1, with the old id.
    assert_eq!(http.register_ok("other-value", &v1).await, 1);
    assert_eq!(
        http.get("/subjects/other-value/versions").await.ok(),
        &json!([1])
    );

    // Soft-deleting every version of a subject also drops its level.
    http.put("/config/orders-value", json!({"compatibility": "NONE"}))
        .await
        .ok();
    http.delete("/subjects/orders-value/versions/1").await.ok();
    http.get("/config/orders-value").await.ok();
    http.delete("/subjects/orders-value/versions/latest")
        .await
        .ok();
    http.get("/config/orders-value").await.error(404, 40408);
    http.get("/subjects/orders-value/versions/latest")
        .await
        .error(404, 40401);
    server.stop().await;
}

#[tokio::test]
async fn config_endpoints() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;

    assert_eq!(
        http.get("/config").await.ok(),
        &json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        http.put("/config", json!({"compatibility": "full"}))
            .await
            .ok(),
        &json!({"compatibility": "FULL"})
    );
    assert_eq!(
        http.get("/config").await.ok(),
        &json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(
        http.put("/config", json!({"compatibilityLevel": "NONE"}))
            .await
            .ok(),
        &json!({"compatibility": "NONE"})
    );
    for body in [
        json!({"compatibility": "SIDEWAYS"}),
        json!({"compatibility": 3}),
        json!({}),
        json!("FULL"),
    ] {
        assert!(http
            .put("/config", body)
            .await
            .error(422, 42203)
            .starts_with("Invalid compatibility level"));
    }
    http.send_raw(Method::PUT, "/config", Some("application/json"), "{")
        .await
        .error(422, 42203);
    assert_eq!(
        http.get("/config").await.ok(),
        &json!({"compatibilityLevel": "NONE"})
    );

    // Per subject.
    assert_eq!(
        http.get("/config/orders-value").await.error(404, 40408),
        "Subject 'orders-value' does not have subject-level compatibility configured"
    );
    assert_eq!(
        http.get("/config/orders-value?defaultToGlobal=true")
            .await
            .ok(),
        &json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        http.put("/config/orders-value", json!({"compatibility": "BACKWARD"}))
            .await
            .ok(),
        &json!({"compatibility": "BACKWARD"})
    );
    assert_eq!(
        http.get("/config/orders-value").await.ok(),
        &json!({"compatibilityLevel": "BACKWARD"})
    );
    http.put("/config/orders-value", json!({"compatibility": "nope"}))
        .await
        .error(422, 42203);
    // The subject's level wins over the global NONE.
    http.register_ok("orders-value", &v1()).await;
    http.register("orders-value", &breaking())
        .await
        .error(409, 409);
    http.register_ok("unconfigured", &v1()).await;
    http.register_ok("unconfigured", &breaking()).await;

    assert_eq!(
        http.delete("/config/orders-value").await.ok(),
        &json!({"compatibilityLevel": "BACKWARD"})
    );
    http.get("/config/orders-value").await.error(404, 40408);
    http.delete("/config/orders-value").await.error(404, 40401);
    assert_eq!(
        http.delete("/config").await.ok(),
        &json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        http.get("/config").await.ok(),
        &json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        http.delete("/config").await.ok(),
        &json!({"compatibilityLevel": "BACKWARD"})
    );
    server.stop().await;
}

/// One evolution of a base record and whether each check direction accepts it.
struct Evolution {
    name: &'static str,
    fields: &'static [&'static str],
    /// The new schema reads data written with the old one.
    backward: bool,
    /// The old schema reads data written with the new one.
    forward: bool,
}

const BASE: &[&str] = &[
    r#"{"name":"id","type":"int"}"#,
    r#"{"name":"qty","type":"int"}"#,
    r#"{"name":"item","type":"string"}"#,
];

const EVOLUTIONS: &[Evolution] = &[
    Evolution {
        name: "add field with default",
        fields: &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"qty","type":"int"}"#,
            r#"{"name":"item","type":"string"}"#,
            r#"{"name":"note","type":"string","default":"n/a"}"#,
        ],
        backward: true,
        forward: true,
    },
    Evolution {
        name: "add field without default",
        fields: &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"qty","type":"int"}"#,
            r#"{"name":"item","type":"string"}"#,
            r#"{"name":"note","type":"string"}"#,
        ],
        backward: false,
        forward: true,
    },
    Evolution {
        name: "remove field",
        fields: &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"qty","type":"int"}"#,
        ],
        backward: true,
        forward: false,
    },
    Evolution {
        name: "int to long",
        fields: &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"qty","type":"long"}"#,
            r#"{"name":"item","type":"string"}"#,
        ],
        backward: true,
        forward: false,
    },
    Evolution {
        name: "string to int",
        fields: &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"qty","type":"int"}"#,
            r#"{"name":"item","type":"int"}"#,
        ],
        backward: false,
        forward: false,
    },
];

#[tokio::test]
async fn compatibility_matrix() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;
    let base = record("Line", BASE);

    for level in ALL_LEVELS {
        let name = level.as_str();
        let (needs_backward, needs_forward) = match name {
            "NONE" => (false, false),
            n if n.starts_with("BACKWARD") => (true, false),
            n if n.starts_with("FORWARD") => (false, true),
            _ => (true, true),
        };
        for (i, evolution) in EVOLUTIONS.iter().enumerate() {
            let subject = format!("matrix-{name}-{i}");
            http.put(
                &format!("/config/{subject}"),
                json!({ "compatibility": name }),
            )
            .await
            .ok();
            http.register_ok(&subject, &base).await;
            let allowed =
                (!needs_backward || evolution.backward) && (!needs_forward || evolution.forward);
            let new = record("Line", evolution.fields);
            let check = http
                .post(
                    &format!("/compatibility/subjects/{subject}/versions/latest"),
                    json!({ "schema": new }),
                )
                .await;
            assert_eq!(
                check.ok()["is_compatible"],
                json!(allowed),
                "{name}: {}",
                evolution.name
            );
            let reply = http.register(&subject, &new).await;
            if allowed {
                reply.ok();
                assert_eq!(
                    http.get(&format!("/subjects/{subject}/versions"))
                        .await
                        .ok(),
                    &json!([1, 2]),
                    "{name}: {}",
                    evolution.name
                );
            } else {
                reply.error(409, 409);
                assert_eq!(
                    http.get(&format!("/subjects/{subject}/versions"))
                        .await
                        .ok(),
                    &json!([1]),
                    "{name}: {}",
                    evolution.name
                );
            }
        }
    }
}

#[tokio::test]
async fn transitive_levels_check_every_live_version() {
    let db = cdc_testkit::TestDb::create().await.unwrap();
    let server = Server::start(support::store(&db).await).await;
    let http = &server.http;
    // v1 has no `note`; v2 adds it with a default; v3 drops the default.
    let v1 = record("T", &[r#"{"name":"id","type":"int"}"#]);
    let v2 = record(
        "T",
        &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"note","type":"string","default":""}"#,
        ],
    );
    let v3 = record(
        "T",
        &[
            r#"{"name":"id","type":"int"}"#,
            r#"{"name":"note","type":"string"}"#,
        ],
    );
    for (level, accepted) in [
        ("BACKWARD", true),
        ("BACKWARD_TRANSITIVE", false),
        ("FULL", true),
        ("FULL_TRANSITIVE", false),
    ] {
        let subject = format!("chain-{level}");
        http.put(
            &format!("/config/{subject}"),
            json!({ "compatibility": level }),
        )
        .await
        .ok();
        http.register_ok(&subject, &v1).await;
        http.register_ok(&subject, &v2).await;
        let reply = http.register(&subject, &v3).await;
        if accepted {
            reply.ok();
        } else {
            let message = reply.error(409, 409);
            assert!(message.contains("version 1"), "{message}");
        }
    }
    // Once version 1 is soft-deleted it no longer constrains the subject.
    let subject = "chain-BACKWARD_TRANSITIVE";
    http.delete(&format!("/subjects/{subject}/versions/1"))
        .await
        .ok();
    http.register_ok(subject, &v3).await;
    assert!(same_json(
        http.get(&format!("/subjects/{subject}/versions/latest/schema"))
            .await
            .text
            .as_str(),
        &v3
    ));
}
