//! Typed facade over the store: owns key naming (`kg:<kind>:<id>`) and serde.
//! The flows never see raw keys.

use super::{Store, StoreError};
use crate::oauth::types::Client;

const CLIENT: &str = "kg:client:";

/// Registered clients, stored as JSON under `kg:client:{client_id}`, no TTL.
#[derive(Clone)]
pub struct Clients {
    store: Store,
}

impl Clients {
    /// Wraps the store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Reads a client.
    pub async fn get(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        match self.store.get(&format!("{CLIENT}{client_id}")).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Creates or replaces a client.
    pub async fn put(&self, client: &Client) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(client)?;
        self.store
            .put(&format!("{CLIENT}{}", client.client_id), &bytes, None)
            .await
    }

    /// Deletes a client; returns whether it existed.
    pub async fn delete(&self, client_id: &str) -> Result<bool, StoreError> {
        self.store.delete(&format!("{CLIENT}{client_id}")).await
    }

    /// Every stored client id.
    pub async fn list_ids(&self) -> Result<Vec<String>, StoreError> {
        let keys = self.store.scan_prefix(CLIENT).await?;
        Ok(keys
            .into_iter()
            .map(|k| k[CLIENT.len()..].to_string())
            .collect())
    }
}
