//! Flexible IP calls (`/instance/v1/zones/{zone}/ips`).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{Body, Call, Idempotency, ScalewayClient};
use crate::error::ScalewayError;
use crate::operations as op;
use crate::types::{CreateIpRequest, FlexibleIp};

#[derive(Deserialize)]
struct IpEnvelope {
    ip: FlexibleIp,
}

#[derive(Serialize)]
struct AttachBody<'a> {
    server: Option<&'a str>,
}

impl ScalewayClient {
    /// `POST /ips`: a detached flexible IP. Not retried on 5xx/timeouts (see the module docs).
    pub async fn create_ip(
        &self,
        zone: &str,
        request: &CreateIpRequest,
    ) -> Result<FlexibleIp, ScalewayError> {
        let mut request = request.clone();
        if request.project.is_none() {
            request.project = Some(self.project_id().to_string());
        }
        let reply = self
            .execute(Call {
                op: op::CREATE_IP,
                method: Method::POST,
                url: self.instance_url(zone, &["ips"], &[])?,
                body: Self::json_body(&request)?,
                idempotency: Idempotency::Create,
            })
            .await?;
        Ok(reply.json::<IpEnvelope>()?.ip)
    }

    /// `GET /ips/{id}`.
    pub async fn get_ip(&self, zone: &str, ip_id: &str) -> Result<FlexibleIp, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::GET_IP,
                method: Method::GET,
                url: self.instance_url(zone, &["ips", ip_id], &[])?,
                body: Body::Empty,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        Ok(reply.json::<IpEnvelope>()?.ip)
    }

    /// `PATCH /ips/{id} {"server": id}`: attaches the IP to a server.
    pub async fn attach_ip(
        &self,
        zone: &str,
        ip_id: &str,
        server_id: &str,
    ) -> Result<FlexibleIp, ScalewayError> {
        self.patch_ip(zone, ip_id, Some(server_id)).await
    }

    /// `PATCH /ips/{id} {"server": null}`: detaches the IP.
    pub async fn detach_ip(&self, zone: &str, ip_id: &str) -> Result<FlexibleIp, ScalewayError> {
        self.patch_ip(zone, ip_id, None).await
    }

    async fn patch_ip(
        &self,
        zone: &str,
        ip_id: &str,
        server: Option<&str>,
    ) -> Result<FlexibleIp, ScalewayError> {
        let reply = self
            .execute(Call {
                op: op::UPDATE_IP,
                method: Method::PATCH,
                url: self.instance_url(zone, &["ips", ip_id], &[])?,
                body: Self::json_body(&AttachBody { server })?,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        Ok(reply.json::<IpEnvelope>()?.ip)
    }

    /// `DELETE /ips/{id}`.
    pub async fn delete_ip(&self, zone: &str, ip_id: &str) -> Result<(), ScalewayError> {
        self.execute(Call {
            op: op::DELETE_IP,
            method: Method::DELETE,
            url: self.instance_url(zone, &["ips", ip_id], &[])?,
            body: Body::Empty,
            idempotency: Idempotency::Idempotent,
        })
        .await?;
        Ok(())
    }
}
