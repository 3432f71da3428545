// Reading `-c KEY=VALUE` context in bin/: the CLI passes every value as a string, while
// cdk.json and tests may hold real booleans.

/** A boolean context value: true, false, "true", "false", or undefined when not given. */
export function booleanContext(key: string, value: unknown): boolean | undefined {
  if (value === undefined || value === true || value === false) return value;
  if (value === 'true' || value === 'false') return value === 'true';
  throw new Error(`context ${key}=${JSON.stringify(value)}: expected true or false`);
}

/** A context value that must be one of `choices`, or undefined when not given. */
export function choiceContext<T extends string>(key: string, value: unknown, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw new Error(`context ${key}=${JSON.stringify(value)}: expected one of ${choices.join(', ')}`);
}
