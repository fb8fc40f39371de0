/**
 * `--json` output: one JSON document on stdout, keys in snake_case like the REST API, so
 * every command's shape follows one convention (docs/cli.md lists them).
 */
function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A copy of `value` with every object key in snake_case. */
export function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value && typeof value === "object" && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[snake(k)] = snakeKeys(v);
    return out;
  }
  return value;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(snakeKeys(value), null, 2)}\n`);
}
