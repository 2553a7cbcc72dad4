//! Catalog calls: `GET /products/servers` and `GET /products/servers/availability`.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use super::servers::{MAX_PAGES, last_page};
use super::{Body, Call, Idempotency, ScalewayClient};
use crate::error::ScalewayError;
use crate::operations as op;
use crate::types::{Availability, ServerProduct};

const PER_PAGE: u32 = 100;

#[derive(Deserialize)]
struct ProductsPage {
    #[serde(default)]
    servers: BTreeMap<String, ServerProduct>,
    #[serde(default)]
    total_count: Option<u64>,
}

#[derive(Deserialize)]
struct AvailabilityEntry {
    availability: Availability,
}

#[derive(Deserialize)]
struct AvailabilityPage {
    #[serde(default)]
    servers: BTreeMap<String, AvailabilityEntry>,
    #[serde(default)]
    total_count: Option<u64>,
}

impl ScalewayClient {
    /// Every commercial type offered in `zone`, sorted by name, with exact prices.
    pub async fn list_server_products(
        &self,
        zone: &str,
    ) -> Result<Vec<ServerProduct>, ScalewayError> {
        let mut products = BTreeMap::new();
        for page in 1..=MAX_PAGES {
            let reply = self
                .execute(Call {
                    op: op::LIST_SERVER_PRODUCTS,
                    method: Method::GET,
                    url: self.instance_url(
                        zone,
                        &["products", "servers"],
                        &[
                            ("page", page.to_string()),
                            ("per_page", PER_PAGE.to_string()),
                        ],
                    )?,
                    body: Body::Empty,
                    idempotency: Idempotency::Idempotent,
                })
                .await?;
            let body: ProductsPage = reply.json()?;
            let total = body.total_count.or(reply.total_count());
            let got = body.servers.len();
            for (commercial_type, mut product) in body.servers {
                product.commercial_type.clone_from(&commercial_type);
                products.insert(commercial_type, product);
            }
            if got == 0 || last_page(page, PER_PAGE, got, total) {
                break;
            }
        }
        Ok(products.into_values().collect())
    }

    /// Stock level of every commercial type in `zone`.
    pub async fn server_availability(
        &self,
        zone: &str,
    ) -> Result<BTreeMap<String, Availability>, ScalewayError> {
        let mut levels = BTreeMap::new();
        for page in 1..=MAX_PAGES {
            let reply = self
                .execute(Call {
                    op: op::SERVER_AVAILABILITY,
                    method: Method::GET,
                    url: self.instance_url(
                        zone,
                        &["products", "servers", "availability"],
                        &[
                            ("page", page.to_string()),
                            ("per_page", PER_PAGE.to_string()),
                        ],
                    )?,
                    body: Body::Empty,
                    idempotency: Idempotency::Idempotent,
                })
                .await?;
            let body: AvailabilityPage = reply.json()?;
            let total = body.total_count.or(reply.total_count());
            let got = body.servers.len();
            levels.extend(
                body.servers
                    .into_iter()
                    .map(|(name, entry)| (name, entry.availability)),
            );
            if got == 0 || last_page(page, PER_PAGE, got, total) {
                break;
            }
        }
        Ok(levels)
    }
}
