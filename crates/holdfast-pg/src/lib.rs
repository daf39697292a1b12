//! holdfast-server's PostgreSQL storage (`--postgres <url>`): the core's
//! [`Storage`] over one table of records, through a pool of connections.
//!
//! Invariants:
//! - One [`Storage::commit`] is one PostgreSQL transaction (deletes, prefix
//!   deletes, then puts, as [`Commit`] says), and returns `Ok` only after
//!   COMMIT returned on a connection with `synchronous_commit = on`: the
//!   WAL holding it is flushed, so an acknowledgement never precedes
//!   durability. A database running with `fsync = off` is refused.
//! - A COMMIT that fails, or whose answer is lost with its connection,
//!   is reported as a failure; it may still have committed, which is
//!   harmless (a record's key names its content, and the core writes
//!   again what it did not see succeed).
//! - Records keep the core's keys (content-addressed chunks, which the
//!   core verifies on load) in the text form of [`key`]; puts are written
//!   in key order, so concurrent commits of several servers lock rows in
//!   one order.
//! - The schema is created and migrated at connect, under an advisory lock
//!   (several servers may start at once); a schema newer than this build
//!   knows is refused.
//! - With [`PgOptions::node`] each commit notifies the other nodes, in its
//!   own transaction (PostgreSQL delivers it only once it committed); a
//!   notification is a hint, see [`watch`].
//! - With [`PgOptions::exclusive`] (the server's default unless it runs
//!   with `--shared-database`) one session advisory lock, held on a
//!   connection of its own while any clone of the store lives, keeps a
//!   second server off the database: such a server's collection index
//!   assumes it is the only writer.

mod error;
pub mod key;
#[cfg(feature = "testing")]
pub mod testing;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use holdfast_core::storage::{Commit, Storage, StorageError, StorageKey};
use tokio_postgres::NoTls;

pub use error::PgError;
use error::{pool_error, storage_error};

/// The newest schema this build writes.
const SCHEMA: i32 = 1;

/// Every migration, in order: `MIGRATIONS[n]` takes version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE holdfast_records (
        key text COLLATE \"C\" PRIMARY KEY,
        value bytea NOT NULL
    );
"];

/// Arbitrary constants naming holdfast's advisory locks.
const MIGRATION_LOCK: i64 = 0x686f_6c64_6661_7374;
const WRITER_LOCK: i64 = 0x686f_6c64_6661_7375;

/// How the store connects.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections in the pool (commits use one at a time; loads run
    /// beside them).
    pub pool_size: usize,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// Refuse to open a database another store holds open (and hold it).
    pub exclusive: bool,
    /// Several servers share the database: this one's name. Each commit
    /// then notifies the others (`NOTIFY holdfast_commits`, delivered only
    /// if it commits) of the documents it wrote; see [`PgStorage::watch`].
    pub node: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
            exclusive: true,
            node: None,
        }
    }
}

/// The store; clones share the pool (and the writer lock).
#[derive(Clone)]
pub struct PgStorage {
    pool: Pool,
    _lock: Option<Arc<WriterLock>>,
    /// For [`PgStorage::watch`]'s own connection.
    config: Arc<tokio_postgres::Config>,
    node: Option<Arc<str>>,
}

/// The connection holding the writer lock; dropped, it closes (and
/// PostgreSQL releases the lock).
struct WriterLock {
    _client: tokio_postgres::Client,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl PgStorage {
    /// Connect to `url` (a `postgres://` URL or `key=value` string), check
    /// that commits will be durable, and create or migrate the schema.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self, PgError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(PgError::Config)?;
        config.connect_timeout(options.connect_timeout);
        // Every connection: COMMIT returns once the WAL is flushed.
        config.options("-c synchronous_commit=on");
        if config.get_application_name().is_none() {
            // Which server a backend serves, for `pg_stat_activity`.
            let name = match &options.node {
                Some(node) => format!("holdfast-server {node} pid {}", std::process::id()),
                None => format!("holdfast-server pid {}", std::process::id()),
            };
            config.application_name(&name);
        }
        let lock_config = options.exclusive.then(|| config.clone());
        let shared = Arc::new(config.clone());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(|e| PgError::Connect(e.to_string()))?;
        let mut storage = Self {
            pool,
            _lock: None,
            config: shared,
            node: options.node.map(Arc::from),
        };
        storage.check_and_migrate().await?;
        if let Some(config) = lock_config {
            storage._lock = Some(Arc::new(writer_lock(&config).await?));
        }
        Ok(storage)
    }

    async fn check_and_migrate(&self) -> Result<(), PgError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| PgError::Connect(e.to_string()))?;
        let fsync: String = client.query_one("SHOW fsync", &[]).await?.get(0);
        if fsync != "on" {
            return Err(PgError::FsyncOff);
        }
        let sync: String = client
            .query_one("SHOW synchronous_commit", &[])
            .await?
            .get(0);
        if !matches!(
            sync.as_str(),
            "on" | "local" | "remote_write" | "remote_apply"
        ) {
            return Err(PgError::AsyncCommit(sync));
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS holdfast_schema (version integer NOT NULL);")
            .await?;
        let found: Option<i32> = tx
            .query_opt("SELECT max(version) FROM holdfast_schema", &[])
            .await?
            .and_then(|r| r.get(0));
        let found = found.unwrap_or(0);
        if found > SCHEMA {
            return Err(PgError::NewerSchema {
                found,
                known: SCHEMA,
            });
        }
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(sql).await?;
            tracing::info!(version = n + 1, "holdfast schema migrated");
        }
        if found < SCHEMA {
            tx.execute("DELETE FROM holdfast_schema", &[]).await?;
            tx.execute("INSERT INTO holdfast_schema VALUES ($1)", &[&SCHEMA])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Take the writer lock on a connection of its own.
async fn writer_lock(config: &tokio_postgres::Config) -> Result<WriterLock, PgError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| PgError::Connect(e.to_string()))?;
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(
                error = %e,
                "the connection holding holdfast's database lock failed: another server could open the database now"
            );
        }
    });
    let lock = WriterLock {
        _client: client,
        connection,
    };
    let got: bool = lock
        ._client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])
        .await?
        .get(0);
    if got {
        Ok(lock)
    } else {
        Err(PgError::InUse)
    }
}

fn decoded(rows: Vec<tokio_postgres::Row>) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = row.get(0);
        let Some(key) = key::decode(&text) else {
            return Err(StorageError::Corrupt {
                key: StorageKey(vec![text]),
                detail: "not a holdfast key".into(),
            });
        };
        out.push((key, row.get(1)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl Storage for PgStorage {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM holdfast_records WHERE key = $1",
                &[&key::encode(key)],
            )
            .await
            .map_err(|e| storage_error("read", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let (exact, low, high) = key::prefix_bounds(prefix);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key, value FROM holdfast_records \
                 WHERE key = $1 OR (key >= $2 AND key < $3)",
                &[&exact, &low, &high],
            )
            .await
            .map_err(|e| storage_error("range read", e))?;
        decoded(rows)
    }

    async fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let fail = |e| storage_error("commit", e);
        let tx = client.transaction().await.map_err(fail)?;
        if !commit.deletes.is_empty() {
            let keys: Vec<String> = commit.deletes.iter().map(key::encode).collect();
            tx.execute("DELETE FROM holdfast_records WHERE key = ANY($1)", &[&keys])
                .await
                .map_err(fail)?;
        }
        for prefix in &commit.delete_prefixes {
            let (exact, low, high) = key::prefix_bounds(prefix);
            tx.execute(
                "DELETE FROM holdfast_records WHERE key = $1 OR (key >= $2 AND key < $3)",
                &[&exact, &low, &high],
            )
            .await
            .map_err(fail)?;
        }
        if let Some(node) = &self.node {
            for payload in watch::payloads(node, &commit) {
                tx.execute("SELECT pg_notify($1, $2)", &[&watch::CHANNEL, &payload])
                    .await
                    .map_err(fail)?;
            }
        }
        if !commit.puts.is_empty() {
            // In key order, the last put of a key winning: one row each,
            // locked in the same order by every server.
            let mut puts: Vec<(String, Vec<u8>)> = commit
                .puts
                .into_iter()
                .map(|(k, v)| (key::encode(&k), v))
                .collect();
            puts.reverse();
            puts.sort_by(|a, b| a.0.cmp(&b.0));
            puts.dedup_by(|a, b| a.0 == b.0);
            let (keys, values): (Vec<String>, Vec<Vec<u8>>) = puts.into_iter().unzip();
            tx.execute(
                "INSERT INTO holdfast_records (key, value) \
                 SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&keys, &values],
            )
            .await
            .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)
    }
}
