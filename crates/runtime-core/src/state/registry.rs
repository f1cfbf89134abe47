//! The records of every sandbox and container, in memory and in the metadata store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::container::ContainerRecord;
use super::ids::{self, Lookup};
use super::sandbox::SandboxRecord;
use crate::store::{self, Store, StoreError};

/// Why a record could not be found, reserved or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No sandbox or container has this id (or unique id prefix).
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// `sandbox` or `container`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The id prefix names several records.
    #[error("{kind} id prefix {id:?} is ambiguous")]
    Ambiguous {
        /// `sandbox` or `container`.
        kind: &'static str,
        /// The prefix asked for.
        id: String,
    },
    /// Another record holds the name.
    #[error("{kind} name {name:?} is reserved for {holder}")]
    NameReserved {
        /// `sandbox` or `container`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The id of the record holding it.
        holder: String,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One kind of record, by id.
#[derive(Debug)]
struct Records<R> {
    kind: &'static str,
    table: store::Table,
    by_id: RwLock<HashMap<String, R>>,
}

/// What every record kind offers the registry.
trait Record: Clone + serde::Serialize + serde::de::DeserializeOwned {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
}

impl Record for SandboxRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl Record for ContainerRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl<R: Record> Records<R> {
    fn load(store: &Store, kind: &'static str, table: store::Table) -> Result<Self, StateError> {
        let by_id = store
            .list::<R>(table)?
            .into_iter()
            .map(|r| (r.id().to_string(), r))
            .collect();
        Ok(Self {
            kind,
            table,
            by_id: RwLock::new(by_id),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, R>> {
        self.by_id.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, R>> {
        self.by_id.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: &str) -> Result<R, StateError> {
        let records = self.read();
        match ids::find(records.keys(), id) {
            Lookup::Found(found) => Ok(records[found].clone()),
            Lookup::Missing => Err(StateError::NotFound {
                kind: self.kind,
                id: id.to_string(),
            }),
            Lookup::Ambiguous => Err(StateError::Ambiguous {
                kind: self.kind,
                id: id.to_string(),
            }),
        }
    }

    fn insert(&self, store: &Store, record: R) -> Result<(), StateError> {
        let mut records = self.write();
        if let Some(holder) = records.values().find(|r| r.name() == record.name()) {
            return Err(StateError::NameReserved {
                kind: self.kind,
                name: record.name().to_string(),
                holder: holder.id().to_string(),
            });
        }
        store.put(self.table, record.id(), &record)?;
        records.insert(record.id().to_string(), record);
        Ok(())
    }

    fn update(&self, store: &Store, id: &str, change: impl FnOnce(&mut R)) -> Result<R, StateError> {
        let mut records = self.write();
        let Some(record) = records.get_mut(id) else {
            return Err(StateError::NotFound {
                kind: self.kind,
                id: id.to_string(),
            });
        };
        let mut changed = record.clone();
        change(&mut changed);
        store.put(self.table, id, &changed)?;
        *record = changed.clone();
        Ok(changed)
    }

    fn remove(&self, store: &Store, id: &str) -> Result<(), StateError> {
        let mut records = self.write();
        store.delete(self.table, id)?;
        records.remove(id);
        Ok(())
    }

    fn all(&self) -> Vec<R> {
        self.read().values().cloned().collect()
    }
}

/// Every sandbox and container record, persisted on each change.
#[derive(Debug)]
pub struct Registry {
    store: Arc<Store>,
    sandboxes: Records<SandboxRecord>,
    containers: Records<ContainerRecord>,
}

impl Registry {
    /// Loads the records from `store`.
    pub fn load(store: Arc<Store>) -> Result<Self, StateError> {
        let sandboxes = Records::load(&store, "sandbox", store::SANDBOXES)?;
        let containers = Records::load(&store, "container", store::CONTAINERS)?;
        Ok(Self {
            store,
            sandboxes,
            containers,
        })
    }

    /// The sandbox with this id or unique id prefix.
    pub fn sandbox(&self, id: &str) -> Result<SandboxRecord, StateError> {
        self.sandboxes.get(id)
    }

    /// Every sandbox.
    pub fn sandboxes(&self) -> Vec<SandboxRecord> {
        self.sandboxes.all()
    }

    /// Records a new sandbox, reserving its name.
    pub fn add_sandbox(&self, record: SandboxRecord) -> Result<(), StateError> {
        self.sandboxes.insert(&self.store, record)
    }

    /// Changes a sandbox's record and persists it; returns the new record.
    pub fn update_sandbox(
        &self,
        id: &str,
        change: impl FnOnce(&mut SandboxRecord),
    ) -> Result<SandboxRecord, StateError> {
        self.sandboxes.update(&self.store, id, change)
    }

    /// Forgets a sandbox, releasing its name.
    pub fn remove_sandbox(&self, id: &str) -> Result<(), StateError> {
        self.sandboxes.remove(&self.store, id)
    }

    /// The container with this id or unique id prefix.
    pub fn container(&self, id: &str) -> Result<ContainerRecord, StateError> {
        self.containers.get(id)
    }

    /// Every container.
    pub fn containers(&self) -> Vec<ContainerRecord> {
        self.containers.all()
    }

    /// The containers of one sandbox.
    pub fn containers_of(&self, sandbox_id: &str) -> Vec<ContainerRecord> {
        self.containers
            .read()
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .cloned()
            .collect()
    }

    /// Records a new container, reserving its name.
    pub fn add_container(&self, record: ContainerRecord) -> Result<(), StateError> {
        self.containers.insert(&self.store, record)
    }

    /// Changes a container's record and persists it; returns the new record.
    pub fn update_container(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, StateError> {
        self.containers.update(&self.store, id, change)
    }

    /// Forgets a container, releasing its name.
    pub fn remove_container(&self, id: &str) -> Result<(), StateError> {
        self.containers.remove(&self.store, id)
    }
}
