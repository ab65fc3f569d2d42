//! Nothing here yet: see the crate description and ../../README.md's architecture section.
