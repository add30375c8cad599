//! The shared body of `ProjectDb`.

/// `ProjectDb` for `$db`: the same statements on both backends.
macro_rules! project_db {
    ($db:ty) => {
        #[::async_trait::async_trait]
        impl ::genq_engine::db::ProjectDb for $db {
            async fn insert_project(
                &self,
                project: &::genq_engine::Project,
            ) -> ::genq_engine::db::DbResult<()> {
                ::sqlx::query($crate::sql::INSERT_PROJECT)
                    .bind(project.id.to_string())
                    .bind(project.account_id.to_string())
                    .bind($crate::codec::text(&project.name))
                    .bind(&project.kind)
                    .bind(project.starts_at)
                    .bind(project.ends_at)
                    .bind($crate::codec::text(&project.template))
                    .bind(project.created_at)
                    .bind(project.updated_at)
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("inserting a project"))?;
                Ok(())
            }

            async fn get_project(
                &self,
                account: ::genq_engine::AccountId,
                id: ::genq_engine::ProjectId,
            ) -> ::genq_engine::db::DbResult<Option<::genq_engine::Project>> {
                let row = ::sqlx::query(&$crate::codec::PROJECT_BY_ID)
                    .bind(id.to_string())
                    .bind(account.to_string())
                    .fetch_optional(self.reads())
                    .await
                    .map_err($crate::codec::db_err("reading a project"))?;
                row.as_ref()
                    .map($crate::codec::project_from_row)
                    .transpose()
            }

            async fn list_projects(
                &self,
                account: ::genq_engine::AccountId,
            ) -> ::genq_engine::db::DbResult<Vec<::genq_engine::Project>> {
                let rows = ::sqlx::query(&$crate::codec::PROJECTS_OF_ACCOUNT)
                    .bind(account.to_string())
                    .fetch_all(self.reads())
                    .await
                    .map_err($crate::codec::db_err("listing projects"))?;
                rows.iter().map($crate::codec::project_from_row).collect()
            }

            async fn update_project(
                &self,
                project: &::genq_engine::Project,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::UPDATE_PROJECT)
                    .bind($crate::codec::text(&project.name))
                    .bind(&project.kind)
                    .bind(project.starts_at)
                    .bind(project.ends_at)
                    .bind($crate::codec::text(&project.template))
                    .bind(project.updated_at)
                    .bind(project.id.to_string())
                    .bind(project.account_id.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("updating a project"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_project(
                &self,
                account: ::genq_engine::AccountId,
                id: ::genq_engine::ProjectId,
            ) -> ::genq_engine::db::DbResult<bool> {
                let done = ::sqlx::query($crate::sql::DELETE_PROJECT)
                    .bind(id.to_string())
                    .bind(account.to_string())
                    .execute(self.writes())
                    .await
                    .map_err($crate::codec::db_err("deleting a project"))?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use project_db;
