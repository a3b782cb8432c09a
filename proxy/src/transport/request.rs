//! What transports read from a client request: query parameters (keys
//! case-insensitive) and the access token.

use http::HeaderMap;

/// The decoded query string of a request.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self { pairs }
    }

    /// First value of `key`, compared case-insensitively.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The query without the keys the proxy consumes (`id`, `access_token`),
    /// re-encoded: what app servers see.
    pub fn forwarded(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            if !k.eq_ignore_ascii_case("id") && !k.eq_ignore_ascii_case("access_token") {
                out.append_pair(k, v);
            }
        }
        out.finish()
    }
}

/// The bearer token: the `Authorization` header (Node clients) or the
/// `access_token` query parameter (browsers cannot set headers on WebSockets).
pub fn access_token<'a>(headers: &'a HeaderMap, query: &'a Query) -> Option<&'a str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .or_else(|| query.get("access_token"))
        .filter(|t| !t.is_empty())
}

/// Request headers passed on to app servers: the configured allow-list
/// (`--forward-headers`, which refuses credentials).
pub fn forwarded_headers(headers: &HeaderMap, allowed: &[String]) -> Vec<(String, String)> {
    allowed
        .iter()
        .filter_map(|name| {
            headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(|v| (name.clone(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_tokens_are_not_forwarded() {
        let q = Query::parse(Some("HUB=Chat&id=abc&access_token=secret&room=a%20b"));
        assert_eq!(q.get("hub"), Some("Chat"));
        assert_eq!(q.get("Id"), Some("abc"));
        assert_eq!(q.forwarded(), "HUB=Chat&room=a+b");
    }

    #[test]
    fn header_token_wins_over_query() {
        let mut h = HeaderMap::new();
        let q = Query::parse(Some("access_token=fromquery"));
        assert_eq!(access_token(&h, &q), Some("fromquery"));
        h.insert(
            http::header::AUTHORIZATION,
            "Bearer fromheader".parse().unwrap(),
        );
        assert_eq!(access_token(&h, &q), Some("fromheader"));
        assert_eq!(access_token(&HeaderMap::new(), &Query::default()), None);
    }
}
