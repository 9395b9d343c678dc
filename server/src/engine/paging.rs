//! Paging of the describe calls (AIP-158): a page size, and an opaque token
//! that continues after the last entry returned. The token names that
//! entry (its commit, for builds also its artifact id), so pages stay
//! consistent while new releases and builds arrive at the front of the
//! list. It owns the token's format and the page size rules, nothing about
//! what is listed.

use base64::Engine;

use crate::domain::FlowError;

/// Page size when the request gives none.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 20;
/// Largest page.
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

/// One page asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    /// Most entries to return.
    pub(crate) size: usize,
    /// Continue after the entry with this key (`None`: the first page).
    pub(crate) after: Option<String>,
}

const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl Page {
    /// The page a request asks for: `page_size` (else the deprecated
    /// `count`, else the default), at most [`MAX_PAGE_SIZE`], and the key
    /// in `page_token`, which must be a token of this `kind` of listing.
    pub(crate) fn of(
        page_size: u32,
        count: u32,
        page_token: &str,
        kind: &str,
    ) -> Result<Page, FlowError> {
        Self::of_query(page_size, count, page_token, kind, "")
    }

    /// As [`Page::of`], for a listing of `kind` whose other fields are
    /// `query` (`service`, `environment`, `branch`): a token of the same
    /// listing asked with other fields is refused as such.
    pub(crate) fn of_query(
        page_size: u32,
        count: u32,
        page_token: &str,
        kind: &str,
        query: &str,
    ) -> Result<Page, FlowError> {
        let asked = if page_size > 0 { page_size } else { count } as usize;
        let size = match asked {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        if page_token.is_empty() {
            return Ok(Page { size, after: None });
        }
        let invalid = || {
            FlowError::invalid(
                "page_token",
                format!("invalid page_token: not a next_page_token of this {kind} listing"),
            )
        };
        let bytes = ENGINE.decode(page_token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let rest = text
            .strip_prefix(kind)
            .and_then(|rest| rest.strip_prefix(':'))
            .ok_or_else(invalid)?;
        let key = rest
            .strip_prefix(query)
            .and_then(|rest| rest.strip_prefix(':'))
            .ok_or_else(|| {
                FlowError::invalid(
                    "page_token",
                    format!(
                        "invalid page_token: it continues a {kind} listing asked with other fields; \
                         ask with the same fields as for the first page, or start again without one"
                    ),
                )
            })?;
        Ok(Page {
            size,
            after: Some(key.to_string()),
        })
    }
}

/// The token that continues a `kind` listing after the entry `key`.
pub(crate) fn token(kind: &str, key: &str) -> String {
    token_of_query(kind, "", key)
}

/// The token that continues a `kind` listing asked with `query` after the
/// entry `key`.
pub(crate) fn token_of_query(kind: &str, query: &str, key: &str) -> String {
    ENGINE.encode(format!("{kind}:{query}:{key}"))
}

/// One page of `entries` (newest first, each with its key): those after
/// the token's entry, at most `page.size`, and the next page's token when
/// more remain. A token whose entry is not in the list is refused. The
/// listing was asked with `query` (see [`Page::of_query`]).
pub(crate) fn take_of_query<T>(
    entries: impl Iterator<Item = (String, T)>,
    page: &Page,
    kind: &str,
    query: &str,
) -> Result<(Vec<T>, String), FlowError> {
    let mut entries = entries.peekable();
    if let Some(after) = &page.after {
        loop {
            match entries.next() {
                Some((key, _)) if &key == after => break,
                Some(_) => {}
                None => {
                    return Err(FlowError::invalid("page_token", format!(
                        "invalid page_token: its {kind} is no longer in the list (the history was rewritten); start again without one"
                    )))
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < page.size {
        let Some((key, entry)) = entries.next() else {
            break;
        };
        last = Some(key);
        out.push(entry);
    }
    let next = match (entries.peek(), last) {
        (Some(_), Some(last)) => token_of_query(kind, query, &last),
        _ => String::new(),
    };
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> impl Iterator<Item = (String, usize)> {
        (0..n).map(|i| (format!("k{i}"), i))
    }

    #[test]
    fn pages_follow_each_other_to_the_end() {
        let first = Page::of(2, 0, "", "release").unwrap();
        let (a, token_a) = take_of_query(list(5), &first, "release", "").unwrap();
        assert_eq!(a, vec![0, 1]);
        let second = Page::of(2, 0, &token_a, "release").unwrap();
        let (b, token_b) = take_of_query(list(5), &second, "release", "").unwrap();
        assert_eq!(b, vec![2, 3]);
        let third = Page::of(2, 0, &token_b, "release").unwrap();
        let (c, token_c) = take_of_query(list(5), &third, "release", "").unwrap();
        assert_eq!(c, vec![4]);
        assert!(token_c.is_empty(), "the last page has no next token");
        let exact = Page::of(5, 0, "", "release").unwrap();
        assert!(take_of_query(list(5), &exact, "release", "")
            .unwrap()
            .1
            .is_empty());
    }

    #[test]
    fn new_entries_at_the_front_do_not_shift_a_page() {
        let (_, token) = take_of_query(
            list(5),
            &Page::of(2, 0, "", "release").unwrap(),
            "release",
            "",
        )
        .unwrap();
        let grown = std::iter::once(("new".to_string(), 99)).chain(list(5));
        let (next, _) = take_of_query(
            grown,
            &Page::of(2, 0, &token, "release").unwrap(),
            "release",
            "",
        )
        .unwrap();
        assert_eq!(next, vec![2, 3]);
    }

    #[test]
    fn sizes_and_bad_tokens() {
        assert_eq!(Page::of(0, 0, "", "build").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(
            Page::of(0, 7, "", "build").unwrap().size,
            7,
            "the old count"
        );
        assert_eq!(Page::of(5000, 0, "", "build").unwrap().size, MAX_PAGE_SIZE);
        assert!(Page::of(2, 0, "not base64!", "build").is_err());
        let release_token = token("release", "k1");
        assert!(
            Page::of(2, 0, &release_token, "build").is_err(),
            "another listing's token"
        );
        let gone = Page::of(2, 0, &token("release", "nowhere"), "release").unwrap();
        assert!(take_of_query(list(3), &gone, "release", "").is_err());
    }

    #[test]
    fn a_token_of_another_query_says_so() {
        let first = Page::of_query(1, 0, "", "build", "svc master").unwrap();
        let (_, next) = take_of_query(list(3), &first, "build", "svc master").unwrap();
        Page::of_query(1, 0, &next, "build", "svc master").unwrap();
        let error = Page::of_query(1, 0, &next, "build", "svc feature").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("asked with other fields"), "{text}");
        assert!(!text.contains("rewritten"), "{text}");
    }
}
