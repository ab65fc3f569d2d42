//! Project role tokens, as Argo CD issues them: HS256 with `server.secretkey` (the key of local tokens),
//! `iss: argocd`, `sub: proj:<project>:<role>`, `iat`, `nbf`, `jti` (the token id) and `exp` only when an
//! expiry was asked. A token is good while its project exists, has the role, and lists the token in
//! `status.jwtTokensByRole[role]` (or, for older projects, in `spec.roles[].jwtTokens`): deleting it there
//! revokes it.

use super::session::PROJECT_SUBJECT_PREFIX;
use super::{AuthError, SessionManager, password};
use crate::rbac::{Enforcer, ProjectTokenState, Subject};
use berth_api::project::JwtToken;
use std::fmt;
use std::time::Duration;

/// What a verified project token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectClaims {
    pub project: String,
    pub role: String,
    /// `jti`; tokens issued before Argo CD 1.8 have none and are known by `issued_at`.
    pub id: Option<String>,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
}

impl ProjectClaims {
    /// The RBAC subject: `proj:<project>:<role>`, without groups.
    pub fn subject(&self) -> Subject {
        Subject::user(crate::rbac::role_subject(&self.project, &self.role))
    }
}

/// A new project token and the record its role keeps of it.
#[derive(Clone)]
pub struct IssuedProjectToken {
    pub token: String,
    pub record: JwtToken,
}

impl fmt::Debug for IssuedProjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedProjectToken")
            .field("token", &"<redacted>")
            .field("record", &self.record)
            .finish()
    }
}

/// Whether `token` claims to be a project role token (its `sub` starts with `proj:`). Nothing is verified:
/// this only says which check applies, [`SessionManager::verify_project_token`] or
/// [`SessionManager::verify`].
pub fn is_project_token(token: &str) -> bool {
    use base64::Engine;
    let Some(payload) = token.split('.').nth(1) else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|claims| claims.get("sub")?.as_str().map(|sub| sub.starts_with(PROJECT_SUBJECT_PREFIX)))
        .unwrap_or(false)
}

impl SessionManager {
    /// Signs a token for role `role` of `project`. `expires_in` of `None` or zero never expires; `id` of
    /// `None` or empty gets a random UUID. The caller checks that the role exists and the id is unused, and
    /// stores [`IssuedProjectToken::record`] in the project: until then the token is refused.
    pub fn issue_project_token(
        &self,
        project: &str,
        role: &str,
        expires_in: Option<Duration>,
        id: Option<&str>,
    ) -> Result<IssuedProjectToken, AuthError> {
        let id = match id {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => password::generate_token_id(),
        };
        let now = self.now();
        let expires_at = expires_in
            .filter(|d| !d.is_zero())
            .map(|d| now.saturating_add(i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX)));
        let token = self.sign(&crate::rbac::role_subject(project, role), now, expires_at, &id)?;
        Ok(IssuedProjectToken { token, record: JwtToken { iat: now, exp: expires_at, id: Some(id) } })
    }

    /// Checks a project token: signature, issuer and times as for every token ([`SessionManager::verify`]),
    /// then, against the projects `rbac` holds, that the project exists, has the role, and still lists the
    /// token (by id, or by issued-at time for a token without one).
    pub fn verify_project_token(&self, token: &str, rbac: &Enforcer) -> Result<ProjectClaims, AuthError> {
        let (wire, issued_at) = self.decode(token)?;
        let subject = wire.sub.unwrap_or_default();
        let (project, role) = crate::rbac::parse_role_subject(&subject)
            .ok_or(AuthError::TokenInvalid("not a project token"))?;
        let id = wire.jti.filter(|id| !id.is_empty());
        match rbac.project_token_state(project, role, id.as_deref(), issued_at) {
            ProjectTokenState::Listed => {}
            ProjectTokenState::NoProject => {
                return Err(AuthError::TokenInvalid("the project no longer exists"));
            }
            ProjectTokenState::NoRole => return Err(AuthError::TokenInvalid("the role no longer exists")),
            ProjectTokenState::Revoked => return Err(AuthError::TokenRevoked),
        }
        Ok(ProjectClaims {
            project: project.to_string(),
            role: role.to_string(),
            id,
            issued_at,
            expires_at: wire.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Accounts, ManualClock, SecretKey};
    use base64::Engine;
    use berth_api::AppProject;
    use berth_api::project::{AppProjectStatus, JwtTokens, ProjectRole};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use std::sync::Arc;
    use std::time::SystemTime;

    const START: i64 = 1_700_000_000;

    fn sessions() -> (Arc<ManualClock>, SessionManager) {
        let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(START as u64)));
        let sessions = SessionManager::new(SecretKey::new(b"test-key".to_vec()), Accounts::default())
            .with_clock(clock.clone());
        (clock, sessions)
    }

    /// A project with role `ci` (`applications, get, <name>/*`) listing `tokens` in its status.
    fn project(name: &str, tokens: &[JwtToken]) -> AppProject {
        let mut project = AppProject::default();
        project.metadata.name = Some(name.into());
        project.spec.roles = vec![ProjectRole {
            name: "ci".into(),
            policies: vec![format!("p, proj:{name}:ci, applications, get, {name}/*, allow")],
            ..Default::default()
        }];
        project.status = Some(AppProjectStatus {
            jwt_tokens_by_role: [("ci".to_string(), JwtTokens { items: tokens.to_vec() })].into(),
        });
        project
    }

    fn rbac(projects: &[AppProject]) -> Enforcer {
        Enforcer::default().with_project_roles(projects)
    }

    fn payload(token: &str) -> serde_json::Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap())
            .unwrap()
    }

    fn forge(key: &[u8], claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    #[test]
    fn a_project_token_carries_argo_cds_claims_and_verifies_once_listed() {
        let (_, sessions) = sessions();
        let issued = sessions.issue_project_token("shop", "ci", None, Some("deploy")).unwrap();
        assert_eq!(issued.record, JwtToken { iat: START, exp: None, id: Some("deploy".into()) });
        let p = payload(&issued.token);
        assert_eq!(jsonwebtoken::decode_header(&issued.token).unwrap().alg, Algorithm::HS256);
        assert_eq!(
            (p["iss"].as_str(), p["sub"].as_str(), p["jti"].as_str()),
            (Some("argocd"), Some("proj:shop:ci"), Some("deploy"))
        );
        assert_eq!((p["iat"].as_i64(), p["nbf"].as_i64()), (Some(START), Some(START)));
        assert!(p.get("exp").is_none(), "no expiry asked, no exp");
        assert!(is_project_token(&issued.token));
        let unlisted = rbac(&[project("shop", &[])]);
        assert!(matches!(
            sessions.verify_project_token(&issued.token, &unlisted),
            Err(AuthError::TokenRevoked)
        ));
        let listed = rbac(&[project("shop", std::slice::from_ref(&issued.record))]);
        let claims = sessions.verify_project_token(&issued.token, &listed).unwrap();
        assert_eq!((claims.project.as_str(), claims.role.as_str()), ("shop", "ci"));
        assert_eq!(claims.subject(), Subject::user("proj:shop:ci"));
        assert!(sessions.verify(&issued.token).is_err(), "never taken for an account's token");
    }

    #[test]
    fn a_project_token_without_an_id_gets_a_uuid_and_one_with_an_expiry_an_exp() {
        let (clock, sessions) = sessions();
        let issued = sessions.issue_project_token("shop", "ci", Some(Duration::from_secs(60)), None).unwrap();
        assert_eq!(issued.record.id.as_deref().map(str::len), Some(36));
        assert_eq!(payload(&issued.token)["exp"].as_i64(), Some(START + 60));
        let rbac = rbac(&[project("shop", std::slice::from_ref(&issued.record))]);
        assert!(sessions.verify_project_token(&issued.token, &rbac).is_ok());
        clock.advance(Duration::from_secs(60));
        assert!(matches!(sessions.verify_project_token(&issued.token, &rbac), Err(AuthError::TokenExpired)));
    }

    #[test]
    fn a_project_token_signed_with_another_key_or_unsigned_is_refused() {
        let (_, sessions) = sessions();
        let record = JwtToken { iat: START, exp: None, id: Some("t".into()) };
        let rbac = rbac(&[project("shop", &[record])]);
        let claims = serde_json::json!({"iss": "argocd", "sub": "proj:shop:ci", "iat": START, "nbf": START, "jti": "t"});
        assert!(sessions.verify_project_token(&forge(b"test-key", claims.clone()), &rbac).is_ok());
        let other = forge(b"another-key", claims.clone());
        assert!(matches!(
            sessions.verify_project_token(&other, &rbac),
            Err(AuthError::TokenInvalid("signature is invalid"))
        ));
        let unsigned = format!(
            "{}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert!(is_project_token(&unsigned), "routed to the project check, which refuses it");
        assert!(sessions.verify_project_token(&unsigned, &rbac).is_err());
        let mut dex = claims;
        dex["iss"] = "dex".into();
        assert!(matches!(
            sessions.verify_project_token(&forge(b"test-key", dex), &rbac),
            Err(AuthError::TokenInvalid("not issued by argocd"))
        ));
    }

    #[test]
    fn a_token_of_an_unknown_project_or_a_removed_role_is_refused() {
        let (_, sessions) = sessions();
        let issued = sessions.issue_project_token("shop", "ci", None, None).unwrap();
        let other = rbac(&[project("blog", std::slice::from_ref(&issued.record))]);
        assert!(matches!(
            sessions.verify_project_token(&issued.token, &other),
            Err(AuthError::TokenInvalid("the project no longer exists"))
        ));
        let mut without_role = project("shop", std::slice::from_ref(&issued.record));
        without_role.spec.roles.clear();
        assert!(matches!(
            sessions.verify_project_token(&issued.token, &rbac(&[without_role])),
            Err(AuthError::TokenInvalid("the role no longer exists"))
        ));
    }

    #[test]
    fn a_token_removed_from_the_status_is_revoked_and_legacy_spec_tokens_still_count() {
        let (_, sessions) = sessions();
        let issued = sessions.issue_project_token("shop", "ci", None, Some("one")).unwrap();
        let kept = JwtToken { iat: START - 10, exp: None, id: Some("other".into()) };
        let removed = rbac(&[project("shop", std::slice::from_ref(&kept))]);
        assert!(matches!(
            sessions.verify_project_token(&issued.token, &removed),
            Err(AuthError::TokenRevoked)
        ));
        let mut in_spec_only = project("shop", &[kept]);
        in_spec_only.spec.roles[0].jwt_tokens = vec![issued.record.clone()];
        assert!(
            matches!(
                sessions.verify_project_token(&issued.token, &rbac(&[in_spec_only.clone()])),
                Err(AuthError::TokenRevoked)
            ),
            "the status decides once it lists the role's tokens"
        );
        let mut legacy = in_spec_only;
        legacy.status = None;
        assert!(sessions.verify_project_token(&issued.token, &rbac(&[legacy])).is_ok());
        // A token without a jti (before Argo CD 1.8) is known by its issued-at time.
        let old =
            forge(b"test-key", serde_json::json!({"iss": "argocd", "sub": "proj:shop:ci", "iat": START - 5}));
        let by_iat = rbac(&[project("shop", &[JwtToken { iat: START - 5, exp: None, id: None }])]);
        assert!(sessions.verify_project_token(&old, &by_iat).is_ok());
        assert!(matches!(sessions.verify_project_token(&old, &removed), Err(AuthError::TokenRevoked)));
    }

    #[test]
    fn a_token_of_project_a_cannot_reach_project_b() {
        let (_, sessions) = sessions();
        let issued = sessions.issue_project_token("shop", "ci", None, None).unwrap();
        let mut blog = project("blog", &[]);
        blog.spec.roles[0].policies = vec!["p, proj:blog:ci, applications, *, blog/*, allow".into()];
        let rbac = Enforcer::from_config("p, proj:shop:ci, applications, sync, */*, allow", None, None, true)
            .unwrap()
            .with_project_roles(&[project("shop", std::slice::from_ref(&issued.record)), blog]);
        let subject = sessions.verify_project_token(&issued.token, &rbac).unwrap().subject();
        assert!(rbac.enforce(&subject, "applications", "get", "shop/web"));
        assert!(!rbac.enforce(&subject, "applications", "get", "blog/post"));
        assert!(!rbac.enforce(&subject, "applications", "sync", "blog/post"), "not even by a global grant");
        assert!(!rbac.enforce(&subject, "applications", "delete", "shop/web"));
    }

    #[test]
    fn account_tokens_are_not_project_tokens_and_nothing_shows_a_token() {
        let (_, sessions) = sessions();
        let account =
            forge(b"test-key", serde_json::json!({"iss": "argocd", "sub": "admin:login", "iat": START}));
        assert!(!is_project_token(&account));
        assert!(!is_project_token("not a token"));
        assert!(matches!(
            sessions.verify_project_token(&account, &Enforcer::default()),
            Err(AuthError::TokenInvalid("not a project token"))
        ));
        let issued = sessions.issue_project_token("shop", "ci", None, None).unwrap();
        let err = sessions.verify_project_token(&issued.token, &Enforcer::default()).unwrap_err();
        let shown = format!("{issued:?} {err} {err:?}");
        assert!(!shown.contains(&issued.token), "{shown}");
    }
}
