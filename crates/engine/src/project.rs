//! Projects: templates an account keeps and renders jobs from. The engine
//! stores a project's template as the document its author wrote (JSON text,
//! in the author's key order); what the document means is the template
//! crate's concern. A job copies the template it renders into its own
//! input, so editing a project never changes a job already accepted.

use crate::ids::{AccountId, ProjectId};
use crate::time::Millis;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub account_id: AccountId,
    pub name: String,
    /// What the project makes (a job type of the dialect that keeps it).
    pub kind: String,
    /// Active from this instant (inclusive), or always.
    pub starts_at: Option<Millis>,
    /// Active until this instant (inclusive), or always.
    pub ends_at: Option<Millis>,
    /// The template document, as JSON text.
    pub template: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A project as its author gives it (create or replace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProject {
    pub name: String,
    pub kind: String,
    pub starts_at: Option<Millis>,
    pub ends_at: Option<Millis>,
    pub template: String,
}

impl NewProject {
    pub(crate) fn into_project(
        self,
        id: ProjectId,
        account_id: AccountId,
        created_at: Millis,
        updated_at: Millis,
    ) -> Project {
        Project {
            id,
            account_id,
            name: self.name,
            kind: self.kind,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            template: self.template,
            created_at,
            updated_at,
        }
    }
}

impl Project {
    /// Whether the project may be rendered at `now`.
    pub fn active_at(&self, now: Millis) -> bool {
        self.starts_at.is_none_or(|start| start <= now) && self.ends_at.is_none_or(|end| now <= end)
    }
}
