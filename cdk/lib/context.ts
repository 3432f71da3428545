// Reading `-c KEY=VALUE` context in bin/: the CLI passes every value as a string, while
// cdk.json and tests may hold real booleans.

/** A boolean context value: true, false, "true", "false", or undefined when not given. */
export function booleanContext(key: string, value: unknown): boolean | undefined {
  if (value === undefined || value === true || value === false) return value;
  if (value === 'true' || value === 'false') return value === 'true';
  throw new Error(`context ${key}=${JSON.stringify(value)}: expected true or false`);
}
