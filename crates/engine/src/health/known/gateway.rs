//! Gateway API: a Gateway, and each of its listeners, is Degraded when references do not resolve or it is
//! not accepted, Progressing until programmed; a GatewayClass follows its current Accepted condition; a route
//! is judged per parent Gateway on conditions of its current generation (an HTTPRoute no controller ever
//! reports on is assumed healthy).
//!
//! Matches Argo CD's `gateway.networking.k8s.io/{Gateway,GatewayClass,HTTPRoute,GRPCRoute,TLSRoute}/health.lua`.

use super::{conditions, text_or};
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

pub fn assess(kind: &str, obj: &Value) -> Option<Health> {
    Some(match kind {
        "Gateway" => gateway(obj),
        "GatewayClass" => gateway_class(obj),
        "HTTPRoute" => route(obj, kind, true),
        "GRPCRoute" => route(obj, kind, false),
        "TLSRoute" => tls_route(obj),
        _ => return None,
    })
}

/// Degraded for a ResolvedRefs or Accepted condition that is False (references first), Progressing for a
/// Programmed one that is not True; `None` when the conditions raise nothing.
fn raised(conditions: &[Value], still_programming: &str) -> Option<Health> {
    for failing in ["ResolvedRefs", "Accepted"] {
        if let Some(c) = conditions.iter().find(|c| c["type"] == failing && c["status"] == "False") {
            let message = text_or(&c["message"], format!("Failed condition: {failing}"));
            return Some(Health::new(HealthStatus::Degraded, message));
        }
    }
    conditions
        .iter()
        .find(|c| c["type"] == "Programmed" && c["status"] != "True")
        .map(|c| Health::new(HealthStatus::Progressing, text_or(&c["message"], still_programming)))
}

fn prefixed(health: Health, prefix: &str) -> Health {
    Health::new(health.status, format!("{prefix}{}", health.message))
}

fn gateway(obj: &Value) -> Health {
    let status = &obj["status"];
    if !status.is_null() {
        if let Some(health) = raised(conditions(obj), "Gateway is still being programmed") {
            return health;
        }
        let listeners = status["listeners"].as_array().map(Vec::as_slice).unwrap_or_default();
        for listener in listeners {
            let conditions = listener["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
            if let Some(health) = raised(conditions, "Listener is still being programmed") {
                return prefixed(health, "Listener: ");
            }
        }
        if !status["conditions"].is_null() || !listeners.is_empty() {
            return Health::new(HealthStatus::Healthy, "Gateway is healthy");
        }
    }
    Health::new(HealthStatus::Progressing, "Waiting for Gateway status")
}

fn gateway_class(obj: &Value) -> Health {
    let generation = &obj["metadata"]["generation"];
    let accepted = conditions(obj).iter().filter(|c| c["type"] == "Accepted").find(|c| {
        // A condition written for an earlier generation is not an answer yet.
        generation.is_null() || c["observedGeneration"].is_null() || c["observedGeneration"] == *generation
    });
    let Some(accepted) = accepted else {
        return Health::new(HealthStatus::Progressing, "Waiting for GatewayClass status");
    };
    let message = &accepted["message"];
    match text(&accepted["status"]) {
        "True" => Health::new(HealthStatus::Healthy, text_or(message, "GatewayClass is accepted")),
        "False" => Health::new(HealthStatus::Degraded, text_or(message, "GatewayClass is not accepted")),
        _ => Health::new(HealthStatus::Progressing, text_or(message, "Waiting for GatewayClass status")),
    }
}

/// The parents a route's status reports, each with its conditions.
fn parents(obj: &Value) -> &[Value] {
    obj["status"]["parents"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Whether a parent's conditions describe the route's current generation; one without conditions does not.
fn current(obj: &Value, parent: &Value) -> bool {
    let generation = &obj["metadata"]["generation"];
    if generation.is_null() {
        return true;
    }
    let conditions = parent["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    !conditions.is_empty()
        && conditions
            .iter()
            .all(|c| c["observedGeneration"].is_null() || c["observedGeneration"] == *generation)
}

fn parent_name(parent: &Value) -> &str {
    text(&parent["parentRef"]["name"])
}

/// HTTPRoute and GRPCRoute: the first current parent that raises something decides; else any current parent
/// with conditions makes the route healthy.
fn route(obj: &Value, kind: &str, healthy_without_parents: bool) -> Health {
    let parents = parents(obj);
    for parent in parents.iter().filter(|p| !p["conditions"].is_null() && current(obj, p)) {
        let conditions = parent["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
        if let Some(health) = raised(conditions, "Route is still being programmed") {
            return prefixed(health, &format!("Parent {}: ", parent_name(parent)));
        }
    }
    let reported = |p: &&Value| p["conditions"].as_array().is_some_and(|c| !c.is_empty());
    if parents.iter().filter(reported).any(|p| current(obj, p)) {
        return Health::new(HealthStatus::Healthy, format!("{kind} is healthy"));
    }
    // Some implementations never report parents; a route cannot wait for that forever.
    if healthy_without_parents && parents.is_empty() {
        return Health::new(
            HealthStatus::Healthy,
            format!("No status reported by the Gateway controller; assuming {kind} is healthy"),
        );
    }
    Health::new(HealthStatus::Progressing, format!("Waiting for {kind} status"))
}

/// TLSRoute: a current parent failing references or acceptance is Degraded; else one still programming is
/// Progressing; else one accepted with resolved references makes it Healthy; else it waits for conditions.
fn tls_route(obj: &Value) -> Health {
    let mut programming = None;
    let mut healthy_parent = false;
    let mut waiting = None;
    let reported = |p: &&Value| p["conditions"].as_array().is_some_and(|c| !c.is_empty());
    for parent in parents(obj).iter().filter(reported).filter(|p| current(obj, p)) {
        let conditions = parent["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
        let find = |kind: &str| conditions.iter().find(|c| c["type"] == kind);
        let (resolved, accepted, programmed) = (find("ResolvedRefs"), find("Accepted"), find("Programmed"));
        let name = parent_name(parent);
        for (failing, c) in [("ResolvedRefs", resolved), ("Accepted", accepted)] {
            if let Some(c) = c.filter(|c| c["status"] == "False") {
                let message = text(&c["message"]);
                let message =
                    if message.is_empty() { format!("Failed condition: {failing}") } else { message.into() };
                return Health::new(HealthStatus::Degraded, format!("Parent {name}: {message}"));
            }
        }
        let is_true = |c: Option<&Value>| c.is_some_and(|c| c["status"] == "True");
        if let Some(programmed) = programmed.filter(|c| c["status"] != "True") {
            let message = text_or(&programmed["message"], "Route is still being programmed");
            programming.get_or_insert(format!("Parent {name}: {message}"));
        } else if is_true(accepted) && is_true(resolved) {
            healthy_parent = true;
        } else {
            waiting.get_or_insert(format!("Parent {name}: Waiting for TLSRoute conditions"));
        }
    }
    if let Some(message) = programming {
        return Health::new(HealthStatus::Progressing, message);
    }
    if healthy_parent {
        return Health::new(HealthStatus::Healthy, "TLSRoute is healthy");
    }
    Health::new(HealthStatus::Progressing, waiting.unwrap_or_else(|| "Waiting for TLSRoute status".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn health(kind: &str, generation: Option<i64>, status: Value) -> Health {
        let mut obj = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
            "metadata": {"name": "example", "namespace": "default"}, "status": status});
        if let Some(generation) = generation {
            obj["metadata"]["generation"] = json!(generation);
        }
        assess(kind, &obj).expect("a known kind")
    }

    fn condition(kind: &str, status: &str, message: Option<&str>) -> Value {
        json!({"type": kind, "status": status, "reason": kind, "message": message,
               "lastTransitionTime": "2023-03-02T15:00:00Z"})
    }

    fn at(mut condition: Value, generation: i64) -> Value {
        condition["observedGeneration"] = json!(generation);
        condition
    }

    fn parent(name: Option<&str>, conditions: Value) -> Value {
        json!({"parentRef": {"name": name, "namespace": "default"}, "controllerName": "example.io/gateway-controller",
               "conditions": conditions})
    }

    fn accepted_and_resolved() -> Value {
        json!([
            condition("Accepted", "True", Some("Route is accepted")),
            condition("ResolvedRefs", "True", Some("Resolved all the Object references for the Route"))
        ])
    }

    #[test]
    fn gateway_accepted_and_programmed_is_healthy() {
        let status = json!({"conditions": [condition("Accepted", "True", Some("ok")), condition("Programmed", "True", Some("ok"))],
            "listeners": [{"name": "http", "conditions": [condition("Accepted", "True", None), condition("Programmed", "True", None)]}]});
        assert_eq!(health("Gateway", None, status), Health::new(HealthStatus::Healthy, "Gateway is healthy"));
    }

    #[test]
    fn gateway_with_unresolved_references_is_degraded() {
        let status = json!({"conditions": [condition("Accepted", "False", Some("accepted failed")),
                                           condition("ResolvedRefs", "False", Some("Failed to resolve references"))]});
        assert_eq!(
            health("Gateway", None, status),
            Health::new(HealthStatus::Degraded, "Failed to resolve references")
        );
    }

    #[test]
    fn gateway_not_accepted_is_degraded() {
        let message = "Gateway has not been accepted by any controller";
        let status = json!({"conditions": [condition("Accepted", "False", Some(message))]});
        assert_eq!(health("Gateway", None, status), Health::new(HealthStatus::Degraded, message));
    }

    #[test]
    fn gateway_with_a_listener_not_accepted_is_degraded() {
        let status = json!({"conditions": [condition("Accepted", "True", None), condition("Programmed", "True", None)],
            "listeners": [{"name": "https", "conditions": [condition("Accepted", "False", Some("Listener has not been accepted"))]}]});
        assert_eq!(
            health("Gateway", None, status),
            Health::new(HealthStatus::Degraded, "Listener: Listener has not been accepted")
        );
    }

    #[test]
    fn gateway_being_programmed_is_progressing() {
        let status = json!({"conditions": [condition("Accepted", "True", None),
                                           condition("Programmed", "Unknown", Some("Gateway is still being programmed"))]});
        assert_eq!(
            health("Gateway", None, status),
            Health::new(HealthStatus::Progressing, "Gateway is still being programmed")
        );
        assert_eq!(
            health("Gateway", None, Value::Null),
            Health::new(HealthStatus::Progressing, "Waiting for Gateway status")
        );
    }

    #[test]
    fn gateway_class_follows_accepted() {
        let class = |conditions: Value| health("GatewayClass", Some(1), json!({"conditions": conditions}));
        assert_eq!(
            class(json!([at(condition("Accepted", "True", Some("GatewayClass has been accepted")), 1)])),
            Health::new(HealthStatus::Healthy, "GatewayClass has been accepted")
        );
        assert_eq!(
            class(json!([at(
                condition("Accepted", "False", Some("GatewayClass has not been accepted by any controller")),
                1
            )])),
            Health::new(HealthStatus::Degraded, "GatewayClass has not been accepted by any controller")
        );
        assert_eq!(
            class(json!([at(condition("Accepted", "Unknown", Some("Waiting for controller")), 1)])),
            Health::new(HealthStatus::Progressing, "Waiting for controller")
        );
    }

    #[test]
    fn gateway_class_without_status_or_with_a_stale_one_waits() {
        let waiting = Health::new(HealthStatus::Progressing, "Waiting for GatewayClass status");
        assert_eq!(health("GatewayClass", Some(1), Value::Null), waiting);
        let stale = json!({"conditions": [at(condition("Accepted", "True", Some("accepted")), 1)]});
        assert_eq!(health("GatewayClass", Some(2), stale), waiting);
    }

    #[test]
    fn routes_accepted_by_their_parent_are_healthy() {
        for kind in ["HTTPRoute", "GRPCRoute", "TLSRoute"] {
            let status = json!({"parents": [parent(Some("example-gateway"), accepted_and_resolved())]});
            assert_eq!(
                health(kind, None, status),
                Health::new(HealthStatus::Healthy, format!("{kind} is healthy"))
            );
        }
    }

    #[test]
    fn routes_with_unresolved_or_unaccepted_parents_are_degraded() {
        for kind in ["HTTPRoute", "GRPCRoute", "TLSRoute"] {
            let unresolved = json!({"parents": [parent(Some("example-gateway"), json!([
                condition("Accepted", "True", Some("Route is accepted")),
                condition("ResolvedRefs", "False", Some("BackendRef service-does-not-exist not found"))]))]});
            assert_eq!(
                health(kind, None, unresolved),
                Health::new(
                    HealthStatus::Degraded,
                    "Parent example-gateway: BackendRef service-does-not-exist not found"
                )
            );
            let unaccepted = json!({"parents": [parent(Some("example-gateway"), json!([
                condition("Accepted", "False", Some("Route has not been accepted due to invalid configuration"))]))]});
            assert_eq!(
                health(kind, None, unaccepted),
                Health::new(
                    HealthStatus::Degraded,
                    "Parent example-gateway: Route has not been accepted due to invalid configuration"
                )
            );
        }
    }

    #[test]
    fn routes_being_programmed_are_progressing() {
        for kind in ["HTTPRoute", "GRPCRoute", "TLSRoute"] {
            let status = json!({"parents": [parent(Some("example-gateway"), json!([
                condition("Accepted", "True", None), condition("ResolvedRefs", "True", None),
                condition("Programmed", "False", Some("Route is still being programmed"))]))]});
            assert_eq!(
                health(kind, None, status),
                Health::new(
                    HealthStatus::Progressing,
                    "Parent example-gateway: Route is still being programmed"
                )
            );
        }
    }

    #[test]
    fn routes_name_the_failed_condition_without_a_message_and_an_unnamed_parent() {
        for kind in ["GRPCRoute", "TLSRoute"] {
            let no_message = json!({"parents": [parent(Some("example-gateway"), json!([condition("ResolvedRefs", "False", None)]))]});
            assert_eq!(
                health(kind, None, no_message),
                Health::new(HealthStatus::Degraded, "Parent example-gateway: Failed condition: ResolvedRefs")
            );
            let unnamed = json!({"parents": [parent(None, json!([
                condition("ResolvedRefs", "False", Some("BackendRef service-does-not-exist not found"))]))]});
            assert_eq!(
                health(kind, None, unnamed),
                Health::new(HealthStatus::Degraded, "Parent : BackendRef service-does-not-exist not found")
            );
        }
    }

    #[test]
    fn routes_skip_parents_reporting_an_earlier_generation() {
        let stale_failure = parent(
            Some("eg"),
            json!([
                at(condition("Accepted", "False", Some("No listeners match this parent ref")), 1),
                at(condition("ResolvedRefs", "True", None), 1)
            ]),
        );
        let current_success = parent(
            Some("eg"),
            json!([
                at(condition("Accepted", "True", Some("Route is accepted")), 2),
                at(condition("ResolvedRefs", "True", None), 2)
            ]),
        );
        for kind in ["HTTPRoute", "GRPCRoute", "TLSRoute"] {
            let status = json!({"parents": [stale_failure, current_success]});
            assert_eq!(
                health(kind, Some(2), status),
                Health::new(HealthStatus::Healthy, format!("{kind} is healthy"))
            );
        }
        let all_stale = json!({"parents": [stale_failure, parent(Some("eg"), json!([at(condition("Accepted", "True", None), 1)]))]});
        assert_eq!(
            health("GRPCRoute", Some(2), all_stale),
            Health::new(HealthStatus::Progressing, "Waiting for GRPCRoute status")
        );
    }

    #[test]
    fn http_route_without_parent_status_is_assumed_healthy() {
        let assumed = Health::new(
            HealthStatus::Healthy,
            "No status reported by the Gateway controller; assuming HTTPRoute is healthy",
        );
        assert_eq!(health("HTTPRoute", Some(1), Value::Null), assumed);
        assert_eq!(health("HTTPRoute", Some(1), json!({"parents": []})), assumed);
        let no_conditions = json!({"parents": [parent(Some("eg"), json!([]))]});
        assert_eq!(
            health("HTTPRoute", Some(1), no_conditions),
            Health::new(HealthStatus::Progressing, "Waiting for HTTPRoute status")
        );
        assert_eq!(
            health("GRPCRoute", None, Value::Null),
            Health::new(HealthStatus::Progressing, "Waiting for GRPCRoute status")
        );
    }

    #[test]
    fn tls_route_with_a_parent_missing_conditions_waits_for_them() {
        let status = json!({"parents": [parent(Some("example-gateway"), json!([condition("Accepted", "True", None)]))]});
        assert_eq!(
            health("TLSRoute", None, status),
            Health::new(HealthStatus::Progressing, "Parent example-gateway: Waiting for TLSRoute conditions")
        );
        assert_eq!(
            health("TLSRoute", None, Value::Null),
            Health::new(HealthStatus::Progressing, "Waiting for TLSRoute status")
        );
    }
}
