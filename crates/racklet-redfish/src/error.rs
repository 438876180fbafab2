//! Redfish errors: an HTTP status and `error` body with `@Message.ExtendedInfo` from the
//! DMTF Base message registry (texts as in Base 1.22; a test checks them against the
//! registry in `../shared/redfish/registries`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Version of the Base registry the message ids name.
pub const BASE_REGISTRY: &str = "Base.1.22";

/// A Base registry message with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    ResourceNotFound {
        kind: String,
        name: String,
    },
    PropertyUnknown(String),
    PropertyValueTypeError {
        value: String,
        property: String,
    },
    PropertyValueNotInList {
        value: String,
        property: String,
    },
    MalformedJson,
    InsufficientPrivilege,
    ActionParameterMissing {
        action: String,
        parameter: String,
    },
    ActionParameterValueNotInList {
        value: String,
        parameter: String,
        action: String,
    },
    PreconditionFailed,
    NoValidSession,
    PayloadTooLarge,
    OperationNotAllowed,
    ResourceAlreadyExists {
        kind: String,
        property: String,
        value: String,
    },
    CreateFailedMissingReqProperties(String),
    MissingOrMalformedPart,
    PropertyMissing(String),
    PropertyValueFormatError {
        value: String,
        property: String,
    },
    ResourceInUse,
    GeneralError(String),
    Success,
}

impl Message {
    /// (id, text with arguments filled in, severity, resolution)
    pub fn parts(&self) -> (&'static str, String, &'static str, &'static str) {
        match self {
            Message::ResourceNotFound { kind, name } => (
                "ResourceNotFound",
                format!("The requested resource of type {kind} named '{name}' was not found."),
                "Critical",
                "Provide a valid resource identifier and resubmit the request.",
            ),
            Message::PropertyUnknown(p) => (
                "PropertyUnknown",
                format!("The property {p} is not in the list of valid properties for the resource."),
                "Warning",
                "Remove the unknown property from the request body and resubmit the request if the operation failed.",
            ),
            Message::PropertyValueTypeError { value, property } => (
                "PropertyValueTypeError",
                format!("The value '{value}' for the property {property} is not a type that the property can accept."),
                "Warning",
                "Correct the value for the property in the request body and resubmit the request if the operation failed.",
            ),
            Message::PropertyValueNotInList { value, property } => (
                "PropertyValueNotInList",
                format!("The value '{value}' for the property {property} is not in the list of acceptable values."),
                "Warning",
                "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
            ),
            Message::MalformedJson => (
                "MalformedJSON",
                "The request body submitted was malformed JSON and could not be parsed by the receiving service.".into(),
                "Critical",
                "Ensure that the request body is valid JSON and resubmit the request.",
            ),
            Message::InsufficientPrivilege => (
                "InsufficientPrivilege",
                "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.".into(),
                "Critical",
                "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed.",
            ),
            Message::ActionParameterMissing { action, parameter } => (
                "ActionParameterMissing",
                format!("The action {action} requires the parameter {parameter} to be present in the request body."),
                "Critical",
                "Supply the action with the required parameter in the request body when the request is resubmitted.",
            ),
            Message::ActionParameterValueNotInList { value, parameter, action } => (
                "ActionParameterValueNotInList",
                format!("The value '{value}' for the parameter {parameter} in the action {action} is not in the list of acceptable values."),
                "Warning",
                "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
            ),
            Message::PreconditionFailed => (
                "PreconditionFailed",
                "The ETag supplied did not match the ETag required to change this resource.".into(),
                "Critical",
                "Try the operation again using the appropriate ETag.",
            ),
            Message::NoValidSession => (
                "NoValidSession",
                "There is no valid session established with the implementation.".into(),
                "Critical",
                "Establish a session before attempting any operations.",
            ),
            Message::PayloadTooLarge => (
                "PayloadTooLarge",
                "The supplied payload exceeds the maximum size supported by the service.".into(),
                "Critical",
                "Check that the supplied payload is correct and supported by this service.",
            ),
            Message::OperationNotAllowed => (
                "OperationNotAllowed",
                "The HTTP method is not allowed on this resource.".into(),
                "Critical",
                "None.",
            ),
            Message::ResourceAlreadyExists { kind, property, value } => (
                "ResourceAlreadyExists",
                format!("The requested resource of type {kind} with the property {property} with the value '{value}' already exists."),
                "Critical",
                "Do not repeat the create operation as the resource was already created.",
            ),
            Message::CreateFailedMissingReqProperties(p) => (
                "CreateFailedMissingReqProperties",
                format!("The create operation failed because the required property {p} was missing from the request."),
                "Critical",
                "Correct the body to include the required property with a valid value and resubmit the request if the operation failed.",
            ),
            Message::MissingOrMalformedPart => (
                "MissingOrMalformedPart",
                "The multipart request contains malformed parts or is missing required parts.".into(),
                "Critical",
                "Add any missing required parts or correct the malformed parts and resubmit the request.",
            ),
            Message::PropertyMissing(p) => (
                "PropertyMissing",
                format!("The property {p} is a required property and must be included in the request."),
                "Warning",
                "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed.",
            ),
            Message::PropertyValueFormatError { value, property } => (
                "PropertyValueFormatError",
                format!("The value '{value}' for the property {property} is not a format that the property can accept."),
                "Warning",
                "Correct the value for the property in the request body and resubmit the request if the operation failed.",
            ),
            Message::ResourceInUse => (
                "ResourceInUse",
                "The change to the requested resource failed because the resource is in use or in transition.".into(),
                "Warning",
                "Remove the condition and resubmit the request if the operation failed.",
            ),
            Message::GeneralError(_) => (
                "GeneralError",
                "A general error has occurred.  See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.".into(),
                "Critical",
                "None.",
            ),
            Message::Success => ("Success", "The request completed successfully.".into(), "OK", "None."),
        }
    }

    pub fn to_json(&self) -> Value {
        let (id, text, severity, resolution) = self.parts();
        let resolution = match self {
            Message::GeneralError(r) => r.as_str(),
            _ => resolution,
        };
        json!({
            "@odata.type": "#Message.v1_2_0.Message",
            "MessageId": format!("{BASE_REGISTRY}.{id}"),
            "Message": text,
            "MessageSeverity": severity,
            "Resolution": resolution,
        })
    }
}

/// An error response.
#[derive(Debug)]
pub struct RedfishError {
    pub status: StatusCode,
    pub messages: Vec<Message>,
}

impl RedfishError {
    pub fn new(status: StatusCode, message: Message) -> Self {
        RedfishError {
            status,
            messages: vec![message],
        }
    }

    pub fn not_found(kind: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Message::ResourceNotFound {
                kind: kind.into(),
                name: name.into(),
            },
        )
    }

    pub fn bad_request(message: Message) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for RedfishError {
    fn into_response(self) -> Response {
        let first = self
            .messages
            .first()
            .cloned()
            .unwrap_or(Message::GeneralError("None.".into()));
        let (id, text, _, _) = first.parts();
        let body = json!({
            "error": {
                "code": format!("{BASE_REGISTRY}.{id}"),
                "message": text,
                "@Message.ExtendedInfo": self.messages.iter().map(Message::to_json).collect::<Vec<_>>(),
            }
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"Racklet\""),
            );
        }
        resp
    }
}

pub use racklet_rmd_api::error_chain as chain;

#[cfg(test)]
mod tests {
    use super::chain;

    #[test]
    fn no_error_of_this_crate_repeats_its_cause() {
        let io = || std::io::Error::other("disk on fire");
        let path = std::path::PathBuf::from("/d/x.json");
        let errors: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(crate::accounts::AccountError::Io {
                path: path.clone(),
                source: io(),
            }),
            Box::new(crate::tasks::TaskStoreError::Io {
                path: path.clone(),
                source: io(),
            }),
            Box::new(crate::events::EventStoreError::Io { path, source: io() }),
            Box::new(crate::StartError::Bind {
                addr: ([127, 0, 0, 1], 1).into(),
                source: io(),
            }),
            Box::new(crate::StartError::Certificate(io())),
        ];
        for e in errors {
            let text = chain(e.as_ref());
            assert_eq!(text.matches("disk on fire").count(), 1, "{text}");
        }
    }
}
