//! Server calls: create, get, list, update, actions, delete, volumes, user data.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{Body, Call, Idempotency, ScalewayClient};
use crate::error::ScalewayError;
use crate::operations as op;
use crate::types::{
    CreateServerRequest, ListServersFilter, Server, ServerAction, Task, UpdateServerRequest,
};

/// Upper bound of pages followed by a list, against a server that never stops paginating.

#[derive(Deserialize)]
struct ServerEnvelope {
    server: Server,
}

#[derive(Deserialize)]
struct ServersPage {
    #[serde(default)]
    servers: Vec<Server>,
    #[serde(default)]
    total_count: Option<u64>,
}

impl super::paging::ListPage for ServersPage {
    type Item = Server;
    fn into_parts(self) -> (Vec<Server>, Option<u64>) {
        (self.servers, self.total_count)
    }
    fn id(item: &Server) -> &str {
        &item.id
    }
}

#[derive(Deserialize)]
struct TaskEnvelope {
    task: Task,
}

#[derive(Serialize)]
struct ActionBody {
    action: &'static str,
}

#[derive(Serialize)]
struct AttachBody<'a> {
    volume_id: &'a str,
    volume_type: &'a str,
}

#[derive(Serialize)]
struct DetachBody<'a> {
    volume_id: &'a str,
}

impl ScalewayClient {
    /// `POST /servers`: creates a stopped server. Not retried on 5xx/timeouts (see the module
    /// documentation): on [`ScalewayError::outcome_unknown`] errors, look the server up by tag.
    /// A request without `project` uses the configured project.
    pub async fn create_server(
        &self,
        zone: &str,
        request: &CreateServerRequest,
    ) -> Result<Server, ScalewayError> {
        let mut request = request.clone();
        if request.project.is_none() {
            request.project = Some(self.project_id().to_string());
        }
        let reply = self
            .execute(Call {
                op: op::CREATE_SERVER,
                method: Method::POST,
                url: self.instance_url(zone, &["servers"], &[])?,
                body: Self::json_body(&request)?,
                idempotency: Idempotency::Create,
            })
            .await?;
        Ok(reply.json::<ServerEnvelope>()?.server)
    }

    /// `GET /servers/{id}`.
    pub async fn get_server(&self, zone: &str, server_id: &str) -> Result<Server, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::GET_SERVER,
                method: Method::GET,
                url: self.instance_url(zone, &["servers", server_id], &[])?,
                body: Body::Empty,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        Ok(reply.json::<ServerEnvelope>()?.server)
    }

    /// `GET /servers` with filters, following pagination until every page is read.
    pub async fn list_servers(
        &self,
        zone: &str,
        filter: &ListServersFilter,
    ) -> Result<Vec<Server>, ScalewayError> {
        let per_page = filter.per_page.unwrap_or(100).clamp(1, 100);
        let mut base_query: Vec<(&str, String)> = vec![("per_page", per_page.to_string())];
        if !filter.tags.is_empty() {
            base_query.push(("tags", filter.tags.join(",")));
        }
        if let Some(name) = &filter.name {
            base_query.push(("name", name.clone()));
        }
        if let Some(state) = &filter.state {
            base_query.push(("state", state.as_str().to_string()));
        }
        if let Some(commercial_type) = &filter.commercial_type {
            base_query.push(("commercial_type", commercial_type.clone()));
        }
        if let Some(project) = &filter.project {
            base_query.push(("project", project.clone()));
        }

        self.list_all::<ServersPage>(op::LIST_SERVERS, per_page, &base_query, |q| {
            self.instance_url(zone, &["servers"], q)
        })
        .await
    }

    /// `PATCH /servers/{id}`: changes the name, tags or dynamic IP flag.
    pub async fn update_server(
        &self,
        zone: &str,
        server_id: &str,
        update: &UpdateServerRequest,
    ) -> Result<Server, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::UPDATE_SERVER,
                method: Method::PATCH,
                url: self.instance_url(zone, &["servers", server_id], &[])?,
                body: Self::json_body(update)?,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        Ok(reply.json::<ServerEnvelope>()?.server)
    }

    /// `POST /servers/{id}/action`: returns the task (the server changes state asynchronously;
    /// poll [`ScalewayClient::get_server`] until a settled state).
    pub async fn server_action(
        &self,
        zone: &str,
        server_id: &str,
        action: ServerAction,
    ) -> Result<Task, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::SERVER_ACTION,
                method: Method::POST,
                url: self.instance_url(zone, &["servers", server_id, "action"], &[])?,
                body: Self::json_body(&ActionBody {
                    action: action.as_str(),
                })?,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        Ok(reply.json::<TaskEnvelope>()?.task)
    }

    /// `DELETE /servers/{id}`: the server must be stopped.
    pub async fn delete_server(&self, zone: &str, server_id: &str) -> Result<(), ScalewayError> {
        self.execute(Call {
            op: op::DELETE_SERVER,
            method: Method::DELETE,
            url: self.instance_url(zone, &["servers", server_id], &[])?,
            body: Body::Empty,
            idempotency: Idempotency::Idempotent,
        })
        .await?;
        Ok(())
    }

    /// `POST /servers/{id}/attach-volume` with a Block Storage volume (`sbs_volume`).
    pub async fn attach_volume(
        &self,
        zone: &str,
        server_id: &str,
        volume_id: &str,
    ) -> Result<Server, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::ATTACH_VOLUME,
                method: Method::POST,
                url: self.instance_url(zone, &["servers", server_id, "attach-volume"], &[])?,
                body: Self::json_body(&AttachBody {
                    volume_id,
                    volume_type: "sbs_volume",
                })?,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        Ok(reply.json::<ServerEnvelope>()?.server)
    }

    /// `POST /servers/{id}/detach-volume`.
    pub async fn detach_volume(
        &self,
        zone: &str,
        server_id: &str,
        volume_id: &str,
    ) -> Result<Server, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::DETACH_VOLUME,
                method: Method::POST,
                url: self.instance_url(zone, &["servers", server_id, "detach-volume"], &[])?,
                body: Self::json_body(&DetachBody { volume_id })?,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        Ok(reply.json::<ServerEnvelope>()?.server)
    }

    /// `PATCH /servers/{id}/user_data/{key}` (e.g. key `cloud-init`), body sent as text/plain.
    pub async fn set_user_data(
        &self,
        zone: &str,
        server_id: &str,
        key: &str,
        content: &str,
    ) -> Result<(), ScalewayError> {
        self.execute(Call {
            op: op::SET_USER_DATA,
            method: Method::PATCH,
            url: self.instance_url(zone, &["servers", server_id, "user_data", key], &[])?,
            body: Body::Text(content.to_string()),
            idempotency: Idempotency::Idempotent,
        })
        .await?;
        Ok(())
    }

    /// `GET /servers/{id}/user_data/{key}`.
    pub async fn get_user_data(
        &self,
        zone: &str,
        server_id: &str,
        key: &str,
    ) -> Result<String, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::GET_USER_DATA,
                method: Method::GET,
                url: self.instance_url(zone, &["servers", server_id, "user_data", key], &[])?,
                body: Body::Empty,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        String::from_utf8(reply.body.to_vec())
            .map_err(|_| ScalewayError::Decode("user data is not UTF-8".to_string()))
    }

    /// `DELETE /servers/{id}/user_data/{key}`.
    pub async fn delete_user_data(
        &self,
        zone: &str,
        server_id: &str,
        key: &str,
    ) -> Result<(), ScalewayError> {
        self.execute(Call {
            op: op::DELETE_USER_DATA,
            method: Method::DELETE,
            url: self.instance_url(zone, &["servers", server_id, "user_data", key], &[])?,
            body: Body::Empty,
            idempotency: Idempotency::Idempotent,
        })
        .await?;
        Ok(())
    }
}
