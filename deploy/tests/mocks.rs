//! Paths moto cannot produce, with `aws-smithy-mocks`: IAM propagation delays and access denied.

use aws_sdk_config::operation::describe_config_rules::DescribeConfigRulesError;
use aws_sdk_config::operation::put_config_rule::{PutConfigRuleError, PutConfigRuleOutput};
use aws_sdk_config::types::error::{InsufficientPermissionsException, NoSuchConfigRuleException};
use aws_sdk_lambda::operation::create_function::{CreateFunctionError, CreateFunctionOutput};
use aws_sdk_lambda::operation::get_function::GetFunctionError;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::types::error::{InvalidParameterValueException, ResourceNotFoundException};
use aws_sdk_lambda::types::{LastUpdateStatus, State};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use deploy::artifact::Artifact;
use deploy::lab::{Clients, FunctionPolicy, Lab, NameOverrides, Names};
use deploy::report::Action;

/// A lab whose clients all point at a closed port, so an unexpected call fails loudly.
async fn lab() -> Lab {
    let sdk = testkit::sdk_config("http://127.0.0.1:9").await;
    Lab {
        account: "123456789012".into(),
        region: "us-west-2".into(),
        partition: "aws".into(),
        names: Names::new("123456789012", "us-west-2", &NameOverrides::default()),
        clients: Clients::new(&sdk),
        fast_path: false,
        function_policy: FunctionPolicy::Lab,
    }
}

/// Error metadata as the SDK parses it from a response: the code travels with the error.
fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).build()
}

fn artifact() -> Artifact {
    Artifact::from_bytes("bootstrap.zip".into(), testkit::lambda_zip(0x3e, b"v1")).unwrap()
}

fn function_absent() -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_lambda::Client::get_function).then_error(|| {
        GetFunctionError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Function not found")
                .meta(meta("ResourceNotFoundException"))
                .build(),
        )
    })
}

fn function_active() -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_lambda::Client::get_function_configuration).then_output(|| {
        GetFunctionConfigurationOutput::builder()
            .state(State::Active)
            .last_update_status(LastUpdateStatus::Successful)
            .build()
    })
}

#[tokio::test]
async fn function_creation_waits_for_the_new_role_to_propagate() {
    let get = function_absent();
    let create = mock!(aws_sdk_lambda::Client::create_function)
        .sequence()
        .error(|| {
            CreateFunctionError::InvalidParameterValueException(
                InvalidParameterValueException::builder()
                    .message("The role defined for the function cannot be assumed by Lambda.")
                    .meta(meta("InvalidParameterValueException"))
                    .build(),
            )
        })
        .times(2)
        .output(|| CreateFunctionOutput::builder().build())
        .build();
    let ready = function_active();
    let mut lab = lab().await;
    lab.clients.lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&get, &create, &ready]);

    let step = deploy::function::ensure(&lab, &artifact(), false).await.unwrap();

    assert_eq!(step.action, Action::Create);
    assert_eq!(create.num_calls(), 3);
}

#[tokio::test]
async fn access_denied_is_not_retried_and_names_the_operation() {
    let get = function_absent();
    let create = mock!(aws_sdk_lambda::Client::create_function).then_error(|| {
        CreateFunctionError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message(
                    "User: arn:aws:iam::123456789012:user/student is not authorized to perform: lambda:CreateFunction",
                )
                .build(),
        )
    });
    let mut lab = lab().await;
    lab.clients.lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&get, &create]);

    let err = deploy::function::ensure(&lab, &artifact(), false).await.unwrap_err();

    assert_eq!(create.num_calls(), 1);
    assert_eq!(err.exit_code(), deploy::error::exit::FAILED);
    // What was being done, then the service's answer (the mock's HTTP status is its own, 418).
    let text = err.to_string();
    assert!(text.starts_with("creating function awsconfig_lambda_security_group: Lambda answered "), "{text}");
    assert!(
        text.ends_with(" AccessDeniedException: User: arn:aws:iam::123456789012:user/student is not authorized to perform: lambda:CreateFunction"),
        "{text}"
    );
}

#[tokio::test]
async fn rule_creation_waits_until_config_may_invoke_the_function() {
    let describe = mock!(aws_sdk_config::Client::describe_config_rules).then_error(|| {
        DescribeConfigRulesError::NoSuchConfigRuleException(
            NoSuchConfigRuleException::builder().message("no rule").meta(meta("NoSuchConfigRuleException")).build(),
        )
    });
    let put = mock!(aws_sdk_config::Client::put_config_rule)
        .sequence()
        .error(|| {
            PutConfigRuleError::InsufficientPermissionsException(
                InsufficientPermissionsException::builder()
                    .message("The AWS Lambda function cannot be invoked.")
                    .meta(meta("InsufficientPermissionsException"))
                    .build(),
            )
        })
        .output(|| PutConfigRuleOutput::builder().build())
        .build();
    let mut lab = lab().await;
    lab.clients.config = mock_client!(aws_sdk_config, RuleMode::MatchAny, [&describe, &put]);

    let step = deploy::rule::ensure(&lab, false).await.unwrap();

    assert_eq!(step.action, Action::Create);
    assert_eq!(put.num_calls(), 2);
}

/// The lab's rule in `state`, as DescribeConfigRules answers.
fn rule_in(lab: &Lab, state: aws_sdk_config::types::ConfigRuleState) -> aws_sdk_config::types::ConfigRule {
    aws_sdk_config::types::ConfigRule::builder()
        .config_rule_name(&lab.names.rule)
        .config_rule_arn("arn:aws:config:us-west-2:123456789012:config-rule/config-rule-1")
        .config_rule_state(state)
        .build()
}

/// DeleteConfigRule answers ResourceInUseException: when the rule turns out DELETING (a `down`
/// at the same time) it counts as deleted; when it is still ACTIVE (a remediation action holds
/// it) the error stands.
#[tokio::test]
async fn a_rule_in_use_under_down_counts_as_deleted_only_when_config_is_deleting_it() {
    use aws_sdk_config::operation::delete_config_rule::DeleteConfigRuleError;
    use aws_sdk_config::operation::describe_config_rules::DescribeConfigRulesOutput;
    use aws_sdk_config::operation::list_tags_for_resource::ListTagsForResourceOutput;
    use aws_sdk_config::types::error::ResourceInUseException;
    use aws_sdk_config::types::{ConfigRuleState, Tag};

    for (after, deleted) in [(ConfigRuleState::Deleting, true), (ConfigRuleState::Active, false)] {
        let mut lab = lab().await;
        let (active, then) = (rule_in(&lab, ConfigRuleState::Active), rule_in(&lab, after.clone()));
        let describe = mock!(aws_sdk_config::Client::describe_config_rules)
            .sequence()
            .output(move || DescribeConfigRulesOutput::builder().config_rules(active.clone()).build())
            .output(move || DescribeConfigRulesOutput::builder().config_rules(then.clone()).build())
            .build();
        let tags = mock!(aws_sdk_config::Client::list_tags_for_resource).then_output(|| {
            let tag = Tag::builder().key(deploy::lab::OWNER_TAG).value(deploy::lab::OWNER_VALUE).build();
            ListTagsForResourceOutput::builder().tags(tag).build()
        });
        let delete = mock!(aws_sdk_config::Client::delete_config_rule).then_error(|| {
            DeleteConfigRuleError::ResourceInUseException(
                ResourceInUseException::builder()
                    .message("The rule EC2_Security_Group is currently being deleted")
                    .meta(meta("ResourceInUseException"))
                    .build(),
            )
        });
        lab.clients.config = mock_client!(aws_sdk_config, RuleMode::MatchAny, [&describe, &tags, &delete]);

        let step = deploy::rule::delete(&lab, false).await;

        assert_eq!(delete.num_calls(), 1);
        match (deleted, step) {
            (true, Ok(step)) => {
                assert_eq!(step.action, Action::Absent);
                assert!(step.detail.as_deref().is_some_and(|d| d.contains("being deleted")), "{step:?}");
            }
            (false, Err(err)) => assert!(err.to_string().contains("ResourceInUseException"), "{err}"),
            (deleted, step) => panic!("{after:?} (deleted: {deleted}): {step:?}"),
        }
    }
}
