// Parity with `deploy`: the desired state `deploy up --dry-run --output json` prints and the
// stack this app synthesizes, for the same account, region and zip, agree on names, recorder
// types, rule source/scope/parameters, function settings and policy documents. A difference
// fails naming the field.

import { differences, desiredFromStack, KNOWN_DIFFERENCES } from './support/parity';
import { deployDryRun, DryRun, MotoServer } from './support/deploy';
import { newApp } from './support/app';
import { functionZip } from './support/zip';
import { SgMonitoringLabStack } from '../lib/sg-monitoring-lab-stack';

jest.setTimeout(120_000);

let moto: MotoServer;

beforeAll(async () => {
  moto = await MotoServer.start();
});

afterAll(() => {
  moto?.stop();
});

describe.each(['arm64', 'x86_64'] as const)('with an %s zip', (architecture) => {
  let deploy: DryRun;
  let cdk: Record<string, any>;

  beforeAll(async () => {
    const zip = functionZip(architecture, { deflate: true });
    deploy = await deployDryRun(moto.url, zip);
    const app = newApp();
    const stack = new SgMonitoringLabStack(app, 'SgMonitoringLab', {
      env: { account: deploy.account, region: deploy.region },
      functionZip: zip,
    });
    const partition = String(deploy.desired.recorder.roleArn).split(':')[1];
    cdk = desiredFromStack(app, stack, { account: deploy.account, region: deploy.region, partition });
  });

  test('deploy and the CDK stack declare the same lab', () => {
    const found = differences(deploy.desired, cdk).filter((d) => !(d.split(':')[0] in KNOWN_DIFFERENCES));
    expect(found).toEqual([]);
  });

  test('the only differences are the known ones, each for its reason', () => {
    const known = differences(deploy.desired, cdk).filter((d) => d.split(':')[0] in KNOWN_DIFFERENCES);
    expect(known.map((d) => d.split(':')[0])).toEqual(Object.keys(KNOWN_DIFFERENCES));
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
      ].sort(),
    );
    expect(deploy.desired.function.architecture).toBe(architecture);
    expect(cdk.function.architecture).toBe(architecture);
    expect(cdk.function.codeSha256).toBe(deploy.desired.function.codeSha256);
    expect(deploy.desired.bucket.policy.Statement.length).toBeGreaterThan(0);
    expect(Object.keys(cdk.functionRole.inlinePolicies)).toEqual(['awsconfig_lambda_ec2_security_group_policy']);
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
});
