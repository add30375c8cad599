//! `priority` and a timeout: genq's additions to every dialect's
//! submission (docs/scheduling.md), each dialect naming the fields in its
//! own style.

use genq_engine::job::{MAX_TIMEOUT_SECONDS, PRIORITY_RANGE};

/// A submission's scheduling fields, checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scheduling {
    pub priority: i32,
    pub timeout_seconds: Option<u32>,
}

impl Scheduling {
    /// `names`: the dialect's names of the two fields, for the message.
    pub fn check(
        priority: Option<i64>,
        timeout_seconds: Option<i64>,
        names: [&str; 2],
    ) -> Result<Self, String> {
        let [priority_name, timeout_name] = names;
        let priority = match priority {
            None => 0,
            Some(p) => i32::try_from(p)
                .ok()
                .filter(|p| PRIORITY_RANGE.contains(p))
                .ok_or_else(|| {
                    format!(
                        "{priority_name} must be an integer from {} to {}",
                        PRIORITY_RANGE.start(),
                        PRIORITY_RANGE.end()
                    )
                })?,
        };
        let timeout_seconds = timeout_seconds
            .map(|t| {
                u32::try_from(t)
                    .ok()
                    .filter(|t| (1..=MAX_TIMEOUT_SECONDS).contains(t))
                    .ok_or_else(|| {
                        format!("{timeout_name} must be an integer from 1 to {MAX_TIMEOUT_SECONDS}")
                    })
            })
            .transpose()?;
        Ok(Self {
            priority,
            timeout_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 2] = ["priority", "timeoutSeconds"];

    #[test]
    fn bounds_are_inclusive_and_named() {
        assert_eq!(
            Scheduling::check(None, None, NAMES),
            Ok(Scheduling::default())
        );
        let s = Scheduling::check(Some(-10), Some(1), NAMES).unwrap();
        assert_eq!((s.priority, s.timeout_seconds), (-10, Some(1)));
        assert_eq!(
            Scheduling::check(Some(10), None, NAMES).unwrap().priority,
            10
        );
        let e = Scheduling::check(Some(11), None, NAMES).unwrap_err();
        assert!(e.starts_with("priority must be"), "{e}");
        let e = Scheduling::check(None, Some(0), NAMES).unwrap_err();
        assert!(e.starts_with("timeoutSeconds must be"), "{e}");
        assert!(Scheduling::check(Some(i64::MAX), None, NAMES).is_err());
        assert!(Scheduling::check(None, Some(i64::from(MAX_TIMEOUT_SECONDS) + 1), NAMES).is_err());
    }
}
