// cfn-lint on the template with every option on (the fast path, the least-privilege function
// policy). scripts/test-cdk lints the template `cdk synth` writes, which has the lab's defaults
// (no fast path, the lab's policy); between them every resource variant is linted, with no
// check ignored.

import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SgMonitoringLabStack } from '../lib/sg-monitoring-lab-stack';
import { newApp } from './support/app';
import { toolPath } from './support/deploy';
import { functionZip } from './support/zip';

jest.setTimeout(60_000);

test('cfn-lint: the template with every option on has no error and no warning', async () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-lab-cdk-lint-'));
  const app = newApp({ outdir });
  const stack = new SgMonitoringLabStack(app, 'SgMonitoringLab', {
    functionZip: functionZip('arm64'),
    fastPath: true,
    functionPolicy: 'least-privilege',
  });
  const template = path.join(app.synth().directory, stack.templateFile);
  const resources = JSON.parse(fs.readFileSync(template, 'utf8')).Resources;
  expect(resources).toHaveProperty([stack.getLogicalId(stack.fastPath!.trail)]);
  const role = resources[stack.getLogicalId(stack.remediation.role)];
  expect(role.Properties.Policies[0].PolicyDocument.Statement.map((s: { Sid: string }) => s.Sid)).toContain(
    'ChangeIngress',
  );

  const options = { env: { ...process.env, PATH: toolPath() }, timeout: 50_000 };
  const result = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile('cfn-lint', [template], options, (err, stdout, stderr) => {
      // A number: cfn-lint's exit code; otherwise it did not run (not found, timed out).
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, output: `${stdout}${stderr}${err && code === -1 ? err.message : ''}` });
    });
  });
  expect(result).toEqual({ code: 0, output: '' });
});
