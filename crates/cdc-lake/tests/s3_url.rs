//! `LakeStore::open("s3://…")` as the binary uses it: credentials, endpoint and region from
//! the usual AWS environment variables, against a moto S3 server. In its own test binary:
//! it sets process environment variables.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use cdc_lake::{FlushPolicy, LakeStore, ParquetOptions, PartitionWriter};
use support::*;

#[tokio::test]
async fn an_s3_url_opens_the_bucket_with_credentials_from_the_environment() {
    let server = S3Server::start().await;
    server.create_bucket("warehouse-lake").await;
    for (name, value) in [
        ("AWS_ENDPOINT", server.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ] {
        std::env::set_var(name, value);
    }
    let lake = LakeStore::open("s3://warehouse-lake/cdc").unwrap();
    assert_eq!(lake.root.as_ref(), "cdc");

    let table = staff_table();
    let topic = "t.public.staff";
    let mut writer = PartitionWriter::new(
        &cdc_lake::LakeTables::new(&lake).unwrap(),
        topic,
        0,
        ParquetOptions::default(),
        FlushPolicy::default(),
    );
    for row in sample_rows(&table, 0..5) {
        writer.push(&table, row, 10).await.unwrap();
    }
    let flushed = writer.flush().await.unwrap().unwrap();
    let path = flushed.file.path(&lake.root);
    let expected = format!(
        "cdc/raw/staff/_commit_date={}/t.public.staff+0+00000000000000000000.",
        flushed.file.date
    );
    assert!(path.as_ref().starts_with(&expected), "{path}");
    // Read back through a store built independently of the URL.
    let direct = server.open("s3://warehouse-lake/cdc");
    assert_eq!(read_rows(&direct, topic).await.len(), 5);

    // A bucket that does not exist: a clear error on the first write, not a panic.
    let missing = LakeStore::open("s3://no-such-bucket/cdc").unwrap();
    let mut writer = PartitionWriter::new(
        &cdc_lake::LakeTables::new(&missing).unwrap(),
        topic,
        0,
        ParquetOptions::default(),
        FlushPolicy::default(),
    );
    for row in sample_rows(&table, 0..1) {
        writer.push(&table, row, 10).await.unwrap();
    }
    let error = writer.flush().await.unwrap_err().to_string();
    assert!(error.contains("cannot write"), "{error}");
}
