// The documents come from policy/ and nothing else fills their placeholders.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { POLICY_DIR, readPolicy } from '../lib/policy';

const VALUES = {
  'AWS::AccountId': '123456789012',
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-west-2',
  BucketName: 'b',
  TrailName: 't',
  FunctionName: 'f',
};

test('POLICY_DIR is the repository policy/ folder', () => {
  expect(fs.readFileSync(path.join(POLICY_DIR, 'README.md'), 'utf8')).toContain('the CDK app reads them from disk');
});

test.each([
  'cloudtrail-bucket-policy.json',
  'config-bucket-policy.json',
  'config-delivery-policy.json',
  'config-trust.json',
  'lambda-lab-policy.json',
  'lambda-least-privilege-policy.json',
  'lambda-trust.json',
  'fast-path-event-pattern.json',
])('%s: every placeholder is filled and nothing else changes', (file) => {
  const raw = fs.readFileSync(path.join(POLICY_DIR, file), 'utf8');
  const filled = readPolicy(file, VALUES);
  expect(JSON.stringify(filled)).not.toContain('${');
  let expected = raw;
  for (const [name, value] of Object.entries(VALUES)) expected = expected.split(`\${${name}}`).join(value);
  expect(filled).toEqual(JSON.parse(expected));
});

test('a placeholder with no value is an error naming the file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-lab-cdk-'));
  fs.writeFileSync(path.join(dir, 'p.json'), JSON.stringify({ Resource: 'arn:${AWS::Partition}:s3:::${Other}' }));
  expect(() => readPolicy('p.json', VALUES, dir)).toThrow(`${path.join(dir, 'p.json')}: no value for the placeholder \${Other}`);
});

test('values go in verbatim, even when they look like placeholders', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-lab-cdk-'));
  fs.writeFileSync(path.join(dir, 'p.json'), JSON.stringify({ a: ['${BucketName}/x', 1, true, null] }));
  expect(readPolicy('p.json', { BucketName: '${Token[TOKEN.1]}' }, dir)).toEqual({ a: ['${Token[TOKEN.1]}/x', 1, true, null] });
});
