//! Compatibility levels and the check a new schema must pass against a subject's history.
//!
//! Avro's schema resolution decides everything: data written with a *writer* schema
//! can be read with a *reader* schema when [`SchemaCompatibility::can_read`] says so.
//!
//! | level    | the new schema must…                                   | against            |
//! |----------|--------------------------------------------------------|--------------------|
//! | BACKWARD | read data written with the older one                   | the latest version |
//! | FORWARD  | be readable by the older one                           | the latest version |
//! | FULL     | both                                                   | the latest version |
//! | `*_TRANSITIVE` | as above                                         | every live version |
//! | NONE     | nothing                                                | —                  |

use std::fmt;
use std::str::FromStr;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a subject's new schema versions must relate to its earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityLevel {
    /// No check at all.
    None,
    /// The new schema reads data written with the latest version (the default).
    #[default]
    Backward,
    /// The new schema reads data written with every live version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// Every live version reads data written with the new schema.
    ForwardTransitive,
    /// Both backward and forward, against the latest version.
    Full,
    /// Both backward and forward, against every live version.
    FullTransitive,
}

/// Every level, in the order Confluent documents them.
pub const ALL_LEVELS: [CompatibilityLevel; 7] = [
    CompatibilityLevel::Backward,
    CompatibilityLevel::BackwardTransitive,
    CompatibilityLevel::Forward,
    CompatibilityLevel::ForwardTransitive,
    CompatibilityLevel::Full,
    CompatibilityLevel::FullTransitive,
    CompatibilityLevel::None,
];

impl CompatibilityLevel {
    /// The level's name on the wire, e.g. `BACKWARD_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the check runs against every live version rather than the latest only.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    fn checks_backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn checks_forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compatibility level name that is not one of the seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility level {0:?} (expected NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE)")]
pub struct UnknownLevel(pub String);

impl FromStr for CompatibilityLevel {
    type Err = UnknownLevel;

    /// Parses a level name, ignoring ASCII case and surrounding blanks (Confluent does too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        ALL_LEVELS
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

impl Serialize for CompatibilityLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CompatibilityLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// An earlier version of a subject, as the check sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Earlier<'a> {
    /// Its version number, for messages.
    pub version: i32,
    /// Its parsed schema.
    pub schema: &'a Schema,
}

/// Checks `new` against `earlier` (oldest first) under `level`; returns why it fails, empty when it passes.
///
/// Non-transitive levels look at the last element only.
pub(crate) fn incompatibilities(
    level: CompatibilityLevel,
    new: &Schema,
    earlier: &[Earlier<'_>],
) -> Vec<String> {
    let targets: &[Earlier<'_>] = if level.is_transitive() {
        earlier
    } else {
        match earlier.last() {
            Some(last) => std::slice::from_ref(last),
            None => &[],
        }
    };
    let mut problems = Vec::new();
    // Newest first, so the first message is about the version a reader most likely has.
    for old in targets.iter().rev() {
        if level.checks_backward() {
            if let Err(why) = can_read(old.schema, new) {
                problems.push(format!(
                    "{level}: the new schema cannot read data written with version {}: {why}",
                    old.version
                ));
            }
        }
        if level.checks_forward() {
            if let Err(why) = can_read(new, old.schema) {
                problems.push(format!(
                    "{level}: version {} cannot read data written with the new schema: {why}",
                    old.version
                ));
            }
        }
    }
    problems
}

/// Whether data written with `writer` can be read with `reader`; the reason when not.
///
/// The resolution code of the Avro library is not ours to audit for panics on odd
/// inputs from the network, so a panic there is caught and reported as a failure.
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SchemaCompatibility::can_read(writer, reader)
    }));
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(why.to_string()),
        Err(_) => Err("the schemas could not be compared".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        let text = format!(r#"{{"type":"record","name":"r","fields":[{fields}]}}"#);
        Schema::parse_str(&text).unwrap()
    }

    #[test]
    fn parses_names_in_any_case_and_round_trips() {
        for level in ALL_LEVELS {
            assert_eq!(level.as_str().parse::<CompatibilityLevel>(), Ok(level));
            assert_eq!(
                level.as_str().to_lowercase().parse::<CompatibilityLevel>(),
                Ok(level)
            );
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{}\"", level.as_str()));
            assert_eq!(
                serde_json::from_str::<CompatibilityLevel>(&json).unwrap(),
                level
            );
        }
        assert_eq!(
            " full_transitive ".parse::<CompatibilityLevel>(),
            Ok(CompatibilityLevel::FullTransitive)
        );
        assert_eq!(CompatibilityLevel::default(), CompatibilityLevel::Backward);
    }

    #[test]
    fn rejects_unknown_names() {
        for bad in ["", "BACKWARDS", "full transitive", "NONE_TRANSITIVE"] {
            let err = bad.parse::<CompatibilityLevel>().unwrap_err();
            assert_eq!(err, UnknownLevel(bad.to_owned()));
        }
        assert!(serde_json::from_str::<CompatibilityLevel>("\"SIDEWAYS\"").is_err());
        assert!(serde_json::from_str::<CompatibilityLevel>("3").is_err());
    }

    #[test]
    fn transitive_levels_look_at_every_version() {
        let v1 = record(r#"{"name":"a","type":"int"}"#);
        let v2 = record(r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":""}"#);
        let v3 = record(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        let earlier = [
            Earlier {
                version: 1,
                schema: &v1,
            },
            Earlier {
                version: 2,
                schema: &v2,
            },
        ];
        assert!(incompatibilities(CompatibilityLevel::Backward, &v3, &earlier).is_empty());
        let problems = incompatibilities(CompatibilityLevel::BackwardTransitive, &v3, &earlier);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("version 1"), "{problems:?}");
        assert!(incompatibilities(CompatibilityLevel::None, &v3, &earlier).is_empty());
        assert!(incompatibilities(CompatibilityLevel::FullTransitive, &v3, &[]).is_empty());
    }

    #[test]
    fn forward_and_full_check_the_other_direction() {
        let old = record(r#"{"name":"a","type":"int"}"#);
        let widened = record(r#"{"name":"a","type":"long"}"#);
        let earlier = [Earlier {
            version: 1,
            schema: &old,
        }];
        assert!(incompatibilities(CompatibilityLevel::Backward, &widened, &earlier).is_empty());
        assert_eq!(
            incompatibilities(CompatibilityLevel::Forward, &widened, &earlier).len(),
            1
        );
        assert_eq!(
            incompatibilities(CompatibilityLevel::Full, &widened, &earlier).len(),
            1
        );
    }
}
