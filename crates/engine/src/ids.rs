//! The ids every other module names: UUID v7, so that their text order is
//! creation order (lists paginate by `id < cursor` without a second column).

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub ::uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(::uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// An account: the owner of keys, jobs, credits and a webhook secret.
    AccountId
);
uuid_id!(
    /// An API key (its record; the key itself is never stored).
    KeyId
);
uuid_id!(
    /// A job. Time-ordered, so ids sort by creation.
    JobId
);
uuid_id!(
    /// A project: a template an account renders jobs from.
    ProjectId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_sort_by_creation() {
        let ids: Vec<JobId> = (0..100).map(|_| JobId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|id| id.to_string());
        assert_eq!(ids, sorted);
    }
}
