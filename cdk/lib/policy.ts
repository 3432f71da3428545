// The lab's policy documents, read from `policy/` (the same files `deploy` compiles in) and
// never written again here. Their placeholders use Fn::Sub syntax — `${AWS::AccountId}`,
// `${AWS::Partition}`, `${AWS::Region}`, `${BucketName}` — and are filled with CDK tokens.

import * as fs from 'fs';
import * as path from 'path';

/** `policy/` at the root of the repository. */
export const POLICY_DIR = path.resolve(__dirname, '..', '..', 'policy');

/** A policy document as JSON. */
export type PolicyJson = { [key: string]: any };

const PLACEHOLDER = /\$\{([^}]+)\}/g;

/**
 * Reads `policy/<file>` and replaces every placeholder in its string values with the value
 * (usually a CDK token) given for it. A placeholder with no value is an error naming the file.
 */
export function readPolicy(file: string, values: Record<string, string>, dir: string = POLICY_DIR): PolicyJson {
  const where = path.join(dir, file);
  const document = JSON.parse(fs.readFileSync(where, 'utf8'));
  const fill = (node: unknown): unknown => {
    if (typeof node === 'string') {
      return node.replace(PLACEHOLDER, (whole, name: string) => {
        const value = values[name];
        if (value === undefined) {
          throw new Error(`${where}: no value for the placeholder ${whole}`);
        }
        return value;
      });
    }
    if (Array.isArray(node)) return node.map(fill);
    if (node !== null && typeof node === 'object') {
      return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, fill(value)]));
    }
    return node;
  };
  return fill(document) as PolicyJson;
}
