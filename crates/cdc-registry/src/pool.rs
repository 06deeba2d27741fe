//! A handful of PostgreSQL connections, opened on demand and reopened when they break.
//!
//! The registry's traffic is small (producers ask once per schema and cache), so this
//! is deliberately plain: a semaphore bounds the connections in use, idle ones wait in
//! a list, and a connection the server closed is dropped instead of being handed out.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};

use cdc_pgtls::PgTls;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config};

use crate::error::StoreError;

/// The connections of one [`crate::RegistryStore`].
#[derive(Debug)]
pub(crate) struct Pool {
    config: Config,
    tls: PgTls,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

impl Pool {
    /// A pool of at most `size` connections (at least one) made from `config` over `tls`.
    pub fn new(config: Config, tls: PgTls, size: usize) -> Arc<Self> {
        Arc::new(Pool {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        })
    }

    /// A connection for one request: an idle healthy one, or a new one.
    pub async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::PoolClosed)?;
        loop {
            let candidate = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match candidate {
                Some(client) if client.is_closed() => continue,
                Some(client) => {
                    return Ok(Pooled {
                        client: Some(client),
                        pool: self,
                        _permit: permit,
                    })
                }
                None => break,
            }
        }
        let client = cdc_pgtls::connect(&self.config, &self.tls)
            .await
            .map_err(StoreError::Connect)?;
        Ok(Pooled {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }
}

/// A connection on loan; it goes back to the pool when dropped, unless it broke.
pub(crate) struct Pooled<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Deref for Pooled<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Only `drop` takes the client out.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(client);
            }
        }
    }
}
