//! Projects (the statements are the same on both backends: `crate::shared`).

use super::PostgresDb;
use crate::shared::project_db;

project_db!(PostgresDb);
