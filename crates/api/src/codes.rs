//! The closed vocabularies of an Application's status: an operation's phase, a sync status and the
//! condition types. Typed here; on the wire they stay the strings Argo CD writes.
//!
//! ```
//! use berth_api::codes::OperationPhase;
//! assert_eq!(OperationPhase::parse("Terminating"), Some(OperationPhase::Terminating));
//! assert!(OperationPhase::Error.is_failure());
//! assert!(!OperationPhase::Running.is_completed());
//! ```

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string Argo CD writes.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }

            /// The value a status string names; `None` for a string outside the vocabulary.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// `status.operationState.phase`.
    OperationPhase {
        /// Started and not finished; continued by the controller on its next pass.
        Running,
        /// The API server asked the controller to stop it; the controller records it as Failed.
        Terminating,
        /// It ran and something it applied (or a hook) failed.
        Failed,
        /// It could not run (the target could not be loaded, an invalid spec).
        Error,
        Succeeded,
    }
);

impl OperationPhase {
    /// Finished one way or the other: nothing more will happen to this operation.
    pub fn is_completed(self) -> bool {
        matches!(self, Self::Failed | Self::Error | Self::Succeeded)
    }

    /// Finished without success.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Error)
    }

    /// The phase an operation state is in; an unknown string reads as `Error`.
    pub fn of(state: &crate::application::OperationState) -> Self {
        Self::parse(&state.phase).unwrap_or(Self::Error)
    }
}

vocabulary!(
    /// `status.sync.status` and a resource's `status`.
    SyncCode { Synced, OutOfSync, Unknown }
);

vocabulary!(
    /// `status.conditions[].type` as berth writes them (Argo CD's names).
    ConditionType {
        /// The spec cannot be acted on (no project, a destination that is not configured).
        InvalidSpecError,
        /// The target state could not be loaded or compared.
        ComparisonError,
        /// The last operation failed.
        SyncError,
        /// A desired object is tracked by another Application.
        SharedResourceWarning,
        /// A tracked object the project does not permit is left alone.
        ExcludedResourceWarning,
        /// The same object appears twice among the rendered manifests.
        RepeatedResourceWarning,
        /// Status keeps a summary of sources too large to copy whole, or the API server refused it as too
        /// large (berth's own type; Argo CD has none).
        StatusTooLargeWarning,
        UnknownError,
    }
);

impl ConditionType {
    /// Errors make an Application's status say something is wrong; warnings only inform.
    pub fn is_error(self) -> bool {
        self.as_str().ends_with("Error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_from_its_string() {
        for p in OperationPhase::ALL {
            assert_eq!(OperationPhase::parse(p.as_str()), Some(*p));
        }
        for s in SyncCode::ALL {
            assert_eq!(SyncCode::parse(&s.to_string()), Some(*s));
        }
        for c in ConditionType::ALL {
            assert_eq!(ConditionType::parse(c.as_str()), Some(*c));
        }
        assert_eq!(OperationPhase::parse("running"), None, "the wire is case-sensitive");
    }

    #[test]
    fn only_finished_phases_are_completed_and_only_failures_fail() {
        let completed: Vec<_> = OperationPhase::ALL.iter().filter(|p| p.is_completed()).collect();
        assert_eq!(completed, [&OperationPhase::Failed, &OperationPhase::Error, &OperationPhase::Succeeded]);
        assert!(!OperationPhase::Terminating.is_failure());
        assert!(ConditionType::SyncError.is_error());
        assert!(!ConditionType::SharedResourceWarning.is_error());
    }
}
