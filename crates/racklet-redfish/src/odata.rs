//! OData and Redfish plumbing every resource module shares: JSON responses with their
//! `Allow` header, resource collections, the one `ActionInfo` builder, closed enums of
//! Redfish string values ([`RedfishEnum`]), request-body property checks, role checks, the
//! mapping of daemon errors to Redfish errors, and RFC 3339 times.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use racklet_rmd_api::RmdError;
use serde_json::{json, Map, Value};

use crate::accounts::Role;
use crate::error::{Message, RedfishError};
use crate::Caller;

pub(crate) fn ok(body: Value) -> Response {
    Json(body).into_response()
}

pub(crate) fn with_allow(mut resp: Response, allow: &'static str) -> Response {
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Administrators see every account and session; everyone else only their own.
pub(crate) fn visible_to(caller: &Caller, owner: &str) -> bool {
    caller.role == Role::Administrator || caller.user == owner
}

pub(crate) fn require(caller: &Caller, role: Role) -> Result<(), RedfishError> {
    if caller.role >= role {
        Ok(())
    } else {
        Err(RedfishError::new(
            StatusCode::FORBIDDEN,
            Message::InsufficientPrivilege,
        ))
    }
}

/// A collection resource with its `Allow` header.
pub(crate) fn listing(
    id: &str,
    kind: &str,
    name: &str,
    members: Vec<String>,
    allow: &'static str,
) -> Response {
    with_allow(ok(collection(id, kind, name, members)), allow)
}

fn collection(id: &str, kind: &str, name: &str, members: Vec<String>) -> Value {
    json!({
        "@odata.id": id,
        "@odata.type": format!("#{kind}.{kind}"),
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members.into_iter().map(|m| json!({"@odata.id": m})).collect::<Vec<_>>(),
    })
}

pub(crate) fn rmd_error(e: RmdError) -> RedfishError {
    match e {
        RmdError::NoTray(n) => RedfishError::not_found("ComputerSystem", &n.to_string()),
        RmdError::Invalid(reason) => RedfishError::bad_request(Message::GeneralError(reason)),
        other => RedfishError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Message::GeneralError(other.to_string()),
        ),
    }
}

pub(crate) fn string_prop<'a>(
    o: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, RedfishError> {
    match o.get(name) {
        None => Ok(None),
        Some(Value::String(v)) => Ok(Some(v)),
        Some(other) => Err(RedfishError::bad_request(Message::PropertyValueTypeError {
            value: other.to_string(),
            property: name.into(),
        })),
    }
}

pub(crate) fn only_known(o: &Map<String, Value>, known: &[&str]) -> Result<(), RedfishError> {
    let unknown: Vec<Message> = o
        .keys()
        .filter(|k| !known.contains(&k.as_str()) && !k.starts_with('@'))
        .map(|k| Message::PropertyUnknown(k.clone()))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(RedfishError {
            status: StatusCode::BAD_REQUEST,
            messages: unknown,
        })
    }
}

pub(crate) use racklet_time::rfc3339;

/// An `ActionInfo` resource at `odata_id` (its `Id` is the URI's last segment) describing
/// an action's one string parameter and the values it allows.
pub(crate) fn action_info(
    odata_id: &str,
    name: &str,
    parameter: &str,
    required: bool,
    allowable: &[&str],
) -> Response {
    let id = odata_id.rsplit('/').next().unwrap_or(odata_id);
    with_allow(
        ok(json!({
            "@odata.id": odata_id,
            "@odata.type": "#ActionInfo.v1_5_0.ActionInfo",
            "Id": id,
            "Name": name,
            "Parameters": [{"Name": parameter, "Required": required, "DataType": "String", "AllowableValues": allowable}],
        })),
        "GET, HEAD",
    )
}

/// A closed set of Redfish string values (a schema enum, or the part of one this service
/// supports), parsed at the HTTP edge and written back by [`RedfishEnum::as_str`].
/// Implemented by [`redfish_enum!`], so the list of values cannot drift from the enum.
pub(crate) trait RedfishEnum: Sized + Copy + 'static {
    /// Every value, in the order clients see them as `AllowableValues`.
    const ALL: &'static [Self];

    /// The Redfish string of the value.
    fn as_str(self) -> &'static str;

    /// The value of a Redfish string, if it is one.
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// The Redfish strings of all values (for `AllowableValues`).
    fn allowable_values() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.as_str()).collect()
    }
}

/// Declares a fieldless enum whose variant names are its Redfish strings, and implements
/// [`RedfishEnum`] for it.
macro_rules! redfish_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $crate::odata::RedfishEnum for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant)),+
                }
            }
        }
    };
}
pub(crate) use redfish_enum;

/// The value of an action's string parameter `parameter` as `T`: `None` when the body
/// does not carry it, a Base `ActionParameterValueNotInList` error when it is not one of
/// `T`'s values (or not a string).
pub(crate) fn enum_parameter<T: RedfishEnum>(
    body: &Map<String, Value>,
    parameter: &str,
    action: &str,
) -> Result<Option<T>, RedfishError> {
    let Some(v) = body.get(parameter) else {
        return Ok(None);
    };
    if let Some(parsed) = v.as_str().and_then(T::parse) {
        return Ok(Some(parsed));
    }
    let value = v.as_str().map_or_else(|| v.to_string(), str::to_string);
    Err(RedfishError::bad_request(
        Message::ActionParameterValueNotInList {
            value,
            parameter: parameter.into(),
            action: action.into(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    redfish_enum! {
        enum Colour { Red, Green }
    }

    #[test]
    fn closed_enums_parse_their_own_strings_only() {
        assert_eq!(Colour::allowable_values(), ["Red", "Green"]);
        for c in Colour::ALL {
            assert_eq!(Colour::parse(c.as_str()), Some(*c));
        }
        assert_eq!(Colour::parse("red"), None);
        let body = json!({"C": "Blue", "D": 5, "E": "Green"});
        let body = body.as_object().expect("object");
        assert_eq!(
            enum_parameter::<Colour>(body, "E", "A").ok(),
            Some(Some(Colour::Green))
        );
        assert_eq!(enum_parameter::<Colour>(body, "X", "A").ok(), Some(None));
        assert!(enum_parameter::<Colour>(body, "C", "A").is_err());
        assert!(enum_parameter::<Colour>(body, "D", "A").is_err());
    }
}
