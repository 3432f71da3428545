//! The evaluation APIs the backend cannot answer, from [`Evaluations`]' state: PutEvaluations
//! (checking the result token), the compliance reads (GetComplianceDetailsByConfigRule paged as
//! Config pages it) and the rules' evaluation status.

use super::*;

impl Evaluations {
    /// Answers the Config operations the backend cannot, in `account`; `None` for the others.
    pub fn handle(
        &self,
        operation: &str,
        account: &str,
        region: &str,
        request: &Request,
        behaviours: &Behaviours,
    ) -> Option<Response> {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_else(|_| json!({}));
        Some(match operation {
            "PutEvaluations" => self.put_evaluations(account, &body),
            "GetComplianceDetailsByConfigRule" => {
                let rule = body["ConfigRuleName"].as_str().unwrap_or_default();
                let page = match behaviours.compliance_paging {
                    true => match Page::of(account, region, rule, &body) {
                        Ok(page) => Some(page),
                        Err(refused) => return Some(*refused),
                    },
                    false => None,
                };
                let wanted: Vec<&str> = body["ComplianceTypes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let results: Vec<Value> = self
                    .latest(account, region, rule)
                    .into_iter()
                    .filter(|s| wanted.is_empty() || wanted.contains(&s.compliance.as_str()))
                    .map(|s| {
                        json!({
                            "EvaluationResultIdentifier": {
                                "EvaluationResultQualifier": {"ConfigRuleName": s.rule, "ResourceType": s.resource_type, "ResourceId": s.resource_id, "EvaluationMode": "DETECTIVE"},
                                "OrderingTimestamp": s.ordering_timestamp,
                            },
                            "ComplianceType": s.compliance,
                            "ResultRecordedTime": s.recorded,
                            "ConfigRuleInvokedTime": s.invoked,
                            "Annotation": s.annotation,
                        })
                    })
                    .collect();
                match page {
                    None => http::json(200, &json!({"EvaluationResults": results})),
                    Some(page) => page.answer(results),
                }
            }
            "DescribeComplianceByConfigRule" => {
                let names = self.rule_names(account, region, &body["ConfigRuleNames"]);
                let rules: Vec<Value> = names
                    .iter()
                    .map(|rule| {
                        let latest = self.latest(account, region, rule);
                        let non = latest.iter().filter(|s| s.compliance == "NON_COMPLIANT").count();
                        let compliance = if latest.is_empty() {
                            json!({"ComplianceType": "INSUFFICIENT_DATA"})
                        } else if non > 0 {
                            json!({"ComplianceType": "NON_COMPLIANT", "ComplianceContributorCount": {"CappedCount": non, "CapExceeded": false}})
                        } else {
                            json!({"ComplianceType": "COMPLIANT"})
                        };
                        json!({"ConfigRuleName": rule, "Compliance": compliance})
                    })
                    .collect();
                http::json(200, &json!({"ComplianceByConfigRules": rules}))
            }
            "DescribeComplianceByResource" => {
                let resource_type = body["ResourceType"].as_str();
                let resource_id = body["ResourceId"].as_str();
                let mut by_resource: HashMap<(String, String), Vec<String>> = HashMap::new();
                for rule in self.rules_of(account, region) {
                    for s in self.latest(account, region, &rule) {
                        by_resource
                            .entry((s.resource_type.clone(), s.resource_id.clone()))
                            .or_default()
                            .push(s.compliance);
                    }
                }
                let mut out: Vec<Value> = by_resource
                    .into_iter()
                    .filter(|((t, id), _)| resource_type.is_none_or(|x| x == t) && resource_id.is_none_or(|x| x == id))
                    .map(|((t, id), types)| {
                        let compliance = if types.iter().any(|c| c == "NON_COMPLIANT") {
                            "NON_COMPLIANT"
                        } else if types.iter().any(|c| c == "COMPLIANT") {
                            "COMPLIANT"
                        } else {
                            "NOT_APPLICABLE"
                        };
                        json!({"ResourceType": t, "ResourceId": id, "Compliance": {"ComplianceType": compliance}})
                    })
                    .collect();
                out.sort_by(|a, b| a["ResourceId"].as_str().cmp(&b["ResourceId"].as_str()));
                http::json(200, &json!({"ComplianceByResources": out}))
            }
            "DescribeConfigRuleEvaluationStatus" => {
                let names = self.rule_names(account, region, &body["ConfigRuleNames"]);
                let status = lock(&self.status);
                let out: Vec<Value> = names
                    .iter()
                    .filter_map(|rule| status.get(&rule_key(account, region, rule)).map(|s| (rule, s)))
                    .map(|(rule, s)| {
                        json!({
                            "ConfigRuleName": rule,
                            "FirstActivatedTime": s.first_activated,
                            "LastSuccessfulInvocationTime": s.last_successful_invocation,
                            "LastFailedInvocationTime": s.last_failed_invocation,
                            "LastSuccessfulEvaluationTime": s.last_successful_evaluation,
                            "LastFailedEvaluationTime": s.last_failed_evaluation,
                            "LastErrorCode": s.last_error_code,
                            "LastErrorMessage": s.last_error_message,
                            "FirstEvaluationStarted": s.last_successful_invocation.is_some() || s.last_failed_invocation.is_some(),
                        })
                    })
                    .collect();
                http::json(200, &json!({"ConfigRulesEvaluationStatus": out}))
            }
            "DeleteEvaluationResults" => {
                let rule = body["ConfigRuleName"].as_str().unwrap_or_default();
                lock(&self.stored).retain(|s| !s.of(account, region, rule));
                http::json(200, &json!({}))
            }
            _ => return None,
        })
    }

    fn rule_names(&self, account: &str, region: &str, names: &Value) -> Vec<String> {
        match names.as_array() {
            Some(names) if !names.is_empty() => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => self.rules_of(account, region),
        }
    }

    /// Stores evaluations under the token's rule; a token is valid only in the account of the
    /// rule it was issued for.
    fn put_evaluations(&self, account: &str, body: &Value) -> Response {
        let token = body["ResultToken"].as_str().unwrap_or_default();
        if body["TestMode"].as_bool() == Some(true) {
            return http::json(200, &json!({"FailedEvaluations": []}));
        }
        let found = lock(&self.tokens)
            .get(token)
            .filter(|t| t.account == account)
            .map(|t| (t.region.clone(), t.rule.clone(), t.invoked));
        let Some((region, rule, invoked)) = found else {
            return http::json_error(400, "InvalidResultTokenException", "The result token is invalid.");
        };
        let Some(evaluations) = body["Evaluations"].as_array() else {
            return http::json_error(
                400,
                "InvalidParameterValueException",
                "The Evaluations object in your request cannot be null.",
            );
        };
        let mut failed = Vec::new();
        let mut stored = Vec::new();
        for e in evaluations {
            let compliance = e["ComplianceType"].as_str().unwrap_or_default();
            let valid = matches!(compliance, "COMPLIANT" | "NON_COMPLIANT" | "NOT_APPLICABLE")
                && e["ComplianceResourceType"].is_string()
                && e["ComplianceResourceId"].is_string()
                && e["OrderingTimestamp"].is_number()
                && e["Annotation"].as_str().is_none_or(|a| a.chars().count() <= 256);
            if !valid {
                failed.push(e.clone());
                continue;
            }
            stored.push(Stored {
                account: account.to_owned(),
                region: region.clone(),
                rule: rule.clone(),
                resource_type: e["ComplianceResourceType"].as_str().unwrap_or_default().to_owned(),
                resource_id: e["ComplianceResourceId"].as_str().unwrap_or_default().to_owned(),
                compliance: compliance.to_owned(),
                annotation: e["Annotation"].as_str().map(str::to_owned),
                ordering_timestamp: e["OrderingTimestamp"].as_f64().unwrap_or_default(),
                recorded: now(),
                invoked,
            });
        }
        for s in &stored {
            info!(
                "evaluation of {}: {} {} {}",
                s.rule,
                s.resource_id,
                s.compliance,
                s.annotation.as_deref().unwrap_or("")
            );
        }
        lock(&self.stored).extend(stored);
        let mut status = lock(&self.status);
        let entry = status.entry((account.to_owned(), region, rule)).or_default();
        entry.last_successful_evaluation = Some(now());
        http::json(200, &json!({"FailedEvaluations": failed}))
    }
}

/// One page of GetComplianceDetailsByConfigRule, as Config pages it (API reference,
/// GetComplianceDetailsByConfigRule: "Limit … The default is 10. You cannot specify a number
/// greater than 100. If you specify 0, AWS Config uses the default."; Valid Range 0–100). A limit
/// out of range fails the service's input validation (`ValidationException`, as Config answers
/// for any member out of its range); a token that is not one this rule's answer gave is
/// `InvalidNextTokenException`.
struct Page {
    offset: usize,
    limit: usize,
    /// Ties a token to its rule.
    seal: u64,
}

impl Page {
    const DEFAULT: usize = 10;
    const MAX: i64 = 100;

    fn of(account: &str, region: &str, rule: &str, body: &Value) -> Result<Page, Box<Response>> {
        let limit = match &body["Limit"] {
            Value::Null => 0,
            value => value
                .as_i64()
                .ok_or_else(|| http::json_error(400, "SerializationException", "Limit must be an integer"))?,
        };
        let out_of_range = |constraint: &str| {
            Box::new(http::json_error(
                400,
                "ValidationException",
                &format!("1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value {constraint}"),
            ))
        };
        if limit > Self::MAX {
            return Err(out_of_range("less than or equal to 100"));
        }
        if limit < 0 {
            return Err(out_of_range("greater than or equal to 0"));
        }
        let limit = if limit == 0 { Self::DEFAULT } else { limit as usize };
        let seal = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (account, region, rule).hash(&mut hasher);
            hasher.finish()
        };
        let offset = match body["NextToken"].as_str().filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => {
                let parsed = token.split_once('.').and_then(|(offset, sealed)| {
                    let offset = usize::from_str_radix(offset, 16).ok()?;
                    (u64::from_str_radix(sealed, 16).ok()? == seal).then_some(offset)
                });
                parsed.ok_or_else(|| {
                    Box::new(http::json_error(
                        400,
                        "InvalidNextTokenException",
                        "The nextToken provided is invalid. Specify the nextToken string that was returned in the previous response to get the next page of results.",
                    ))
                })?
            }
        };
        Ok(Page { offset, limit, seal })
    }

    fn token(&self, offset: usize) -> String {
        format!("{offset:x}.{:x}", self.seal)
    }

    /// This page of `results` and, when more follow, the token of the next.
    fn answer(&self, results: Vec<Value>) -> Response {
        let total = results.len();
        let end = self.offset.saturating_add(self.limit).min(total);
        let page: Vec<Value> = results.into_iter().skip(self.offset).take(self.limit).collect();
        let mut out = json!({"EvaluationResults": page});
        if end < total {
            out["NextToken"] = json!(self.token(end));
        }
        http::json(200, &out)
    }
}
