// Lab step 3: the function that reverts security-group ingress, from the cargo-lambda zip.
// Owns the function role (the lab's inline policy, or the least-privilege one), the function, its
// log group, and the permission that lets Config invoke it. `deploy`'s counterparts: role.rs,
// function.rs.

import { Aws, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { zipArchitecture } from './artifact';
import { readPolicy } from './policy';

/** The function's settings, as `deploy` sets them (deploy/src/resources/function.rs). */
export const FUNCTION_SETTINGS = {
  handler: 'bootstrap',
  memorySize: 128,
  timeoutSeconds: 60,
} as const;

/** The function role's inline policy: the lab's exactly, or scoped (`deploy up --policy`). */
export type FunctionPolicy = 'lab' | 'least-privilege';

/** The `policy/` document of each choice. */
export const FUNCTION_POLICY_FILES: Record<FunctionPolicy, string> = {
  lab: 'lambda-lab-policy.json',
  'least-privilege': 'lambda-least-privilege-policy.json',
};

/** Every choice, for `-c functionPolicy=…`. */
export const FUNCTION_POLICIES = Object.keys(FUNCTION_POLICY_FILES) as FunctionPolicy[];

export interface RemediationFunctionProps {
  readonly functionName: string;
  readonly description: string;
  readonly functionRoleName: string;
  /** The function role's inline policy's name. */
  readonly functionPolicyName: string;
  /** Which document that policy is (see FUNCTION_POLICY_FILES). */
  readonly functionPolicy: FunctionPolicy;
  /** The deployment zip; its `bootstrap` decides the architecture. */
  readonly zipPath: string;
  /** The function's environment variables. @default none */
  readonly environment?: Record<string, string>;
  /** Construct id of the invoke permission (CloudFormation picks the statement id). */
  readonly permissionId: string;
  /** Where the policy documents are read from. @default policy/ of the repository */
  readonly policyDir?: string;
}

export class RemediationFunction extends Construct {
  public readonly role: iam.CfnRole;
  public readonly logGroup: logs.LogGroup;
  public readonly function: lambda.Function;
  public readonly permission: lambda.CfnPermission;

  constructor(scope: Construct, id: string, props: RemediationFunctionProps) {
    super(scope, id);
    const values = {
      'AWS::AccountId': Aws.ACCOUNT_ID,
      'AWS::Partition': Aws.PARTITION,
      'AWS::Region': Aws.REGION,
      FunctionName: props.functionName,
    };

    // An L1 role: its trust and inline policy are the files as they are, and nothing (such as
    // AWSLambdaBasicExecutionRole) is added behind the lab's back.
    this.role = new iam.CfnRole(this, 'Role', {
      roleName: props.functionRoleName,
      assumeRolePolicyDocument: readPolicy('lambda-trust.json', values, props.policyDir),
      policies: [
        {
          policyName: props.functionPolicyName,
          policyDocument: readPolicy(FUNCTION_POLICY_FILES[props.functionPolicy], values, props.policyDir),
        },
      ],
    });

    if (props.functionPolicy === 'lab') {
      Validations.of(this.role).acknowledge(
        {
          id: 'AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:logs:*:*:*]',
          reason:
            "The lab's inline policy, kept exactly as the lab wrote it (policy/lambda-lab-policy.json): the function " +
            'writes to its own log group and streams, whose names Lambda chooses at run time.',
        },
        {
          id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
          reason:
            'config:PutEvaluations and ec2:DescribeSecurityGroups support no resource-level permissions, and the ' +
            'function must authorize and revoke ingress on whichever security group Config sends it, in any VPC.',
        },
      );
    } else {
      Validations.of(this.role).acknowledge(
        {
          id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
          reason:
            'Only for the actions that support no resource-level permissions: ec2:DescribeSecurityGroups, ' +
            'ec2:DescribeSecurityGroupRules and config:PutEvaluations (policy/lambda-least-privilege-policy.json).',
        },
        {
          id:
            'AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:' +
            `log-group:/aws/lambda/${props.functionName}:*]`,
          reason:
            "The function's own log group: Lambda names the log streams in it at run time, so the streams cannot " +
            'be listed in advance.',
        },
        {
          id: 'AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:security-group/*]',
          reason:
            "Ingress is authorized and revoked on whichever of this account's security groups Config or the fast " +
            'path sends, in any VPC of the region: the groups are not known when the stack is deployed.',
        },
      );
    }

    // The log group Lambda would create on first run (`/aws/lambda/<function>`), owned by the
    // stack so that deleting the stack removes it, as `deploy down` does; kept forever while the
    // stack lives, like Lambda's own. Given to the function, so that CDK adds no second one.
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      logGroupName: `/aws/lambda/${props.functionName}`,
      retention: logs.RetentionDays.INFINITE,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const architecture =
      zipArchitecture(props.zipPath) === 'x86_64' ? lambda.Architecture.X86_64 : lambda.Architecture.ARM_64;
    this.function = new lambda.Function(this, 'Function', {
      functionName: props.functionName,
      description: props.description,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      handler: FUNCTION_SETTINGS.handler,
      code: lambda.Code.fromAsset(props.zipPath),
      architecture,
      memorySize: FUNCTION_SETTINGS.memorySize,
      environment: props.environment,
      timeout: Duration.seconds(FUNCTION_SETTINGS.timeoutSeconds),
      role: iam.Role.fromRoleArn(this, 'RoleRef', this.role.attrArn, { mutable: false }),
      logGroup: this.logGroup,
    });

    this.permission = new lambda.CfnPermission(this, props.permissionId, {
      action: 'lambda:InvokeFunction',
      functionName: this.function.functionArn,
      principal: 'config.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
    });
  }
}
