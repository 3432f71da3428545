// The lab's stack: the same resources `deploy up` converges to
// (deploy/src/commands/up.rs `desired()`), composed from the recording (lab step 1) and the
// function (lab step 3), plus the custom Config rule (lab step 4) and, with `fastPath`, the
// event fast path (`deploy up --fast-path`).
// Every taggable resource carries the lab's tag.

import * as path from 'path';
import { Aws, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as config from 'aws-cdk-lib/aws-config';
import { Construct } from 'constructs';
import { FastPath } from './fast-path';
import { ConfigRecording } from './recording';
import { FunctionPolicy, RemediationFunction } from './remediation';

/** The `cdk/` directory. */
export const CDK_DIR = path.resolve(__dirname, '..');

/** The tag that marks the lab's resources; `deploy down` recognises them by it. */
export const OWNER_TAG = { key: 'managed-by', value: 'sg-monitoring-lab' } as const;

export const SECURITY_GROUP = 'AWS::EC2::SecurityGroup';
export const FUNCTION_DESCRIPTION = 'restrict ingress ports';
export const RULE_DESCRIPTION = 'Restrict ingress ports to HTTP and HTTPS';
/** "Configuration changes", including those too large for one notification. */
export const MESSAGE_TYPES = [
  'ConfigurationItemChangeNotification',
  'OversizedConfigurationItemChangeNotification',
] as const;

/** The lab's names (the console's defaults), as `deploy` uses them (deploy/src/lab.rs). */
export const LAB_DEFAULTS = {
  functionZip: '../target/lambda/arm64/bootstrap/bootstrap.zip',
  bucketName: `config-bucket-${Aws.ACCOUNT_ID}`,
  configRoleName: `config-role-${Aws.REGION}`,
  recorderName: 'default',
  channelName: 'default',
  functionRoleName: 'awsconfig_lambda_ec2_security_group_role',
  functionPolicyName: 'awsconfig_lambda_ec2_security_group_policy',
  functionPolicy: 'lab' as FunctionPolicy,
  deliveryPolicyName: 'config-bucket-delivery',
  configManagedPolicy: 'service-role/AWS_ConfigRole',
  functionName: 'awsconfig_lambda_security_group',
  ruleName: 'EC2_Security_Group',
  permissionId: 'config-invoke',
  ruleParameters: { debug: 'true' } as Record<string, string>,
  fastPath: false,
  trailName: 'sg-monitoring-lab-trail',
  fastPathRuleName: 'sg-monitoring-lab-fast-path',
};

export interface SgMonitoringLabStackProps extends StackProps {
  /** The cargo-lambda zip, relative to `cdk/` or absolute. @default ../target/lambda/arm64/bootstrap/bootstrap.zip */
  readonly functionZip?: string;
  /** @default config-bucket-<account-id> */
  readonly bucketName?: string;
  /** @default config-role-<region> */
  readonly configRoleName?: string;
  /** @default default */
  readonly recorderName?: string;
  /** @default default */
  readonly channelName?: string;
  /** @default awsconfig_lambda_ec2_security_group_role */
  readonly functionRoleName?: string;
  /** @default awsconfig_lambda_ec2_security_group_policy */
  readonly functionPolicyName?: string;
  /**
   * The function role's inline policy (`deploy up --policy`): `lab`, the lab's exact policy
   * (policy/lambda-lab-policy.json), or `least-privilege`, scoped to the function's own log
   * group and this account's security groups (policy/lambda-least-privilege-policy.json).
   * @default lab
   */
  readonly functionPolicy?: FunctionPolicy;
  /** @default config-bucket-delivery */
  readonly deliveryPolicyName?: string;
  /** @default service-role/AWS_ConfigRole */
  readonly configManagedPolicy?: string;
  /** @default awsconfig_lambda_security_group */
  readonly functionName?: string;
  /** @default EC2_Security_Group */
  readonly ruleName?: string;
  /** The invoke permission's construct id. @default config-invoke */
  readonly permissionId?: string;
  /** The rule's parameters (see docs/function.md, "Rule parameters"). @default {"debug":"true"} */
  readonly ruleParameters?: Record<string, string>;
  /**
   * The event fast path: a CloudTrail trail delivering to the lab bucket under `cloudtrail/`, an
   * EventBridge rule on security-group ingress calls that invokes the function, its invoke
   * permission, and the function's `RULE_PARAMETERS`. @default false
   */
  readonly fastPath?: boolean;
  /** The fast path's trail. @default sg-monitoring-lab-trail */
  readonly trailName?: string;
  /** The fast path's EventBridge rule. @default sg-monitoring-lab-fast-path */
  readonly fastPathRuleName?: string;
  /** Where the policy documents are read from. @default policy/ of the repository */
  readonly policyDir?: string;
}

export class SgMonitoringLabStack extends Stack {
  public readonly recording: ConfigRecording;
  public readonly remediation: RemediationFunction;
  public readonly rule: config.CfnConfigRule;
  /** The fast path, when `fastPath` is on. */
  public readonly fastPath?: FastPath;

  constructor(scope: Construct, id: string, props: SgMonitoringLabStackProps = {}) {
    super(scope, id, {
      description: 'The lab "Monitoring Security Groups with AWS Config" (sg-monitoring-lab)',
      ...props,
    });
    const p = { ...LAB_DEFAULTS, ...definedOnly(props) };
    // The rule's parameters as Config passes them (`ruleParameters` in the invoking event): the
    // fast path's events carry none, so the function reads them from its environment.
    const ruleParametersJson = JSON.stringify(p.ruleParameters);

    this.recording = new ConfigRecording(this, 'Recording', {
      bucketName: p.bucketName,
      configRoleName: p.configRoleName,
      deliveryPolicyName: p.deliveryPolicyName,
      configManagedPolicy: p.configManagedPolicy,
      recorderName: p.recorderName,
      channelName: p.channelName,
      resourceTypes: [SECURITY_GROUP],
      trailName: p.fastPath ? p.trailName : undefined,
      policyDir: p.policyDir,
    });

    this.remediation = new RemediationFunction(this, 'Remediation', {
      functionName: p.functionName,
      description: FUNCTION_DESCRIPTION,
      functionRoleName: p.functionRoleName,
      functionPolicyName: p.functionPolicyName,
      functionPolicy: p.functionPolicy,
      zipPath: path.resolve(CDK_DIR, p.functionZip),
      environment: p.fastPath ? { RULE_PARAMETERS: ruleParametersJson } : undefined,
      permissionId: p.permissionId,
      policyDir: p.policyDir,
    });

    this.rule = new config.CfnConfigRule(this, 'Rule', {
      configRuleName: p.ruleName,
      description: RULE_DESCRIPTION,
      inputParameters: p.ruleParameters,
      scope: { complianceResourceTypes: [SECURITY_GROUP] },
      source: {
        owner: 'CUSTOM_LAMBDA',
        sourceIdentifier: this.remediation.function.functionArn,
        sourceDetails: MESSAGE_TYPES.map((messageType) => ({ eventSource: 'aws.config', messageType })),
      },
    });
    this.rule.addResourceDependency(this.recording.recorder, 'Config evaluates the rule as soon as it exists');
    this.rule.addResourceDependency(this.recording.channel, 'recording starts once the channel exists');
    this.rule.addResourceDependency(this.remediation.permission, 'Config checks it may invoke the function');

    if (p.fastPath) {
      this.fastPath = new FastPath(this, 'FastPath', {
        trailName: p.trailName,
        ruleName: p.fastPathRuleName,
        bucket: this.recording.bucket,
        bucketPolicy: this.recording.bucketPolicy,
        function: this.remediation.function,
        policyDir: p.policyDir,
      });
    }

    Tags.of(this).add(OWNER_TAG.key, OWNER_TAG.value);
  }
}

/** The props that were given, so that an explicit `undefined` keeps the lab's default. */
function definedOnly<T extends object>(props: T): Partial<T> {
  return Object.fromEntries(Object.entries(props).filter(([, value]) => value !== undefined)) as Partial<T>;
}
