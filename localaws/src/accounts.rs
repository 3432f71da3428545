//! Accounts, told apart as moto tells them apart, so that everything the front does on behalf
//! of a request happens in that request's account.
//!
//! moto's account of a request is the `x-moto-account-id` header if present, else the account
//! of the access key in the `Authorization` header (keys made by STS AssumeRole belong to the
//! role ARN's account, keys made by IAM CreateAccessKey to the caller's), else `123456789012`.
//! [`Accounts`] learns access key → account from the answers to those calls as they pass
//! through the front, and from the keys the front itself obtains for functions.
//!
//! The front's own calls to moto carry `x-moto-account-id` ([`AccountHeader`] on its SDK
//! clients, [`ACCOUNT_HEADER`] on its raw requests).

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::Value;

use crate::http::{Forwarder, Request};

/// moto's default account: the account of any request moto cannot attribute to another.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The header by which a request names its account to moto.
pub const ACCOUNT_HEADER: &str = "x-moto-account-id";

/// Credentials from an STS answer, with the account they act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assumed {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub account: String,
}

/// Access key → account, as learned from the answers that passed through the front.
#[derive(Default)]
pub struct Accounts {
    keys: Mutex<HashMap<String, String>>,
}

impl Accounts {
    /// The account of a request, as moto decides it.
    pub fn of(&self, request: &Request) -> String {
        if let Some(account) = request.header(ACCOUNT_HEADER) {
            return account.to_owned();
        }
        access_key(request).and_then(|key| self.account_of_key(&key)).unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned())
    }

    pub fn account_of_key(&self, key: &str) -> Option<String> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    pub fn learn(&self, key: &str, account: &str) {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_owned(), account.to_owned());
    }

    /// Learns the key an answer hands out: STS AssumeRole, AssumeRoleWithWebIdentity and
    /// AssumeRoleWithSAML (the assumed role's account), IAM CreateAccessKey (`account`, the
    /// caller's). Other operations and failed answers teach nothing.
    pub fn observe(&self, operation: &str, account: &str, body: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(body).ok()?;
        let (key, account) = match operation {
            "AssumeRole" | "AssumeRoleWithWebIdentity" | "AssumeRoleWithSAML" => {
                let assumed = parse_assumed(text)?;
                (assumed.access_key_id, assumed.account)
            }
            "CreateAccessKey" => (field(text, &["AccessKey", "AccessKeyId"])?, account.to_owned()),
            _ => return None,
        };
        self.learn(&key, &account);
        Some(key)
    }
}

/// The access key of a request as moto reads it: in `Authorization` (SigV4 `Credential=KEY/…`
/// or SigV2 `AWS KEY:…`), the last run of exactly 20 upper-case letters and digits followed by
/// `/` or `:`; else the `AWSAccessKeyId` query parameter.
pub fn access_key(request: &Request) -> Option<String> {
    if let Some(auth) = request.header("authorization") {
        if let Some(key) = key_in_authorization(auth) {
            return Some(key);
        }
    }
    let query = request.uri.query()?;
    crate::http::form_decode(query).into_iter().find(|(k, _)| k == "AWSAccessKeyId").map(|(_, v)| v)
}

fn key_in_authorization(auth: &str) -> Option<String> {
    let start = auth.find("AWS")? + 3;
    let bytes = auth.as_bytes();
    let key_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut found = None;
    let mut i = start;
    while i < bytes.len() {
        if !key_char(bytes[i]) {
            i += 1;
            continue;
        }
        let run = i;
        while i < bytes.len() && key_char(bytes[i]) {
            i += 1;
        }
        let preceded_by_key_char = run > 0 && key_char(bytes[run - 1]);
        if i - run == 20 && !preceded_by_key_char && matches!(bytes.get(i), Some(b'/' | b':')) {
            found = auth.get(run..i);
        }
    }
    found.map(str::to_owned)
}

/// The account of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:…`), when it names one.
pub fn account_of_arn(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    if parts.next() != Some("arn") {
        return None;
    }
    parts.nth(3).filter(|a| !a.is_empty()).map(str::to_owned)
}

/// The credentials and account of an AssumeRole* answer, in the query protocol's XML or the
/// JSON protocol's document.
pub fn parse_assumed(text: &str) -> Option<Assumed> {
    let get = |path: &[&str]| field(text, path);
    let arn = get(&["AssumedRoleUser", "Arn"])?;
    Some(Assumed {
        access_key_id: get(&["Credentials", "AccessKeyId"])?,
        secret_access_key: get(&["Credentials", "SecretAccessKey"])?,
        session_token: get(&["Credentials", "SessionToken"]).unwrap_or_default(),
        account: account_of_arn(&arn)?,
    })
}

/// The text of element `path[last]` inside `path[0]` … of an XML or JSON answer.
fn field(text: &str, path: &[&str]) -> Option<String> {
    if text.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(text).ok()?;
        return json_field(&value, path);
    }
    let mut rest = text;
    for name in path {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = rest.find(&open)? + open.len();
        let end = rest[start..].find(&close)? + start;
        rest = &rest[start..end];
    }
    Some(rest.trim().to_owned())
}

/// `path` looked up from the top or under a result wrapper (`…Result`), at any depth.
fn json_field(value: &Value, path: &[&str]) -> Option<String> {
    let mut here = value;
    let direct = path.iter().all(|name| match here.get(name) {
        Some(next) => {
            here = next;
            true
        }
        None => false,
    });
    if direct {
        return here.as_str().map(str::to_owned);
    }
    value.as_object()?.values().filter(|v| v.is_object()).find_map(|v| json_field(v, path))
}

/// Asks the backend's STS, in `account`, for credentials of `role_arn` (as Lambda does for a
/// function's execution role); moto maps the key it hands out to the role's account, and so does
/// `accounts`.
pub async fn assume_role(
    backend: &Forwarder,
    accounts: &Accounts,
    account: &str,
    region: &str,
    role_arn: &str,
    session: &str,
) -> Result<Assumed, String> {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}&DurationSeconds=43200",
        encode(role_arn),
        encode(session)
    );
    let mut headers = hyper::HeaderMap::new();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=local/20260101/{region}/sts/aws4_request, SignedHeaders=host, Signature=0"
    );
    for (name, value) in [
        ("content-type", "application/x-www-form-urlencoded; charset=utf-8".to_owned()),
        ("authorization", auth),
        (ACCOUNT_HEADER, account.to_owned()),
    ] {
        let value = hyper::header::HeaderValue::from_str(&value).map_err(|e| format!("header {name}: {e}"))?;
        headers.insert(name, value);
    }
    let request =
        Request { method: hyper::Method::POST, uri: hyper::Uri::from_static("/"), headers, body: Bytes::from(body) };
    let answer = backend.forward(&request).await;
    let status = answer.status();
    let bytes = http_body_util::BodyExt::collect(answer).await.map(|c| c.to_bytes()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        return Err(format!("assuming {role_arn}: HTTP {status}: {text}"));
    }
    let assumed = parse_assumed(&text).ok_or_else(|| format!("assuming {role_arn}: no credentials in the answer"))?;
    accounts.learn(&assumed.access_key_id, &assumed.account);
    Ok(assumed)
}

/// An SDK interceptor that names the account of every request (`x-moto-account-id`), so that a
/// client of the front acts in one account whatever its credentials. One trait serves every
/// service's client (each SDK crate re-exports the same `Intercept`).
#[derive(Debug, Clone)]
pub struct AccountHeader(String);

impl AccountHeader {
    pub fn new(account: &str) -> Self {
        AccountHeader(account.to_owned())
    }
}

impl aws_sdk_ec2::config::Intercept for AccountHeader {
    fn name(&self) -> &'static str {
        "AccountHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        context.request_mut().headers_mut().try_insert(ACCOUNT_HEADER, self.0.clone())?;
        Ok(())
    }
}

/// An account (or region, or name) as one safe directory name.
pub fn path_component(text: &str) -> String {
    let safe: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if safe.is_empty() || safe != text {
        // Distinct texts stay distinct: the length and a checksum follow the replaced text.
        let sum = text.bytes().fold(0u32, |s, b| s.wrapping_mul(31).wrapping_add(b as u32));
        return format!("{safe}~{}-{sum:08x}", text.len());
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], uri: &'static str) -> Request {
        let mut map = hyper::HeaderMap::new();
        for (k, v) in headers {
            map.insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        Request { method: hyper::Method::POST, uri: hyper::Uri::from_static(uri), headers: map, body: Bytes::new() }
    }

    const SIGV4: &str = "AWS4-HMAC-SHA256 Credential=FSIAQAAAAAAAAAAAAAAB/20260101/us-west-2/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123abcd";

    const ASSUME_XML: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>FSIAQAAAAAAAAAAAAAAB</AccessKeyId>
      <SecretAccessKey>secret/+x</SecretAccessKey>
      <SessionToken>token</SessionToken>
      <Expiration>2026-01-01T01:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROA:student</AssumedRoleId>
      <Arn>arn:aws:sts::222222222222:assumed-role/Student/student</Arn>
    </AssumedRoleUser>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    #[test]
    fn keys_are_read_as_moto_reads_them() {
        assert_eq!(access_key(&request(&[("authorization", SIGV4)], "/")).as_deref(), Some("FSIAQAAAAAAAAAAAAAAB"));
        assert_eq!(
            access_key(&request(&[("authorization", "AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl")], "/")).as_deref(),
            Some("AKIAIOSFODNN7EXAMPLE")
        );
        // Not 20 characters, or part of a longer run: no key (moto's default account).
        let short = "AWS4-HMAC-SHA256 Credential=local/20260101/us-west-2/ec2/aws4_request, Signature=0";
        assert_eq!(access_key(&request(&[("authorization", short)], "/")), None);
        let long = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLEX/20260101/us-west-2/ec2/aws4_request";
        assert_eq!(access_key(&request(&[("authorization", long)], "/")), None);
        assert_eq!(
            access_key(&request(&[], "/?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x")).as_deref(),
            Some("AKIAIOSFODNN7EXAMPLE")
        );
        assert_eq!(access_key(&request(&[], "/")), None);
    }

    #[test]
    fn the_account_is_the_header_then_the_key_then_the_default() {
        let accounts = Accounts::default();
        let signed = request(&[("authorization", SIGV4)], "/");
        assert_eq!(accounts.of(&signed), DEFAULT_ACCOUNT);
        assert_eq!(
            accounts.observe("AssumeRole", DEFAULT_ACCOUNT, ASSUME_XML.as_bytes()).as_deref(),
            Some("FSIAQAAAAAAAAAAAAAAB")
        );
        assert_eq!(accounts.of(&signed), "222222222222");
        let named = request(&[("authorization", SIGV4), (ACCOUNT_HEADER, "333333333333")], "/");
        assert_eq!(accounts.of(&named), "333333333333");
        assert_eq!(accounts.of(&request(&[], "/")), DEFAULT_ACCOUNT);
    }

    #[test]
    fn assume_role_answers_teach_their_key_in_xml_and_json() {
        let xml = parse_assumed(ASSUME_XML).unwrap();
        assert_eq!(
            xml,
            Assumed {
                access_key_id: "FSIAQAAAAAAAAAAAAAAB".into(),
                secret_access_key: "secret/+x".into(),
                session_token: "token".into(),
                account: "222222222222".into(),
            }
        );
        let json = r#"{"Credentials": {"AccessKeyId": "ASIAJSON000000000001", "SecretAccessKey": "s", "SessionToken": "t"},
            "AssumedRoleUser": {"Arn": "arn:aws:sts::444444444444:assumed-role/R/web", "AssumedRoleId": "x"}}"#;
        assert_eq!(parse_assumed(json).unwrap().account, "444444444444");
        let wrapped = format!(r#"{{"AssumeRoleWithWebIdentityResult": {json}}}"#);
        assert_eq!(parse_assumed(&wrapped).unwrap().access_key_id, "ASIAJSON000000000001");
        let accounts = Accounts::default();
        accounts.observe("AssumeRoleWithWebIdentity", DEFAULT_ACCOUNT, json.as_bytes());
        assert_eq!(accounts.account_of_key("ASIAJSON000000000001").as_deref(), Some("444444444444"));
        // Errors and other operations teach nothing.
        let error = "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>";
        assert_eq!(accounts.observe("AssumeRole", DEFAULT_ACCOUNT, error.as_bytes()), None);
        assert_eq!(accounts.observe("DescribeSecurityGroups", DEFAULT_ACCOUNT, ASSUME_XML.as_bytes()), None);
    }

    #[test]
    fn created_access_keys_belong_to_the_caller() {
        let accounts = Accounts::default();
        let answer = "<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey><UserName>u</UserName>\
            <AccessKeyId>AKIAUSER000000000001</AccessKeyId><Status>Active</Status></AccessKey>\
            </CreateAccessKeyResult></CreateAccessKeyResponse>";
        accounts.observe("CreateAccessKey", "555555555555", answer.as_bytes());
        assert_eq!(accounts.account_of_key("AKIAUSER000000000001").as_deref(), Some("555555555555"));
    }

    #[test]
    fn arns_name_their_account() {
        assert_eq!(account_of_arn("arn:aws:iam::111111111111:role/x").as_deref(), Some("111111111111"));
        assert_eq!(account_of_arn("arn:aws:lambda:us-west-2:222222222222:function:f").as_deref(), Some("222222222222"));
        assert_eq!(account_of_arn("arn:aws:s3:::bucket"), None);
        assert_eq!(account_of_arn("function-name"), None);
    }

    #[test]
    fn path_components_are_safe_and_distinct() {
        assert_eq!(path_component("123456789012"), "123456789012");
        assert_eq!(path_component("us-west-2"), "us-west-2");
        let odd = path_component("../x");
        assert!(!odd.contains('/') && !odd.starts_with(".."), "{odd}");
        assert_ne!(path_component("a/b"), path_component("a_b"));
        assert_ne!(path_component(""), "");
    }
}
