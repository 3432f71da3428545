// Parity with `deploy`: the desired state `deploy up --dry-run --output json` prints and the
// stack this app synthesizes, for the same account, region and zip, agree on names, recorder
// types, rule source/scope/parameters, function settings and policy documents, and with
// `--fast-path` / `fastPath: true` on the trail, the EventBridge rule, its invoke permission,
// the function's environment and the whole bucket policy. A difference fails naming the field.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { POLICY_DIR } from '../lib/policy';
import { differences, desiredFromStack, KNOWN_DIFFERENCES, knownDifferences } from './support/parity';
import { deployDryRun, DryRun, MotoServer, requireFastPathFlag, requirePolicyFlag } from './support/deploy';
import { newApp } from './support/app';
import { functionZip } from './support/zip';
import { FUNCTION_POLICY_FILES } from '../lib/remediation';
import { SgMonitoringLabStack } from '../lib/sg-monitoring-lab-stack';

jest.setTimeout(120_000);

let moto: MotoServer;

beforeAll(async () => {
  moto = await MotoServer.start();
});

afterAll(() => {
  moto?.stop();
});

const unknown = (found: string[]) => found.filter((d) => !(d.split(':')[0] in KNOWN_DIFFERENCES));
const statementIds = (file: string): string[] =>
  JSON.parse(fs.readFileSync(path.join(POLICY_DIR, file), 'utf8')).Statement.map((s: { Sid: string }) => s.Sid);

describe.each([
  { architecture: 'arm64', fastPath: false, policy: undefined, title: 'with an arm64 zip' },
  { architecture: 'x86_64', fastPath: false, policy: undefined, title: 'with an x86_64 zip' },
  {
    architecture: 'arm64',
    fastPath: true,
    policy: undefined,
    title: 'with an arm64 zip and the fast path (deploy up --fast-path)',
  },
  {
    architecture: 'arm64',
    fastPath: false,
    policy: 'least-privilege',
    title: 'with an arm64 zip and the least-privilege policy (deploy up --policy least-privilege)',
  },
] as const)('$title', ({ architecture, fastPath, policy }) => {
  let deploy: DryRun;
  let cdk: Record<string, any>;

  beforeAll(async () => {
    // Fails every test below with what to do when this deploy predates the fast path.
    if (fastPath) await requireFastPathFlag();
    if (policy) await requirePolicyFlag();
    const zip = functionZip(architecture, { deflate: true });
    deploy = await deployDryRun(moto.url, zip, { fastPath, policy });
    const app = newApp();
    const stack = new SgMonitoringLabStack(app, 'SgMonitoringLab', {
      env: { account: deploy.account, region: deploy.region },
      functionZip: zip,
      fastPath,
      functionPolicy: policy,
    });
    const partition = String(deploy.desired.recorder.roleArn).split(':')[1];
    cdk = desiredFromStack(app, stack, { account: deploy.account, region: deploy.region, partition });
  });

  test('deploy and the CDK stack declare the same lab', () => {
    expect(unknown(differences(deploy.desired, cdk))).toEqual([]);
  });

  test('the only differences are the known ones, each for its reason', () => {
    const known = differences(deploy.desired, cdk).filter((d) => d.split(':')[0] in KNOWN_DIFFERENCES);
    expect(known.map((d) => d.split(':')[0]).sort()).toEqual(knownDifferences(fastPath).sort());
  });

  test('the comparison covers what the issue names', () => {
    // If `deploy` stopped printing one of these, the comparison above would silently shrink.
    expect(Object.keys(deploy.desired).sort()).toEqual(
      [
        'bucket',
        'configRole',
        'deliveryChannel',
        'function',
        'functionRole',
        'invokePermission',
        'names',
        'recorder',
        'rule',
        'fastPath',
      ].sort(),
    );
    expect(deploy.desired.function.architecture).toBe(architecture);
    expect(cdk.function.architecture).toBe(architecture);
    expect(cdk.function.codeSha256).toBe(deploy.desired.function.codeSha256);
    expect(deploy.desired.bucket.policy.Statement.length).toBeGreaterThan(0);
    expect(Object.keys(cdk.functionRole.inlinePolicies)).toEqual(['awsconfig_lambda_ec2_security_group_policy']);
    // The inline policy compared above is the chosen file's (its statement ids, in order).
    const inline = deploy.desired.functionRole.inlinePolicies.awsconfig_lambda_ec2_security_group_policy;
    const file = FUNCTION_POLICY_FILES[policy ?? 'lab'];
    const fileStatements = JSON.parse(fs.readFileSync(path.join(POLICY_DIR, file), 'utf8')).Statement;
    expect(inline.Statement.map((s: { Sid?: string }) => s.Sid)).toEqual(fileStatements.map((s: { Sid?: string }) => s.Sid));
    expect(inline.Statement.length).toBe(fileStatements.length);
    // The whole bucket policy is compared above; here, that it is the files' statements in order.
    const sids = [
      ...statementIds('config-bucket-policy.json'),
      ...(fastPath ? statementIds('cloudtrail-bucket-policy.json') : []),
    ];
    expect(deploy.desired.bucket.policy.Statement.map((s: { Sid: string }) => s.Sid)).toEqual(sids);
    expect(cdk.bucket.policy.Statement.map((s: { Sid: string }) => s.Sid)).toEqual(sids);
    if (!fastPath) {
      expect(deploy.desired.fastPath).toBeNull();
      expect(cdk.fastPath).toBeNull();
    } else {
      for (const desired of [deploy.desired, cdk]) {
        expect(Object.keys(desired.fastPath).sort()).toEqual(['functionEnvironment', 'permission', 'rule', 'trail']);
        expect(Object.keys(desired.fastPath.trail).sort()).toEqual(
          ['includeGlobalServiceEvents', 'isMultiRegionTrail', 'logging', 'name', 's3BucketName', 's3KeyPrefix'].sort(),
        );
        expect(Object.keys(desired.fastPath.rule).sort()).toEqual(['eventPattern', 'name', 'state', 'targetArn']);
        expect(desired.fastPath.rule.targetArn).toBe(desired.rule.sourceIdentifier);
        expect(desired.fastPath.permission.Principal).toEqual({ Service: 'events.amazonaws.com' });
        expect(desired.fastPath.functionEnvironment).toEqual({
          RULE_PARAMETERS: JSON.stringify(desired.rule.inputParameters),
        });
      }
      const partition = String(deploy.desired.recorder.roleArn).split(':')[1];
      expect(deploy.desired.fastPath.permission.Condition.ArnLike['AWS:SourceArn']).toBe(
        `arn:${partition}:events:${deploy.region}:${deploy.account}:rule/sg-monitoring-lab-fast-path`,
      );
    }
  });

  test('a difference fails naming the field', () => {
    const changed = structuredClone(deploy.desired);
    changed.function.memorySize = 256;
    changed.rule.scope = ['AWS::EC2::Instance'];
    changed.functionRole.inlinePolicies.awsconfig_lambda_ec2_security_group_policy.Statement[1].Action.pop();
    delete changed.recorder.includeGlobalResourceTypes;
    expect(differences(changed, cdk).filter((d) => !(d.split(':')[0] in KNOWN_DIFFERENCES))).toEqual([
      'function.memorySize: deploy 256, cdk 128',
      `functionRole.inlinePolicies.awsconfig_lambda_ec2_security_group_policy.Statement[1].Action: deploy ${JSON.stringify(
        changed.functionRole.inlinePolicies.awsconfig_lambda_ec2_security_group_policy.Statement[1].Action,
      )}, cdk ${JSON.stringify(cdk.functionRole.inlinePolicies.awsconfig_lambda_ec2_security_group_policy.Statement[1].Action)}`,
      'recorder.includeGlobalResourceTypes: deploy (absent), cdk false',
      'rule.scope[0]: deploy "AWS::EC2::Instance", cdk "AWS::EC2::SecurityGroup"',
    ]);
  });

  if (fastPath) {
    test('a difference in the fast path fails naming the field', () => {
      const changed = structuredClone(deploy.desired);
      changed.fastPath.trail.s3KeyPrefix = 'trail';
      changed.fastPath.rule.eventPattern.detail.eventName.pop();
      changed.fastPath.permission.Condition.ArnLike['AWS:SourceArn'] += '-other';
      changed.fastPath.functionEnvironment = {};
      changed.bucket.policy.Statement.pop();
      const cdkRule = cdk.fastPath.rule.eventPattern.detail.eventName;
      expect(unknown(differences(changed, cdk))).toEqual([
        `bucket.policy.Statement: deploy ${JSON.stringify(changed.bucket.policy.Statement)}, ` +
          `cdk ${JSON.stringify(cdk.bucket.policy.Statement)}`,
        `fastPath.functionEnvironment.RULE_PARAMETERS: deploy (absent), cdk ${JSON.stringify('{"debug":"true"}')}`,
        `fastPath.permission.Condition.ArnLike.AWS:SourceArn: deploy ${JSON.stringify(
          changed.fastPath.permission.Condition.ArnLike['AWS:SourceArn'],
        )}, cdk ${JSON.stringify(cdk.fastPath.permission.Condition.ArnLike['AWS:SourceArn'])}`,
        `fastPath.rule.eventPattern.detail.eventName: deploy ${JSON.stringify(
          changed.fastPath.rule.eventPattern.detail.eventName,
        )}, cdk ${JSON.stringify(cdkRule)}`,
        'fastPath.trail.s3KeyPrefix: deploy "trail", cdk "cloudtrail"',
      ]);
    });
  }
});

test('a deploy without `up --fast-path` fails the fast-path case with what to do', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-lab-old-deploy-'));
  const bin = path.join(dir, 'deploy');
  const help = ['Usage: deploy up [OPTIONS]', '      --dry-run  Show the plan; change nothing'];
  fs.writeFileSync(bin, `#!/bin/sh\n${help.map((line) => `echo '${line}'`).join('\n')}\n`, { mode: 0o755 });
  const saved = process.env.DEPLOY_BIN;
  process.env.DEPLOY_BIN = bin;
  try {
    await expect(requireFastPathFlag()).rejects.toThrow(
      `${bin} does not support \`up --fast-path\` (its \`up --help\` lists no such flag)`,
    );
  } finally {
    if (saved === undefined) delete process.env.DEPLOY_BIN;
    else process.env.DEPLOY_BIN = saved;
  }
});
