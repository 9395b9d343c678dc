//! The fields every write request carries, checked the same way for the
//! release and the policy service: optional strings, namespaces, request
//! ids, and who the write is recorded as (the verified identity, else the
//! committer the request names).

use release_manager::names;
use release_manager::pb;

use crate::auth::Identity;
use crate::domain::FlowError;
use crate::repo::index::Signature;

pub(crate) fn optional(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

pub(crate) fn namespace(value: String) -> Result<Option<String>, FlowError> {
    let value = optional(value);
    if let Some(ns) = &value {
        names::check_namespace(ns)?;
    }
    Ok(value)
}

pub(crate) fn request_id(value: String) -> Result<Option<String>, FlowError> {
    let value = optional(value);
    if let Some(id) = &value {
        if id.len() > 128
            || id
                .chars()
                .any(|c| names::is_forbidden_char(c) || c.is_whitespace())
        {
            return Err(FlowError::invalid(
                "request_id",
                "invalid request_id: at most 128 characters, no spaces or control characters",
            ));
        }
    }
    Ok(value)
}

pub(crate) fn committer(person: Option<pb::Person>) -> Result<Signature, FlowError> {
    let person = person.unwrap_or_default();
    let bad =
        |field: &str, what: &str| FlowError::invalid(field, format!("invalid committer: {what}"));
    if person.email.trim().is_empty() {
        return Err(bad("committer.email", "email is missing"));
    }
    if person.name.trim().is_empty() {
        return Err(bad("committer.name", "name is missing"));
    }
    let forbidden = |s: &str| {
        s.chars()
            .any(|c| names::is_forbidden_char(c) || c == '<' || c == '>')
    };
    if forbidden(&person.name)
        || forbidden(&person.email)
        || person.name.len() > 200
        || person.email.len() > 200
    {
        return Err(bad(
            "committer",
            "name and email must be at most 200 characters, without '<', '>', control or bidirectional-control characters",
        ));
    }
    Ok(Signature {
        name: person.name,
        email: person.email,
    })
}

/// Who a write is recorded as: the person an identity token names,
/// whatever the request says, else the committer the request names (static
/// tokens, as before).
pub(crate) fn releaser(who: &Identity, person: Option<pb::Person>) -> Result<Signature, FlowError> {
    let Some(verified) = who.person() else {
        return committer(person);
    };
    // What git cannot hold in a name or email is left out.
    let clean = |text: &str| -> String {
        let kept: String = text
            .chars()
            .filter(|c| !c.is_control() && *c != '<' && *c != '>')
            .take(200)
            .collect();
        kept.trim().to_string()
    };
    let signature = Signature {
        name: clean(verified.name()),
        email: clean(&verified.email()),
    };
    if let Some(claimed) = person.filter(|p| {
        !p.email.trim().is_empty() && !p.email.trim().eq_ignore_ascii_case(&signature.email)
    }) {
        tracing::info!(
            claimed = %claimed.email,
            recorded = %signature.email,
            "the request's committer is ignored: the identity token names who releases"
        );
    }
    Ok(signature)
}
