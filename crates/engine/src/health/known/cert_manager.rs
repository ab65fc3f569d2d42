//! cert-manager: a Certificate being issued is Progressing, else its Ready condition decides; a
//! CertificateRequest denied or invalid is Degraded, else Ready decides (Pending still Progressing); Issuers
//! follow Ready; ACME Challenges and Orders follow their `state`.
//!
//! Matches Argo CD's `cert-manager.io/{Certificate,CertificateRequest,Issuer,ClusterIssuer}/health.lua` and
//! `acme.cert-manager.io/{Challenge,Order}/health.lua`.

use super::{by_condition, conditions, text_or};
use crate::health::{Health, HealthStatus, text};
use serde_json::Value;

pub fn assess(group: &str, kind: &str, obj: &Value) -> Option<Health> {
    Some(match (group, kind) {
        ("cert-manager.io", "Certificate") => certificate(obj),
        ("cert-manager.io", "CertificateRequest") => certificate_request(obj),
        ("cert-manager.io", "Issuer") => by_condition(obj, "Ready", "Initializing issuer"),
        ("cert-manager.io", "ClusterIssuer") => by_condition(obj, "Ready", "Initializing ClusterIssuer"),
        ("acme.cert-manager.io", "Challenge") => acme(obj, "Challenge"),
        ("acme.cert-manager.io", "Order") => acme(obj, "Order"),
        _ => return None,
    })
}

fn certificate(obj: &Value) -> Health {
    let conditions = conditions(obj);
    // Issuing wins wherever it stands, so a renewal never flashes Degraded.
    if let Some(issuing) = conditions.iter().find(|c| c["type"] == "Issuing" && c["status"] == "True") {
        return Health::new(HealthStatus::Progressing, text(&issuing["message"]));
    }
    for c in conditions.iter().filter(|c| c["type"] == "Ready") {
        let message = text(&c["message"]);
        match text(&c["status"]) {
            // cert-manager marks Ready False for an issuance before it adds the Issuing condition.
            "False" if c["reason"] == "Issuing" => return Health::new(HealthStatus::Progressing, message),
            "False" => return Health::new(HealthStatus::Degraded, message),
            "True" => return Health::new(HealthStatus::Healthy, message),
            _ => {}
        }
    }
    Health::new(HealthStatus::Progressing, "Waiting for certificate")
}

fn certificate_request(obj: &Value) -> Health {
    let conditions = conditions(obj);
    let refused = conditions
        .iter()
        .find(|c| (c["type"] == "Denied" || c["type"] == "InvalidRequest") && c["status"] == "True");
    if let Some(refused) = refused {
        return Health::new(HealthStatus::Degraded, text(&refused["message"]));
    }
    match conditions.iter().find(|c| c["type"] == "Ready") {
        Some(ready) => {
            let status = if ready["status"] == "True" {
                HealthStatus::Healthy
            } else if ready["reason"] == "Pending" {
                HealthStatus::Progressing
            } else {
                HealthStatus::Degraded
            };
            Health::new(status, text(&ready["message"]))
        }
        None => Health::new(HealthStatus::Progressing, "Waiting for certificate request"),
    }
}

/// An ACME Challenge or Order by its `state`; the reason, when given, explains a failed or pending one.
fn acme(obj: &Value, kind: &str) -> Health {
    let status = &obj["status"];
    let state = text(&status["state"]);
    let explained = || text_or(&status["reason"], format!("{kind} is {state}"));
    match state {
        "" => Health::new(HealthStatus::Progressing, format!("Waiting for {}", kind.to_lowercase())),
        "valid" => Health::new(HealthStatus::Healthy, format!("{kind} is valid")),
        "invalid" | "expired" | "errored" => Health::new(HealthStatus::Degraded, explained()),
        // Argo CD shows a pending Order's state but a pending Challenge's reason.
        _ if kind == "Order" => Health::new(HealthStatus::Progressing, format!("Order is {state}")),
        _ => Health::new(HealthStatus::Progressing, explained()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn object(group: &str, kind: &str, status: Value) -> Value {
        json!({"apiVersion": format!("{group}/v1"), "kind": kind, "metadata": {"name": "x", "namespace": "argocd"},
               "status": status})
    }

    fn health(group: &str, kind: &str, status: Value) -> Health {
        assess(group, kind, &object(group, kind, status)).expect("a known kind")
    }

    fn cert(conditions: Value) -> Health {
        health("cert-manager.io", "Certificate", json!({"conditions": conditions}))
    }

    fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2021-09-15T02:10:00Z"})
    }

    const DOES_NOT_EXIST: &str = "Issuing certificate as Secret does not exist";

    #[test]
    fn certificate_without_status_waits() {
        let no_status =
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"}});
        assert_eq!(
            assess("cert-manager.io", "Certificate", &no_status),
            Some(Health::new(HealthStatus::Progressing, "Waiting for certificate"))
        );
    }

    #[test]
    fn certificate_issuing_before_ready_is_progressing() {
        let issuing = cert(json!([
            condition("Issuing", "True", "DoesNotExist", DOES_NOT_EXIST),
            condition("Ready", "False", "DoesNotExist", DOES_NOT_EXIST)
        ]));
        assert_eq!(issuing, Health::new(HealthStatus::Progressing, DOES_NOT_EXIST));
    }

    #[test]
    fn certificate_issuing_after_a_false_ready_is_still_progressing() {
        let issuing_last = cert(json!([
            condition("Ready", "False", "DoesNotExist", DOES_NOT_EXIST),
            condition("Issuing", "True", "DoesNotExist", DOES_NOT_EXIST)
        ]));
        assert_eq!(issuing_last, Health::new(HealthStatus::Progressing, DOES_NOT_EXIST));
    }

    #[test]
    fn certificate_with_a_config_error_is_degraded() {
        let message = "Resource validation failed: spec.acme.config: Required value: no ACME solver configuration specified for domain \"cd.apps.argoproj.io\"";
        assert_eq!(
            cert(json!([condition("Ready", "False", "ConfigError", message)])),
            Health::new(HealthStatus::Degraded, message)
        );
    }

    #[test]
    fn certificate_issued_or_renewed_is_healthy_with_its_message() {
        for message in ["Certificate issued successfully", "Certificate renewed successfully"] {
            assert_eq!(
                cert(json!([condition("Ready", "True", "Ready", message)])),
                Health::new(HealthStatus::Healthy, message)
            );
        }
    }

    #[test]
    fn certificate_ready_false_for_an_issuance_is_progressing() {
        let message = "Issuing certificate as Secret was previously issued";
        assert_eq!(
            cert(json!([condition("Ready", "False", "Issuing", message)])),
            Health::new(HealthStatus::Progressing, message)
        );
    }

    #[test]
    fn certificate_with_a_failed_issuance_shows_the_ready_message() {
        let degraded = cert(json!([
            condition(
                "Ready",
                "False",
                "SecretMismatch",
                "Existing issued Secret is not up to date for spec: [spec.dnsNames]"
            ),
            condition(
                "Issuing",
                "False",
                "Failed",
                "The certificate request has failed to complete and will be retried: 429 rateLimited"
            )
        ]));
        assert_eq!(
            degraded,
            Health::new(
                HealthStatus::Degraded,
                "Existing issued Secret is not up to date for spec: [spec.dnsNames]"
            )
        );
    }

    #[test]
    fn certificate_request_follows_ready_and_pending() {
        let request = |conditions: Value| {
            health("cert-manager.io", "CertificateRequest", json!({"conditions": conditions}))
        };
        let issued = "Certificate fetched from issuer successfully";
        assert_eq!(
            request(json!([
                condition("Approved", "True", "cert-manager.io", "approved"),
                condition("Ready", "True", "Issued", issued)
            ])),
            Health::new(HealthStatus::Healthy, issued)
        );
        let pending = "Waiting on certificate issuance from order default/example-order: \"pending\"";
        assert_eq!(
            request(json!([condition("Ready", "False", "Pending", pending)])),
            Health::new(HealthStatus::Progressing, pending)
        );
        let failed = "The certificate request has failed to complete and will be retried: failed to wait for order resource to become signed";
        assert_eq!(
            request(json!([condition("Ready", "False", "Failed", failed)])),
            Health::new(HealthStatus::Degraded, failed)
        );
    }

    #[test]
    fn certificate_request_denied_is_degraded_whatever_ready_says() {
        let denied = "The CertificateRequest was denied by an approval controller";
        let health = health(
            "cert-manager.io",
            "CertificateRequest",
            json!({"conditions": [condition("Ready", "False", "Pending", "waiting"), condition("Denied", "True", "Denied", denied)]}),
        );
        assert_eq!(health, Health::new(HealthStatus::Degraded, denied));
    }

    #[test]
    fn issuers_follow_ready_and_wait_without_status() {
        for (kind, waiting) in
            [("Issuer", "Initializing issuer"), ("ClusterIssuer", "Initializing ClusterIssuer")]
        {
            assert_eq!(
                health("cert-manager.io", kind, json!({})),
                Health::new(HealthStatus::Progressing, waiting)
            );
            let registered = "The ACME account was registered with the ACME server";
            assert_eq!(
                health(
                    "cert-manager.io",
                    kind,
                    json!({"conditions": [condition("Ready", "True", "ACMEAccountRegistered", registered)]})
                ),
                Health::new(HealthStatus::Healthy, registered)
            );
            let failed = "Failed to verify ACME account: acme: : 404 page not found\n";
            assert_eq!(
                health(
                    "cert-manager.io",
                    kind,
                    json!({"conditions": [condition("Ready", "False", "ErrRegisterACMEAccount", failed)]})
                ),
                Health::new(HealthStatus::Degraded, failed)
            );
        }
    }

    #[test]
    fn acme_challenge_follows_its_state_and_reason() {
        let challenge = |status: Value| health("acme.cert-manager.io", "Challenge", status);
        assert_eq!(
            challenge(json!({"state": "valid", "processing": false})),
            Health::new(HealthStatus::Healthy, "Challenge is valid")
        );
        let propagating =
            "Waiting for DNS-01 challenge propagation: could not determine authoritative nameservers";
        assert_eq!(
            challenge(json!({"state": "pending", "processing": true, "reason": propagating})),
            Health::new(HealthStatus::Progressing, propagating)
        );
        let refused = "Error accepting authorization: acme: authorization error for example.com: 403 urn:ietf:params:acme:error:unauthorized";
        assert_eq!(
            challenge(json!({"state": "errored", "reason": refused})),
            Health::new(HealthStatus::Degraded, refused)
        );
        assert_eq!(challenge(json!({})), Health::new(HealthStatus::Progressing, "Waiting for challenge"));
    }

    #[test]
    fn acme_order_follows_its_state() {
        let order = |status: Value| health("acme.cert-manager.io", "Order", status);
        assert_eq!(order(json!({"state": "valid"})), Health::new(HealthStatus::Healthy, "Order is valid"));
        assert_eq!(
            order(json!({"state": "pending", "reason": "ignored while pending"})),
            Health::new(HealthStatus::Progressing, "Order is pending")
        );
        let malformed = "Failed to retrieve the ACME order: 400 urn:ietf:params:acme:error:malformed";
        assert_eq!(
            order(json!({"state": "errored", "reason": malformed})),
            Health::new(HealthStatus::Degraded, malformed)
        );
        assert_eq!(
            order(json!({"state": "expired"})),
            Health::new(HealthStatus::Degraded, "Order is expired")
        );
        assert_eq!(order(json!({})), Health::new(HealthStatus::Progressing, "Waiting for order"));
    }
}
