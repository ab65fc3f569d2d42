//! Kubernetes object names: the one check for a name berth itself makes up (a generated Application's).

/// `Ok` when `name` is a DNS-1123 subdomain, as the API server requires of most objects' names: at most
/// 253 characters of `a-z`, `0-9`, `-` and `.`, starting and ending with a letter or digit. The error
/// says what is wrong, as the API server does.
///
/// ```
/// assert!(berth_api::names::check_subdomain("web-prod").is_ok());
/// assert!(berth_api::names::check_subdomain("Web_Prod").is_err());
/// ```
pub fn check_subdomain(name: &str) -> Result<(), String> {
    const RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
    if name.is_empty() {
        return Err("a name is required".to_string());
    }
    if name.len() > 253 {
        return Err(format!("must be no more than 253 characters (is {})", name.len()));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.');
    if ok { Ok(()) } else { Err(format!("{name:?}: {RULE}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_names_with_dashes_and_dots_pass_and_others_are_refused() {
        for good in ["a", "web-prod", "api.v2", "0x"] {
            assert!(check_subdomain(good).is_ok(), "{good}");
        }
        for bad in ["", "-web", "web-", "Web", "web_prod", "web prod", "../x", &"a".repeat(254)] {
            assert!(check_subdomain(bad).is_err(), "{bad:?}");
        }
    }
}
