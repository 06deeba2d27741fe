//! The JSON bodies of the Confluent REST API, shared by the server and the client.
//!
//! Field names follow Confluent's spelling on the wire (`error_code`, `is_compatible`,
//! `compatibilityLevel`, `schemaType`): stock clients parse exactly these.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::compat::CompatibilityLevel;

/// A schema's registry-wide id: the four bytes after the magic byte in the Confluent wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SchemaId(pub u32);

impl SchemaId {
    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u32> for SchemaId {
    fn from(id: u32) -> Self {
        SchemaId(id)
    }
}

/// One version of a subject: what `GET /subjects/{subject}/versions/{version}` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// The version within the subject, from 1.
    pub version: i32,
    /// The schema's registry-wide id.
    pub id: SchemaId,
    /// The schema's JSON text.
    pub schema: String,
    /// `AVRO` when absent (Confluent omits it for Avro).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
}

/// Confluent's error body: `{"error_code": 40401, "message": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub error_code: u32,
    pub message: String,
}

/// The body of register, lookup and compatibility requests (extra fields are ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
}

/// The answer to a registration: `{"id": N}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct RegisterResponse {
    pub id: SchemaId,
}

/// The answer to `GET /schemas/ids/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaByIdResponse {
    pub schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
}

/// One entry of `GET /schemas/ids/{id}/versions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubjectVersion {
    pub subject: String,
    pub version: i32,
}

/// The answer to a compatibility check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CompatibilityResponse {
    pub is_compatible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<String>>,
}

/// The body of `PUT /config`: Confluent's clients send `compatibility`, newer ones may send `compatibilityLevel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_level: Option<serde_json::Value>,
}

/// The answer to `PUT /config`: `{"compatibility": "FULL"}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ConfigUpdate {
    pub compatibility: CompatibilityLevel,
}

/// The answer to `GET` and `DELETE /config`: `{"compatibilityLevel": "FULL"}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ConfigView {
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: CompatibilityLevel,
}
