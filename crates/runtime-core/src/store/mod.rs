//! Durable metadata: the runtime's records, written before an operation is acknowledged.
//!
//! One redb database file holds a table per kind of record (images now; sandboxes and
//! containers later). Records are JSON values under a string key, which keeps the schema
//! readable with any redb tool and lets fields be added without a migration.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A table of records: its name in the database, and whether start-up reconciliation
/// checks its records against the files they point at.
#[derive(Debug, Clone, Copy)]
pub struct Table(&'static str, Reconciled);

/// Whether a record that comes back after a crash is found out and removed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reconciled {
    Yes,
    No,
}

/// The images the runtime knows, by image id (`sha256:<config digest>`).
pub const IMAGES: Table = Table("images", Reconciled::No);
/// Pod sandboxes, by sandbox id.
pub const SANDBOXES: Table = Table("sandboxes", Reconciled::Yes);
/// Containers, by container id.
pub const CONTAINERS: Table = Table("containers", Reconciled::Yes);

/// Every table, created when the database is opened.
const TABLES: [Table; 3] = [IMAGES, SANDBOXES, CONTAINERS];

impl Table {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.0)
    }
}

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("metadata database {path}: {message}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        message: String,
    },
    /// A record could not be encoded or decoded.
    #[error("metadata record {key:?} in {table}: {source}")]
    Record {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// The runtime's metadata database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens the database at `path`, creating it and its tables if needed.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| database_error(path, e))?;
        }
        let db = Database::create(path).map_err(|e| database_error(path, e))?;
        let store = Self {
            db,
            path: path.to_path_buf(),
        };
        store.write(Durability::Immediate, |txn| {
            for table in TABLES {
                txn.open_table(table.definition())?;
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// The record under `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let opened = txn.open_table(table.definition()).map_err(|e| self.error(e))?;
        let Some(value) = opened.get(key).map_err(|e| self.error(e))? else {
            return Ok(None);
        };
        decode(table, key, value.value()).map(Some)
    }

    /// Every record of the table, in key order.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let opened = txn.open_table(table.definition()).map_err(|e| self.error(e))?;
        let mut records = Vec::new();
        for entry in opened.iter().map_err(|e| self.error(e))? {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            records.push(decode(table, key.value(), value.value())?);
        }
        Ok(records)
    }

    /// Writes records and removes keys in one durable transaction.
    pub fn update(&self, table: Table, puts: &[(&str, &dyn ErasedRecord)], deletes: &[&str]) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(puts.len());
        for (key, record) in puts {
            let bytes = record.to_json().map_err(|source| StoreError::Record {
                table: table.0,
                key: (*key).to_string(),
                source,
            })?;
            encoded.push((*key, bytes));
        }
        // A removal from a reconciled table need not reach the disk before the call returns:
        // if a crash undoes it, the record comes back pointing at files that are gone, and
        // start-up reconciliation removes it again. Writes, and image removals (whose blobs
        // are deleted next), pay for a sync.
        let durability = if encoded.is_empty() && table.1 == Reconciled::Yes {
            Durability::None
        } else {
            Durability::Immediate
        };
        self.write(durability, |txn| {
            let mut opened = txn.open_table(table.definition())?;
            for (key, bytes) in &encoded {
                opened.insert(*key, bytes.as_slice())?;
            }
            for key in deletes {
                opened.remove(*key)?;
            }
            Ok(())
        })
    }

    /// Stores one record under `key`, replacing any.
    pub fn put<T: Serialize>(&self, table: Table, key: &str, record: &T) -> Result<(), StoreError> {
        self.update(table, &[(key, record)], &[])
    }

    /// Removes the record under `key`; removing an absent key is not an error.
    pub fn delete(&self, table: Table, key: &str) -> Result<(), StoreError> {
        self.update(table, &[], &[key])
    }

    fn write(
        &self,
        durability: Durability,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.error(e))?;
        txn.set_durability(durability).map_err(|e| self.error(e))?;
        body(&txn).map_err(|e| self.error(e))?;
        txn.commit().map_err(|e| self.error(e))
    }

    fn error(&self, error: impl Into<redb::Error>) -> StoreError {
        database_error(&self.path, error.into())
    }
}

/// A record of any serializable type, so one transaction can write several types.
pub trait ErasedRecord {
    /// The record as JSON.
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error>;
}

impl<T: Serialize> ErasedRecord for T {
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Record {
        table: table.0,
        key: key.to_string(),
        source,
    })
}

fn database_error(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// Serde for protobuf messages inside JSON records: the message's wire encoding, base64.
///
/// CRI configs are stored as the kubelet sent them, so every field survives a restart,
/// including ones added to the protocol later.
pub mod proto {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `message` as base64 of its protobuf encoding.
    pub fn serialize<M: prost::Message, S: Serializer>(message: &M, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(message.encode_to_vec()))
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, M: prost::Message + Default, D: Deserializer<'de>>(deserializer: D) -> Result<M, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        M::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Record {
        name: String,
    }

    #[test]
    fn records_survive_reopening_and_deletes_are_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta/metadata.redb");
        {
            let store = Store::open(&path).expect("open");
            store.put(IMAGES, "a", &Record { name: "a".into() }).expect("put");
            store.put(IMAGES, "b", &Record { name: "b".into() }).expect("put");
            store.delete(IMAGES, "b").expect("delete");
            store.delete(IMAGES, "b").expect("delete again");
        }
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            store.get::<Record>(IMAGES, "a").expect("get"),
            Some(Record { name: "a".into() })
        );
        assert_eq!(store.get::<Record>(IMAGES, "b").expect("get"), None);
        assert_eq!(store.list::<Record>(IMAGES).expect("list").len(), 1);
    }
}
