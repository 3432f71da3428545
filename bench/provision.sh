#!/usr/bin/env bash
# The lab's console steps as a bash script of awscli calls: the baseline `deploy up` / `deploy
# down` are measured against (bench item 2). Each line is one click-through of LAB.md:
#   up:   step 1 (bucket + policy, Config role, recorder, channel, start), step 3 (function role,
#         function), step 4 (invoke permission, rule)
#   down: step 6, in reverse order
# It does what a student scripting the console would do, nothing more: no ownership checks, no
# tags, no hardening (public access block, encryption) — `deploy` does all of those on top, so
# the comparison favours this script.
# Usage: provision.sh up ZIP | provision.sh down
# Needs `aws` on PATH and AWS_ENDPOINT_URL / credentials / AWS_DEFAULT_REGION in the environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
policy="$here/../policy"
region="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-west-2}}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

account="$(aws sts get-caller-identity --query Account --output text)"
bucket="config-bucket-$account"
config_role="config-role-$region"
function_role="awsconfig_lambda_ec2_security_group_role"
function="awsconfig_lambda_security_group"
rule="EC2_Security_Group"

# The policy documents of policy/, placeholders filled in (the console's defaults).
fill() {
  sed -e "s/\${AWS::AccountId}/$account/g" -e 's/\${AWS::Partition}/aws/g' -e "s/\${BucketName}/$bucket/g" \
    "$policy/$1" >"$tmp/$1"
  echo "file://$tmp/$1"
}

case "${1:-}" in
  up)
    zip="${2:?usage: provision.sh up ZIP}"
    # Step 1: delivery bucket, Config role, recorder (security groups only), channel, recording.
    aws s3api create-bucket --bucket "$bucket" --create-bucket-configuration "LocationConstraint=$region" >/dev/null
    aws s3api put-bucket-policy --bucket "$bucket" --policy "$(fill config-bucket-policy.json)"
    aws iam create-role --role-name "$config_role" --assume-role-policy-document "$(fill config-trust.json)" >/dev/null
    aws iam attach-role-policy --role-name "$config_role" \
      --policy-arn arn:aws:iam::aws:policy/service-role/AWS_ConfigRole
    aws iam put-role-policy --role-name "$config_role" --policy-name config-delivery \
      --policy-document "$(fill config-delivery-policy.json)"
    aws configservice put-configuration-recorder \
      --configuration-recorder "name=default,roleARN=arn:aws:iam::$account:role/$config_role" \
      --recording-group allSupported=false,includeGlobalResourceTypes=false,resourceTypes=AWS::EC2::SecurityGroup
    aws configservice put-delivery-channel --delivery-channel "name=default,s3BucketName=$bucket"
    aws configservice start-configuration-recorder --configuration-recorder-name default
    # Step 3: the function's role with the lab's inline policy, the function.
    aws iam create-role --role-name "$function_role" \
      --assume-role-policy-document "$(fill lambda-trust.json)" >/dev/null
    aws iam put-role-policy --role-name "$function_role" --policy-name lab-policy \
      --policy-document "$(fill lambda-lab-policy.json)"
    aws lambda create-function --function-name "$function" --description "restrict ingress ports" \
      --runtime provided.al2023 --handler bootstrap --memory-size 128 --timeout 60 \
      --role "arn:aws:iam::$account:role/$function_role" --zip-file "fileb://$zip" >/dev/null
    # Step 4: Config may invoke the function (the console adds this silently); the rule.
    aws lambda add-permission --function-name "$function" --statement-id config-invoke \
      --action lambda:InvokeFunction --principal config.amazonaws.com --source-account "$account" >/dev/null
    cat >"$tmp/rule.json" <<JSON
{"ConfigRuleName": "$rule", "Description": "Restrict ingress ports to HTTP and HTTPS",
 "Scope": {"ComplianceResourceTypes": ["AWS::EC2::SecurityGroup"]},
 "Source": {"Owner": "CUSTOM_LAMBDA",
            "SourceIdentifier": "arn:aws:lambda:$region:$account:function:$function",
            "SourceDetails": [{"EventSource": "aws.config", "MessageType": "ConfigurationItemChangeNotification"},
                              {"EventSource": "aws.config", "MessageType": "OversizedConfigurationItemChangeNotification"}]},
 "InputParameters": "{\"debug\":\"true\"}"}
JSON
    aws configservice put-config-rule --config-rule "file://$tmp/rule.json"
    ;;
  down)
    # Step 6, reverse order.
    aws configservice delete-config-rule --config-rule-name "$rule"
    aws lambda delete-function --function-name "$function"
    aws logs delete-log-group --log-group-name "/aws/lambda/$function" 2>/dev/null || true
    aws iam delete-role-policy --role-name "$function_role" --policy-name lab-policy
    aws iam delete-role --role-name "$function_role"
    aws configservice stop-configuration-recorder --configuration-recorder-name default
    aws configservice delete-delivery-channel --delivery-channel-name default
    aws configservice delete-configuration-recorder --configuration-recorder-name default
    aws iam detach-role-policy --role-name "$config_role" \
      --policy-arn arn:aws:iam::aws:policy/service-role/AWS_ConfigRole
    aws iam delete-role-policy --role-name "$config_role" --policy-name config-delivery
    aws iam delete-role --role-name "$config_role"
    aws s3 rb "s3://$bucket" --force >/dev/null
    ;;
  *)
    echo "usage: provision.sh up ZIP | provision.sh down" >&2
    exit 2
    ;;
esac
