//! Properties of normalization for any object: stripping is idempotent, an object never differs from
//! itself, and an ignored field is never reported as a difference.

use proptest::prelude::*;
use serde_json::Value;

use super::*;

/// Keys that reach the server-owned fields and the noise annotations often, and need pointer escaping.
const KEYS: &[&str] = &[
    "metadata",
    "annotations",
    "status",
    "spec",
    "uid",
    "resourceVersion",
    "managedFields",
    "deployment.kubernetes.io/revision",
    "a",
    "b~c",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-2i64..3).prop_map(Value::from),
        prop::sample::select(vec!["", "x", "y"]).prop_map(Value::from),
    ]
}

/// Any JSON document over `KEYS`, arrays included.
fn document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..4)
                .prop_map(|m| { Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()) }),
        ]
    })
}

/// Objects only (no arrays): removing a pointer then leaves nothing else shifted.
fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 3, |inner| {
        prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    })
}

fn pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(KEYS), 1..4).prop_map(|keys| {
        keys.iter().map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1"))).collect()
    })
}

fn key() -> ResourceKey {
    ResourceKey::new("apps", "Deployment", "web", "web")
}

proptest! {
    #[test]
    fn stripping_server_fields_twice_changes_nothing_more(doc in document()) {
        let mut once = doc;
        strip_server_fields(&mut once);
        let mut twice = once.clone();
        strip_server_fields(&mut twice);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn an_object_never_differs_from_itself(doc in document()) {
        prop_assert!(differing_paths(&doc, &doc).is_empty());
    }

    #[test]
    fn differing_paths_are_empty_exactly_when_the_objects_are_equal(a in document(), b in document()) {
        prop_assert_eq!(differing_paths(&a, &b).is_empty(), a == b);
    }

    #[test]
    fn an_ignored_pointer_is_never_reported_as_a_difference(
        desired in tree(),
        live in tree(),
        pointers in prop::collection::vec(pointer(), 1..4),
    ) {
        let rules = [IgnoreRule { kind: "*".into(), json_pointers: pointers.clone(), ..Default::default() }];
        let (mut d, mut l) = (desired, live.clone());
        apply_ignore_rules(&mut d, &live, &key(), &rules).unwrap();
        apply_ignore_rules(&mut l, &live, &key(), &rules).unwrap();
        for path in differing_paths(&d, &l) {
            for ignored in &pointers {
                prop_assert!(
                    path != *ignored && !path.starts_with(&format!("{ignored}/")),
                    "{} is ignored by {}", path, ignored
                );
            }
        }
    }
}
