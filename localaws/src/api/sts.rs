//! STS and IAM, and every request the front does not handle: forwarded to moto unchanged, while
//! [`crate::accounts`] learns the access keys AssumeRole and CreateAccessKey hand out.

use tracing::info;

use crate::http::{Request, Response};
use crate::Front;

impl Front {
    /// Forwards a request unchanged, learning the access keys STS and IAM hand out.
    pub(crate) async fn pass(&self, account: &str, operation: &str, request: &Request) -> Response {
        let answer = self.forwarder.forward(request).await;
        let teaches = ["AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML", "CreateAccessKey"];
        if !answer.status().is_success() || !teaches.contains(&operation) {
            return answer;
        }
        let (parts, body) = answer.into_parts();
        let body = http_body_util::BodyExt::collect(body).await.map(|c| c.to_bytes()).unwrap_or_default();
        if let Some(key) = self.accounts.observe(operation, account, &body) {
            info!("access key {key} acts in account {}", self.accounts.account_of_key(&key).unwrap_or_default());
        }
        hyper::Response::from_parts(parts, http_body_util::Full::new(body))
    }
}
