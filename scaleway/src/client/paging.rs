//! Reading every page of a list endpoint.

use std::collections::HashSet;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use super::{Body, Call, Idempotency, ScalewayClient};
use crate::error::ScalewayError;

/// Upper bound of pages read by one list call (a safety net against a server that never ends).
pub(crate) const MAX_PAGES: u32 = 10_000;

/// One page of a list answer.
pub(crate) trait ListPage: DeserializeOwned {
    type Item;
    /// The items of the page, and the total count when the body gives one.
    fn into_parts(self) -> (Vec<Self::Item>, Option<u64>);
    /// The item's id: an item seen on an earlier page is skipped.
    fn id(item: &Self::Item) -> &str;
}

/// True when `page` (1-based) of `per_page` items was the last one: from the total count when
/// known, else from a short page.
pub(crate) fn last_page(page: u32, per_page: u32, got: usize, total: Option<u64>) -> bool {
    match total {
        Some(total) => u64::from(page) * u64::from(per_page) >= total,
        None => got < per_page as usize,
    }
}

impl ScalewayClient {
    /// GETs `url(query + page)` for page 1, 2, ... until the last page, keeping each item once
    /// (an item created or deleted between two pages shifts the pages).
    pub(crate) async fn list_all<P: ListPage>(
        &self,
        op: &'static str,
        per_page: u32,
        query: &[(&str, String)],
        url: impl Fn(&[(&str, String)]) -> Result<Url, ScalewayError>,
    ) -> Result<Vec<P::Item>, ScalewayError> {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for page in 1..=MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            let reply = self
                .execute(Call {
                    op,
                    method: Method::GET,
                    url: url(&q)?,
                    body: Body::Empty,
                    idempotency: Idempotency::Idempotent,
                })
                .await?;
            let header_total = reply.total_count();
            let (page_items, body_total) = reply.json::<P>()?.into_parts();
            let got = page_items.len();
            for item in page_items {
                if seen.insert(P::id(&item).to_string()) {
                    items.push(item);
                }
            }
            if got == 0 || last_page(page, per_page, got, body_total.or(header_total)) {
                break;
            }
        }
        Ok(items)
    }
}
