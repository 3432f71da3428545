//! S3's API where the front adds to moto: CreateBucket with tags, and the operation of a
//! path-style request (for the call counts and the faults). Regions, held names and late
//! deliveries are [`crate::s3`]'s.

use bytes::Bytes;

use crate::http::{self, Request, Response};
use crate::Front;

impl Front {
    /// CreateBucket with tags (`CreateBucketConfiguration/Tags`), which moto ignores: the tags
    /// are put before the answer, so the bucket is never seen untagged, as on AWS.
    pub(crate) async fn create_bucket(&self, request: &Request) -> Response {
        let answer = self.forwarder.forward(request).await;
        let body = String::from_utf8_lossy(&request.body);
        let tags = body.split("<Tags>").nth(1).and_then(|s| s.split("</Tags>").next());
        let (true, Some(tags)) = (answer.status().is_success(), tags) else { return answer };
        let bucket = request.path().trim_end_matches('/');
        let mut headers = hyper::HeaderMap::new();
        if let Some(auth) = request.headers.get(hyper::header::AUTHORIZATION) {
            headers.insert(hyper::header::AUTHORIZATION, auth.clone());
        }
        let Ok(uri) = format!("{bucket}?tagging").parse::<hyper::Uri>() else { return answer };
        let tagging = Request {
            method: hyper::Method::PUT,
            uri,
            headers: headers.clone(),
            body: Bytes::from(format!("<Tagging><TagSet>{tags}</TagSet></Tagging>")),
        };
        let tagged = self.forwarder.forward(&tagging).await;
        if tagged.status().is_success() {
            return answer;
        }
        // On AWS a bucket with bad tags is not created.
        if let Ok(uri) = bucket.parse::<hyper::Uri>() {
            let delete = Request { method: hyper::Method::DELETE, uri, headers, body: Bytes::new() };
            self.forwarder.forward(&delete).await;
        }
        tagged
    }
}

/// The S3 operation of a path-style request: the SDK's `x-id` when it sends one, else from the
/// method, the path and the sub-resource.
pub(crate) fn s3_operation(request: &Request) -> String {
    let query = http::form_decode(request.uri.query().unwrap_or_default());
    if let Some((_, id)) = query.iter().find(|(k, _)| k == "x-id") {
        return id.clone();
    }
    let has = |key: &str| query.iter().any(|(k, _)| k == key);
    let method = request.method.as_str();
    let path = request.path().trim_matches('/');
    if path.is_empty() {
        return if method == "GET" { "ListBuckets".into() } else { method.into() };
    }
    if path.contains('/') {
        let operation = match method {
            "GET" => "GetObject",
            "PUT" => "PutObject",
            "HEAD" => "HeadObject",
            "DELETE" => "DeleteObject",
            other => other,
        };
        return operation.into();
    }
    const SUBRESOURCES: [(&str, &str); 9] = [
        ("tagging", "BucketTagging"),
        ("policy", "BucketPolicy"),
        ("encryption", "BucketEncryption"),
        ("publicAccessBlock", "PublicAccessBlock"),
        ("versioning", "BucketVersioning"),
        ("acl", "BucketAcl"),
        ("location", "BucketLocation"),
        ("lifecycle", "BucketLifecycleConfiguration"),
        ("ownershipControls", "BucketOwnershipControls"),
    ];
    if has("versions") {
        return "ListObjectVersions".into();
    }
    if has("delete") && method == "POST" {
        return "DeleteObjects".into();
    }
    if let Some((_, name)) = SUBRESOURCES.iter().find(|(key, _)| has(key)) {
        let verb = match method {
            "GET" => "Get",
            "PUT" => "Put",
            "DELETE" => "Delete",
            other => other,
        };
        return format!("{verb}{name}");
    }
    let operation = match method {
        "HEAD" => "HeadBucket",
        "PUT" => "CreateBucket",
        "DELETE" => "DeleteBucket",
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" => "ListObjects",
        other => other,
    };
    operation.into()
}
