//! Pre-signed `CopyDBSnapshot` URLs. Copying an encrypted snapshot from another
//! region needs a SigV4-signed request valid in the *source* region; other AWS
//! SDKs build it from a `SourceRegion` parameter, the Rust SDK does not, so it
//! is built here.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

/// What the pre-signed request copies.
pub struct CopyRequest<'a> {
    pub source_region: &'a str,
    pub destination_region: &'a str,
    pub source_arn: &'a str,
    pub target_id: &'a str,
    pub kms_key: Option<&'a str>,
    /// The source region's RDS endpoint override, if any.
    pub endpoint: Option<&'a str>,
}

/// Which signing step failed, and what it said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {reason}")]
pub struct PresignError {
    pub step: &'static str,
    pub reason: String,
}

impl PresignError {
    fn at(step: &'static str, e: impl std::fmt::Display) -> PresignError {
        PresignError {
            step,
            reason: e.to_string(),
        }
    }
}

/// A URL valid for an hour, signed with `creds` for the source region.
pub fn copy_snapshot_url(
    creds: &Credentials,
    req: &CopyRequest<'_>,
    now: SystemTime,
) -> Result<String, PresignError> {
    let host = req.endpoint.map_or_else(
        || format!("https://rds.{}.amazonaws.com", req.source_region),
        |e| e.trim_end_matches('/').to_string(),
    );
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("Action", "CopyDBSnapshot")
        .append_pair("Version", "2014-10-31")
        .append_pair("SourceDBSnapshotIdentifier", req.source_arn)
        .append_pair("TargetDBSnapshotIdentifier", req.target_id)
        .append_pair("DestinationRegion", req.destination_region);
    if let Some(key) = req.kms_key {
        query.append_pair("KmsKeyId", key);
    }
    let uri = format!("{host}/?{}", query.finish());
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(3600));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(req.source_region)
        .name("rds")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| PresignError::at("signing parameters", e))?
        .into();
    let signable = SignableRequest::new("GET", &uri, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| PresignError::at("request", e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| PresignError::at("signature", e))?
        .into_parts();
    let mut request = http::Request::get(&uri)
        .body(())
        .map_err(|e| PresignError::at("URL", e))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request.uri().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_signed_for_the_source_region() -> Result<(), String> {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let req = CopyRequest {
            source_region: "us-east-1",
            destination_region: "us-west-2",
            source_arn: "arn:aws:rds:us-east-1:123456789012:snapshot:drtool-db-1",
            target_id: "drtool-db-1",
            kms_key: Some("arn:aws:kms:us-west-2:123456789012:key/k"),
            endpoint: None,
        };
        let url = copy_snapshot_url(
            &creds,
            &req,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        )
        .map_err(|e| e.to_string())?;
        assert!(
            url.starts_with("https://rds.us-east-1.amazonaws.com/?"),
            "{url}"
        );
        for part in [
            "Action=CopyDBSnapshot",
            "DestinationRegion=us-west-2",
            "SourceDBSnapshotIdentifier=arn%3Aaws%3Ards%3Aus-east-1",
            "KmsKeyId=",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F",
            "%2Fus-east-1%2Frds%2Faws4_request",
            "X-Amz-Expires=3600",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
        Ok(())
    }
}
