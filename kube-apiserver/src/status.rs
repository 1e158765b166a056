//! API errors and their wire form, the `meta/v1` `Status` object.
//!
//! Every failure a handler can produce is an [`ApiError`]; it owns the HTTP
//! code, the `reason` and the `details` exactly as kube-apiserver fills them,
//! because clients (kubectl, client-go, drtool) branch on `reason` and `code`,
//! not on the message. This module never talks to etcd or parses requests.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::ResourceType;

/// A failed API call, rendered as a `Status` object with the matching code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 for an object; `details.kind` is the resource (plural), as in k8s.
    #[error("{} \"{name}\" not found", qual(.resource, .group))]
    NotFound {
        resource: String,
        group: String,
        name: String,
    },
    /// 404 for a path that names nothing this server serves.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    #[error("{} \"{name}\" already exists", qual(.resource, .group))]
    AlreadyExists {
        resource: String,
        group: String,
        name: String,
    },
    /// 409 on a stale `resourceVersion` or a failed precondition.
    #[error("Operation cannot be fulfilled on {} \"{name}\": {why}", qual(.resource, .group))]
    Conflict {
        resource: String,
        group: String,
        name: String,
        why: String,
    },
    /// 422; `details.kind` is the Kind here, as in k8s `NewInvalid`.
    #[error("{} \"{name}\" is invalid: {}", qual(.kind, .group), join_causes(.causes))]
    Invalid {
        kind: String,
        group: String,
        name: String,
        causes: Vec<Cause>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 410: a continue token whose revision etcd has compacted away.
    #[error(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
    )]
    Expired,
    /// 503 from /readyz before the first successful start-up sync.
    #[error("not ready: system namespaces and CRDs not loaded from etcd yet")]
    NotReady,
    /// 503: etcd failed or is unreachable; worth retrying.
    #[error("etcd: {0}")]
    Storage(String),
    #[error("{0}")]
    Internal(String),
}

/// One field error inside an `Invalid` status.
#[derive(Debug, Clone)]
pub struct Cause {
    pub field: String,
    pub message: String,
}

/// `deployments.apps`, or just `configmaps` for the core group: k8s messages
/// name the group-qualified resource.
fn qual(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn join_causes(causes: &[Cause]) -> String {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ApiError {
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        ApiError::NotFound {
            resource: rt.resource.clone(),
            group: rt.group.clone(),
            name: name.to_string(),
        }
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        ApiError::NotFound {
            resource: "namespaces".into(),
            group: String::new(),
            name: ns.to_string(),
        }
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        ApiError::AlreadyExists {
            resource: rt.resource.clone(),
            group: rt.group.clone(),
            name: name.to_string(),
        }
    }

    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        ApiError::Conflict {
            resource: rt.resource.clone(),
            group: rt.group.clone(),
            name: name.to_string(),
            why: why.to_string(),
        }
    }

    /// The standard optimistic-concurrency conflict text of kube-apiserver.
    pub fn stale(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(rt: &ResourceType, name: &str, field: &str, message: String) -> Self {
        ApiError::Invalid {
            kind: rt.kind.clone(),
            group: rt.group.clone(),
            name: name.to_string(),
            causes: vec![Cause {
                field: field.to_string(),
                message,
            }],
        }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::NoSuchPath => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Expired => StatusCode::GONE,
            ApiError::Storage(_) | ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoSuchPath => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Expired => "Expired",
            ApiError::Storage(_) | ApiError::NotReady => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        let d = match self {
            ApiError::NotFound {
                resource,
                group,
                name,
            }
            | ApiError::AlreadyExists {
                resource,
                group,
                name,
            }
            | ApiError::Conflict {
                resource,
                group,
                name,
                ..
            } => json!({"name": name, "group": group, "kind": resource}),
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
            } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| {
                        json!({"reason": "FieldValueInvalid", "message": c.message, "field": c.field})
                    })
                    .collect();
                json!({"name": name, "group": group, "kind": kind, "causes": causes})
            }
            _ => return None,
        };
        Some(strip_empty_group(d))
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }
}

/// k8s omits `group` for the core group (`omitempty`).
fn strip_empty_group(mut d: Value) -> Value {
    if let Some(obj) = d.as_object_mut()
        && obj.get("group").and_then(Value::as_str) == Some("")
    {
        obj.remove("group");
    }
    d
}

impl From<etcd_client::Error> for ApiError {
    fn from(e: etcd_client::Error) -> Self {
        let text = e.to_string();
        if text.contains("required revision has been compacted") {
            ApiError::Expired
        } else {
            ApiError::Storage(text)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Storage(_) | ApiError::Internal(_)) {
            tracing::warn!(error = %self, "request failed");
        }
        crate::api::json_response(self.code(), &self.to_status())
    }
}

/// A successful delete of a kind that answers with a `Status` (most kinds).
pub fn delete_success(rt: &ResourceType, name: &str, uid: &str) -> Value {
    let details = strip_empty_group(json!({
        "name": name,
        "group": rt.group,
        "kind": rt.resource,
        "uid": uid,
    }));
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
