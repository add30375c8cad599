//! Projects (the statements are the same on both backends: `crate::shared`).

use super::SqliteDb;
use crate::shared::project_db;

project_db!(SqliteDb);
