//! Catalog calls: `GET /products/servers` and `GET /products/servers/availability`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ScalewayClient;
use super::paging::ListPage;
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

impl ListPage for ProductsPage {
    type Item = (String, ServerProduct);
    fn into_parts(self) -> (Vec<Self::Item>, Option<u64>) {
        (self.servers.into_iter().collect(), self.total_count)
    }
    fn id(item: &Self::Item) -> &str {
        &item.0
    }
}

impl ListPage for AvailabilityPage {
    type Item = (String, AvailabilityEntry);
    fn into_parts(self) -> (Vec<Self::Item>, Option<u64>) {
        (self.servers.into_iter().collect(), self.total_count)
    }
    fn id(item: &Self::Item) -> &str {
        &item.0
    }
}

impl ScalewayClient {
    /// Every commercial type offered in `zone`, sorted by name, with exact prices.
    pub async fn list_server_products(
        &self,
        zone: &str,
    ) -> Result<Vec<ServerProduct>, ScalewayError> {
        let query = [("per_page", PER_PAGE.to_string())];
        let pages = self
            .list_all::<ProductsPage>(op::LIST_SERVER_PRODUCTS, PER_PAGE, &query, |q| {
                self.instance_url(zone, &["products", "servers"], q)
            })
            .await?;
        let mut products = BTreeMap::new();
        for (commercial_type, mut product) in pages {
            product.commercial_type.clone_from(&commercial_type);
            products.insert(commercial_type, product);
        }
        Ok(products.into_values().collect())
    }

    /// Stock level of every commercial type in `zone`.
    pub async fn server_availability(
        &self,
        zone: &str,
    ) -> Result<BTreeMap<String, Availability>, ScalewayError> {
        let query = [("per_page", PER_PAGE.to_string())];
        let pages = self
            .list_all::<AvailabilityPage>(op::SERVER_AVAILABILITY, PER_PAGE, &query, |q| {
                self.instance_url(zone, &["products", "servers", "availability"], q)
            })
            .await?;
        Ok(pages
            .into_iter()
            .map(|(name, entry)| (name, entry.availability))
            .collect())
    }
}
