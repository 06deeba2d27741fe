//! A local-disk store that lists a Delta log after a version by looking the next versions'
//! files up by name, instead of reading the whole `_delta_log/` directory.
//!
//! A directory cannot be listed from a name on, so `LocalFileSystem::list_with_offset`
//! reads every entry of the log, and a table of 100,000 commits costs each snapshot update
//! (every lake writer commit, every modeler pass) a walk of 100,000 entries. The log's
//! names are known in advance (`<version, 20 digits>.json`, `.checkpoint.parquet`,
//! `.crc`), so the files after a version are found by asking for them: a few `stat`s for a
//! table with no new commit. Anything this cannot vouch for (a log with gaps, a name it
//! does not probe, a listing from far back) is listed the ordinary way.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// The log files of one version, in the order a listing gives them.
const SUFFIXES: [&str; 3] = ["checkpoint.parquet", "crc", "json"];

/// Versions probed before a listing from far back is left to the directory walk.
const MAX_PROBED: u64 = 1_000;

/// [`LocalFileSystem`] with a log listing that does not walk the whole log.
#[derive(Debug)]
pub(crate) struct LogListing {
    inner: Arc<LocalFileSystem>,
}

impl LogListing {
    /// The local file system, with log listings by name.
    pub(crate) fn new() -> LogListing {
        LogListing {
            inner: Arc::new(LocalFileSystem::new()),
        }
    }
}

impl std::fmt::Display for LogListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogListing({})", self.inner)
    }
}

/// The version an offset inside a log names (`…/_delta_log/<20 digits>…`).
fn log_version(prefix: &Path, offset: &Path) -> Option<u64> {
    if prefix.filename() != Some("_delta_log") {
        return None;
    }
    let name = offset.prefix_match(prefix)?.next()?;
    let digits = name.as_ref().get(..20)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

/// The log files after `offset` from version `first` on, found by name; `None` when the
/// log must be listed instead.
async fn probe(
    store: &LocalFileSystem,
    log: &Path,
    offset: &Path,
    first: u64,
) -> Result<Option<Vec<ObjectMeta>>> {
    let mut found = Vec::new();
    let mut version = first;
    loop {
        if version - first >= MAX_PROBED {
            return Ok(None);
        }
        let mut any = false;
        for suffix in SUFFIXES {
            match store
                .head(&log.clone().join(format!("{version:020}.{suffix}")))
                .await
            {
                Ok(meta) => {
                    any |= suffix != "crc";
                    if meta.location > *offset {
                        found.push(meta);
                    }
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if !any {
            break;
        }
        version += 1;
    }
    if version == first {
        // Nothing at `first`: the log ends just before it (no new commit), or it holds
        // names this does not probe (or none at all): then it is listed.
        let ends = match first.checked_sub(1) {
            Some(last) => store
                .head(&log.clone().join(format!("{last:020}.json")))
                .await
                .is_ok(),
            None => false,
        };
        if !ends {
            return Ok(None);
        }
    }
    Ok(Some(found))
}

#[async_trait]
impl ObjectStore for LogListing {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let (Some(log), Some(first)) = (prefix, prefix.and_then(|p| log_version(p, offset))) else {
            return self.inner.list_with_offset(prefix, offset);
        };
        let (store, log, offset) = (Arc::clone(&self.inner), log.clone(), offset.clone());
        stream::once(async move {
            match probe(&store, &log, &offset, first).await {
                Ok(Some(found)) => stream::iter(found.into_iter().map(Ok)).boxed(),
                Ok(None) => store.list_with_offset(Some(&log), &offset),
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures_util::TryStreamExt;

    async fn listed(store: &dyn ObjectStore, log: &Path, offset: &str) -> Vec<String> {
        let offset = log.clone().join(offset);
        let mut names: Vec<String> = store
            .list_with_offset(Some(log), &offset)
            .map_ok(|m| m.location.filename().unwrap_or_default().to_owned())
            .try_collect()
            .await
            .unwrap();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_log_listed_by_name_equals_the_directory_walk() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::from_filesystem_path(dir.path()).unwrap();
        let log = root.clone().join("t").join("_delta_log");
        let ours = LogListing::new();
        let plain = LocalFileSystem::new();
        for name in [
            "00000000000000000000.json",
            "00000000000000000001.json",
            "00000000000000000002.json",
            "00000000000000000002.checkpoint.parquet",
            "00000000000000000003.json",
            "00000000000000000003.crc",
            "_last_checkpoint",
        ] {
            plain
                .put(&log.clone().join(name), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        for offset in [
            "00000000000000000000",
            "00000000000000000001",
            "00000000000000000002.json",
            "00000000000000000003",
            "00000000000000000004",
        ] {
            let walked: Vec<String> = listed(&plain, &log, offset)
                .await
                .into_iter()
                .filter(|n| !n.starts_with('_'))
                .collect();
            assert_eq!(listed(&ours, &log, offset).await, walked, "after {offset}");
        }
        // A version missing with later ones present (a gap): listed the ordinary way.
        plain
            .put(
                &log.clone().join("00000000000000000009.json"),
                PutPayload::from_static(b"x"),
            )
            .await
            .unwrap();
        let after_gap: Vec<String> = listed(&ours, &log, "00000000000000000005")
            .await
            .into_iter()
            .filter(|n| !n.starts_with('_'))
            .collect();
        assert_eq!(after_gap, vec!["00000000000000000009.json".to_owned()]);
    }
}
