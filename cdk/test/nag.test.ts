// cdk-nag's AwsSolutions pack: every finding on the lab stack is fixed or acknowledged in code
// with a written reason, and no acknowledgment is left over once its finding is gone.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FunctionPolicy } from '../lib/remediation';
import { SgMonitoringLabStack } from '../lib/sg-monitoring-lab-stack';
import { newApp } from './support/app';
import { functionZip } from './support/zip';

interface Suppressed {
  ruleName: string;
  acknowledgedId: string;
  reason: string;
  violatingConstructs: { constructPath: string }[];
}

// The fast path adds no finding: AwsSolutions has no CloudTrail or EventBridge-rule check (the
// trail's CloudWatch Logs, KMS and log-file-validation checks are in other packs, e.g. HIPAA, NIST).
// The function role's findings depend on its policy: the lab's wildcards, or the scoped policy's.
const FUNCTION_ROLE_FINDINGS: Record<FunctionPolicy, string[]> = {
  lab: [
    'AwsSolutions-IAM5[Resource::arn:aws:logs:*:*:*] on SgMonitoringLab/Remediation/Role',
    'AwsSolutions-IAM5[Resource::*] on SgMonitoringLab/Remediation/Role',
  ],
  'least-privilege': [
    'AwsSolutions-IAM5[Resource::*] on SgMonitoringLab/Remediation/Role',
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/lambda/awsconfig_lambda_security_group:*] on SgMonitoringLab/Remediation/Role',
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:security-group/*] on SgMonitoringLab/Remediation/Role',
  ],
};

test.each([
  { fastPath: false, functionPolicy: 'lab' },
  { fastPath: true, functionPolicy: 'lab' },
  { fastPath: false, functionPolicy: 'least-privilege' },
] as const)(
  'AwsSolutions (fastPath: $fastPath, functionPolicy: $functionPolicy): no open finding; each acknowledgment has a reason and matches a finding',
  ({ fastPath, functionPolicy }) => {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-lab-cdk-nag-'));
    const app = newApp({ outdir });
    const stack = new SgMonitoringLabStack(app, 'SgMonitoringLab', {
      functionZip: functionZip('arm64'),
      fastPath,
      functionPolicy,
    });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    app.synth(); // throws when a plugin reports a violation

    const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));
    const [nag] = report.pluginReports;
    expect({ plugin: nag.pluginName, conclusion: nag.conclusion, violations: nag.violations }).toEqual({
      plugin: 'AwsSolutions',
      conclusion: 'success',
      violations: [],
    });

    const suppressed: Suppressed[] = nag.suppressedViolations;
    const findings = suppressed.map((s) => `${s.ruleName} on ${s.violatingConstructs.map((c) => c.constructPath)}`);
    expect(findings.sort()).toEqual(
      [
        'AwsSolutions-S1 on SgMonitoringLab/Recording/Bucket/Resource',
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWS_ConfigRole] on SgMonitoringLab/Recording/Role',
        'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<RecordingBucket11901DEF>/AWSLogs/<AWS::AccountId>/*] on SgMonitoringLab/Recording/Role',
        ...FUNCTION_ROLE_FINDINGS[functionPolicy],
      ].sort(),
    );
    for (const s of suppressed) {
      expect({ rule: s.ruleName, reason: s.reason }).toEqual({ rule: s.ruleName, reason: expect.stringMatching(/^.{60,}$/) });
    }

    // Every acknowledgment in the stack was used by one of the findings above.
    const acknowledged = stack.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY))
      .flatMap((m) => Object.keys(m.data));
    expect(acknowledged.sort()).toEqual(suppressed.map((s) => s.acknowledgedId).sort());
  },
);

test('a finding nobody acknowledged is reported (the check can fail)', () => {
  const app = newApp();
  const stack = new SgMonitoringLabStack(app, 'SgMonitoringLab', { functionZip: functionZip('arm64') });
  new s3.Bucket(stack, 'Unreviewed', { enforceSSL: true });
  const report = new AwsSolutionsChecks().validateScope(app);
  expect(report.success).toBe(false);
  expect(report.violations.map((v) => v.ruleName)).toContain('AwsSolutions-S1');
  expect(report.violations.flatMap((v) => v.violatingResources.map((r) => (r as any).constructPath))).toContain(
    'SgMonitoringLab/Unreviewed/Resource',
  );
});
