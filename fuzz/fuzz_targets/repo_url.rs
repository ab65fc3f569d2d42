//! Credentials follow the parsed URL: a `repo-creds` prefix that covers a repository URL names the same
//! scheme, host and port, so no user info, suffix or spelling sends them to another server.
#![no_main]

use berth_repo::url::{RepoUrl, credential_prefix_matches, normalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (prefix, repo) = input;
    let _ = normalize(repo);
    if credential_prefix_matches(prefix, repo) {
        let (p, r) = (RepoUrl::parse(prefix), RepoUrl::parse(repo));
        let (Some(p), Some(r)) = (p, r) else { panic!("a match of unparsable URLs: {prefix:?} {repo:?}") };
        assert_eq!(p.host, r.host, "{prefix:?} covers {repo:?} on another host");
        assert_eq!(p.effective_port(), r.effective_port(), "{prefix:?} covers {repo:?} on another port");
        assert_eq!(p.scheme, r.scheme, "{prefix:?} covers {repo:?} with another scheme");
    }
});
