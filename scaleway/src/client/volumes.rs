//! Block Storage calls (`/block/v1alpha1/zones/{zone}/volumes`).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{Body, Call, Idempotency, ScalewayClient};
use crate::error::ScalewayError;
use crate::operations as op;
use crate::types::{CreateVolumeRequest, ListVolumesFilter, Volume};

#[derive(Serialize)]
struct CreateBody<'a> {
    name: &'a str,
    project_id: &'a str,
    from_empty: FromEmpty,
    #[serde(skip_serializing_if = "Option::is_none")]
    perf_iops: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
}

#[derive(Serialize)]
struct FromEmpty {
    size: u64,
}

#[derive(Deserialize)]
struct VolumesPage {
    #[serde(default)]
    volumes: Vec<Volume>,
    #[serde(default)]
    total_count: Option<u64>,
}

impl super::paging::ListPage for VolumesPage {
    type Item = Volume;
    fn into_parts(self) -> (Vec<Volume>, Option<u64>) {
        (self.volumes, self.total_count)
    }
    fn id(item: &Volume) -> &str {
        &item.id
    }
}

impl ScalewayClient {
    /// `POST volumes`: an empty volume (status `creating`, then `available`). Not retried on
    /// 5xx/timeouts: on [`ScalewayError::outcome_unknown`] errors, look the volume up by tag.
    pub async fn create_volume(
        &self,
        zone: &str,
        request: &CreateVolumeRequest,
    ) -> Result<Volume, ScalewayError> {
        let body = CreateBody {
            name: &request.name,
            project_id: request.project_id.as_deref().unwrap_or(self.project_id()),
            from_empty: FromEmpty { size: request.size },
            perf_iops: request.perf_iops,
            tags: &request.tags,
        };
        let reply = self
            .execute(Call {
                op: op::CREATE_VOLUME,
                method: Method::POST,
                url: self.block_url(zone, &["volumes"], &[])?,
                body: Self::json_body(&body)?,
                idempotency: Idempotency::Create,
            })
            .await?;
        reply.json()
    }

    /// `GET volumes/{id}`.
    pub async fn get_volume(&self, zone: &str, volume_id: &str) -> Result<Volume, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::GET_VOLUME,
                method: Method::GET,
                url: self.block_url(zone, &["volumes", volume_id], &[])?,
                body: Body::Empty,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        reply.json()
    }

    /// `GET volumes` with filters (tags: all must match), following pagination.
    pub async fn list_volumes(
        &self,
        zone: &str,
        filter: &ListVolumesFilter,
    ) -> Result<Vec<Volume>, ScalewayError> {
        let page_size = filter.page_size.unwrap_or(100).clamp(1, 100);
        let mut base_query: Vec<(&str, String)> = vec![("page_size", page_size.to_string())];
        for tag in &filter.tags {
            base_query.push(("tags", tag.clone()));
        }
        if let Some(project) = &filter.project_id {
            base_query.push(("project_id", project.clone()));
        }
        if let Some(name) = &filter.name {
            base_query.push(("name", name.clone()));
        }
        self.list_all::<VolumesPage>(op::LIST_VOLUMES, page_size, &base_query, |q| {
            self.block_url(zone, &["volumes"], q)
        })
        .await
    }

    /// `DELETE volumes/{id}`: refused while the volume is attached.
    pub async fn delete_volume(&self, zone: &str, volume_id: &str) -> Result<(), ScalewayError> {
        self.execute(Call {
            op: op::DELETE_VOLUME,
            method: Method::DELETE,
            url: self.block_url(zone, &["volumes", volume_id], &[])?,
            body: Body::Empty,
            idempotency: Idempotency::Idempotent,
        })
        .await?;
        Ok(())
    }
}
