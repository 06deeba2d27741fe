//! The object store behind the lake, chosen by URL.
//!
//! | URL | store | credentials |
//! |---|---|---|
//! | `/path`, `file:///path` | local filesystem (created if missing) | — |
//! | `memory://` | in memory (tests) | — |
//! | `s3://bucket/prefix` (MinIO too) | S3 | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, … |
//! | `gs://bucket/prefix` | Google Cloud Storage | `GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_APPLICATION_CREDENTIALS`, … |
//! | `az://container/prefix`, `abfs://…` | Azure Blob Storage | `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, … |

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::LakeError;

/// An object store and the prefix the lake lives under in it.
#[derive(Debug, Clone)]
pub struct LakeStore {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The lake's root inside it.
    pub root: Path,
    /// The URL it was opened from (without credentials).
    pub url: String,
    /// The lake's directory, for a lake on the local filesystem.
    pub local_dir: Option<std::path::PathBuf>,
    /// Whether `url` names the store and the root (`s3://bucket/root`), so that table URLs
    /// can be made from it.
    pub url_is_store_root: bool,
}

impl LakeStore {
    /// Opens the store `url` names; cloud credentials come from the environment.
    pub fn open(url: &str) -> Result<LakeStore, LakeError> {
        let invalid = |reason: &str| LakeError::bad_store(format!("lake URL {url:?}: {reason}"));
        let unusable = || LakeError::store(format!("lake URL {url:?}"));
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("file", url),
        };
        let mut local_dir = None;
        let (store, root): (Arc<dyn ObjectStore>, Path) = match scheme {
            "file" => {
                std::fs::create_dir_all(rest).map_err(LakeError::store(format!(
                    "lake URL {url:?}: cannot create {rest}"
                )))?;
                let local = LocalFileSystem::new_with_prefix(rest).map_err(unusable())?;
                local_dir = Some(std::fs::canonicalize(rest).map_err(LakeError::store(
                    format!("lake URL {url:?}: cannot resolve {rest}"),
                ))?);
                (Arc::new(local), Path::default())
            }
            "memory" => (Arc::new(InMemory::new()), prefix_of(rest)),
            "s3" | "s3a" => (
                Arc::new(
                    AmazonS3Builder::from_env()
                        .with_url(url)
                        .build()
                        .map_err(unusable())?,
                ),
                prefix_of(rest),
            ),
            "gs" => (
                Arc::new(
                    GoogleCloudStorageBuilder::from_env()
                        .with_url(url)
                        .build()
                        .map_err(unusable())?,
                ),
                prefix_of(rest),
            ),
            "az" | "azure" | "abfs" | "abfss" => (
                Arc::new(
                    MicrosoftAzureBuilder::from_env()
                        .with_url(url)
                        .build()
                        .map_err(unusable())?,
                ),
                prefix_of(rest),
            ),
            other => {
                return Err(invalid(&format!(
                "unknown scheme {other:?} (use a path, file://, memory://, s3://, gs:// or az://)"
            )))
            }
        };
        Ok(LakeStore {
            store,
            root,
            url: url.to_owned(),
            url_is_store_root: local_dir.is_none(),
            local_dir,
        })
    }

    /// A lake on `store` under `root` (tests, embedding).
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> LakeStore {
        LakeStore {
            url: format!("{store}/{root}"),
            store,
            root,
            local_dir: None,
            url_is_store_root: false,
        }
    }
}

impl LakeStore {
    /// The whole object at `path`.
    pub async fn read(&self, path: &Path) -> Result<bytes::Bytes, LakeError> {
        let cannot = || LakeError::store(format!("cannot read {path}"));
        self.store
            .get(path)
            .await
            .map_err(cannot())?
            .bytes()
            .await
            .map_err(cannot())
    }

    /// Writes a new object at `path`, failing if one is there (create-only: a writer never
    /// replaces another's file).
    pub async fn put_new(&self, path: &Path, bytes: bytes::Bytes) -> Result<(), LakeError> {
        self.store
            .put_opts(
                path,
                object_store::PutPayload::from_bytes(bytes),
                object_store::PutOptions::from(object_store::PutMode::Create),
            )
            .await
            .map(|_| ())
            .map_err(LakeError::store(format!("cannot write {path}")))
    }

    /// Deletes the object at `path`; one already gone is no error.
    pub async fn delete_if_present(&self, path: &Path) -> Result<(), LakeError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(LakeError::store(format!("cannot delete {path}"))(e)),
        }
    }

    /// Makes sure directory `path` exists, for a lake on the local filesystem (object
    /// stores have no directories).
    pub fn ensure_dir(&self, path: &Path) -> Result<(), LakeError> {
        if let Some(dir) = &self.local_dir {
            let full = path.parts().fold(dir.clone(), |d, p| d.join(p.as_ref()));
            std::fs::create_dir_all(&full).map_err(LakeError::store(format!(
                "cannot create {}",
                full.display()
            )))?;
        }
        Ok(())
    }

    /// Writes a probe object under `_check/` and deletes it again: what the lake writer and
    /// compaction need the store to allow (for `check`).
    pub async fn check_access(&self) -> Result<(), LakeError> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let probe = self
            .root
            .clone()
            .join("_check")
            .join(format!("probe-{}-{stamp}", std::process::id()));
        self.store
            .put(
                &probe,
                object_store::PutPayload::from_static(b"totesys-cdc check"),
            )
            .await
            .map_err(LakeError::store(format!(
                "cannot write a probe object to {} (the lake writer needs to)",
                self.url
            )))?;
        self.store
            .delete(&probe)
            .await
            .map_err(LakeError::store(format!(
                "cannot delete the probe object {probe} (compaction needs to)"
            )))?;
        Ok(())
    }

    /// Some object under the lake's root, if there is any (`None`: the lake is empty).
    pub async fn any_object(&self) -> Result<Option<Path>, LakeError> {
        use futures_util::StreamExt;
        let root = (!self.root.as_ref().is_empty()).then_some(&self.root);
        match self.store.list(root).next().await {
            None => Ok(None),
            Some(Ok(meta)) => Ok(Some(meta.location)),
            Some(Err(e)) => Err(LakeError::store(format!("cannot list {}", self.url))(e)),
        }
    }
}

/// The path after the bucket or container: `bucket/a/b` → `a/b`.
fn prefix_of(rest: &str) -> Path {
    match rest.split_once('/') {
        Some((_, prefix)) => Path::from(prefix.trim_matches('/')),
        None => Path::default(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::LakeStore;

    #[tokio::test]
    async fn an_empty_lake_has_no_object() {
        let dir = tempfile::tempdir().unwrap();
        let lake = LakeStore::open(dir.path().join("lake").to_str().unwrap()).unwrap();
        assert_eq!(lake.any_object().await.unwrap(), None);
        let path = Path::from("raw/x/y.parquet");
        lake.store
            .put(&path, PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(lake.any_object().await.unwrap(), Some(path));
    }
}
