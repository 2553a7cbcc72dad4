//! Query strings and pagination of list routes: `page` (1-based), `per_page` (default 50, at
//! most 100; the Block API's `page_size` is accepted too), `X-Total-Count` and a `Link` header
//! with `rel="next"` and `rel="last"`.

use super::error::SimError;

/// Default page size.
pub const DEFAULT_PER_PAGE: usize = 50;
/// Maximum page size.
pub const MAX_PER_PAGE: usize = 100;

/// A parsed query string (keys may repeat: `tags=a&tags=b`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, SimError> {
        match raw {
            None | Some("") => Ok(Self::default()),
            Some(raw) => serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
                .map(Self)
                .map_err(|e| SimError::argument("query", "format", e.to_string())),
        }
    }

    /// The last value of `key`, when not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, each split on commas, empty parts dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn positive(&self, key: &str) -> Result<Option<usize>, SimError> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(SimError::argument(
                    key,
                    "constraint",
                    format!("{key} must be a positive integer"),
                )),
            },
        }
    }

    /// `(page, per_page)`, validated.
    pub fn page(&self) -> Result<(usize, usize), SimError> {
        let page = self.positive("page")?.unwrap_or(1);
        let per_page = match self.positive("per_page")? {
            Some(n) => Some(("per_page", n)),
            None => self.positive("page_size")?.map(|n| ("page_size", n)),
        };
        let per_page = match per_page {
            Some((key, n)) if n > MAX_PER_PAGE => {
                return Err(SimError::argument(
                    key,
                    "constraint",
                    format!("{key} must be between 1 and {MAX_PER_PAGE}"),
                ));
            }
            Some((_, n)) => n,
            None => DEFAULT_PER_PAGE,
        };
        Ok((page, per_page))
    }

    /// The query with `page` replaced, as a string.
    fn with_page(&self, page: usize) -> String {
        let mut pairs: Vec<(&str, String)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.push(("page", page.to_string()));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// One page of a list.
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub link: Option<String>,
}

/// Cuts `items` into the requested page and builds the `Link` header for `path`.
pub(crate) fn paginate<T>(items: Vec<T>, query: &Query, path: &str) -> Result<Page<T>, SimError> {
    let (page, per_page) = query.page()?;
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let items: Vec<T> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "<{path}?{}>; rel=\"next\"",
            query.with_page(page + 1)
        ));
    }
    links.push(format!("<{path}?{}>; rel=\"last\"", query.with_page(last)));
    Ok(Page {
        items,
        total,
        link: Some(links.join(",")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_links() {
        let q = Query::parse(Some("tags=a,b&per_page=50&page=2")).unwrap_or_default();
        assert_eq!(q.list("tags"), vec!["a", "b"]);
        let page = paginate((0..120).collect::<Vec<_>>(), &q, "/x").ok();
        let Some(page) = page else {
            panic!("must paginate");
        };
        assert_eq!(page.items.first(), Some(&50));
        assert_eq!(page.items.len(), 50);
        assert_eq!(page.total, 120);
        let link = page.link.unwrap_or_default();
        assert!(link.contains("page=3>; rel=\"next\""), "{link}");
        assert!(link.contains("rel=\"last\""));
        assert!(link.contains("tags=a%2Cb"));
    }

    #[test]
    fn validates() {
        for bad in [
            "per_page=101",
            "per_page=0",
            "page=0",
            "page=x",
            "page_size=500",
        ] {
            let q = Query::parse(Some(bad)).unwrap_or_default();
            assert!(q.page().is_err(), "{bad}");
        }
        let q = Query::parse(Some("tags=a&tags=b,c")).unwrap_or_default();
        assert_eq!(q.list("tags"), vec!["a", "b", "c"]);
        assert_eq!(
            Query::parse(None).map(|q| q.page().ok()).ok().flatten(),
            Some((1, 50))
        );
    }
}
