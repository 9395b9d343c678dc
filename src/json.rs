//! The API's canonical JSON: the proto3 JSON mapping of any message of the
//! schema (lowerCamelCase names, enums by their names, RFC 3339 times,
//! 64-bit integers as strings, default values and absent messages left
//! out), as `buf curl`, grpcurl and every official protobuf library print
//! it. A Rust client that prints what the API answered, as hamctl's
//! `--output json` does, uses this so its JSON is the API's.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// The schema's descriptors, decoded once.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .expect("the schema's own descriptor set decodes")
    })
}

/// `message` as the API's canonical JSON.
pub fn to_value<M: Message + prost::Name>(message: &M) -> serde_json::Value {
    let descriptor = pool()
        .get_message_by_name(&M::full_name())
        .expect("every generated message is in the schema's descriptor set");
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message re-encoded by prost decodes with its own descriptor");
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .expect("a message serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn the_proto3_json_mapping() {
        let result = pb::ReleaseResult {
            outcome: pb::Outcome::AlreadyUpToDate as i32,
            service: "product-api".into(),
            intent: pb::ReleaseIntent::ReleaseArtifact as i32,
            commit_sha: "abc".into(),
            ..Default::default()
        };
        assert_eq!(
            to_value(&result),
            serde_json::json!({
                "outcome": "OUTCOME_ALREADY_UP_TO_DATE",
                "service": "product-api",
                "commitSha": "abc",
                "intent": "RELEASE_INTENT_RELEASE_ARTIFACT",
            })
        );
        let summary = pb::ArtifactSummary {
            artifact_id: "a".into(),
            build_date: Some(prost_types::Timestamp {
                seconds: 1_714_566_896,
                nanos: 0,
            }),
            ..Default::default()
        };
        let value = to_value(&summary);
        assert_eq!(value["buildDate"], "2024-05-01T12:34:56Z");
        assert!(
            value.get("committer").is_none(),
            "absent messages are absent"
        );
        let dropped = pb::EventsDropped {
            missed: 7,
            resume_from: String::new(),
        };
        assert_eq!(to_value(&dropped), serde_json::json!({"missed": "7"}));
    }
}
