import { readFile } from "node:fs/promises";
import { z } from "zod";
import { writeFileAtomic } from "../atomic-file.js";
import { SCOPES } from "../auth/keys.js";
import { MesaError } from "../errors.js";

/**
 * Org and key state of `mesa serve`, kept in `<data-dir>/state.json`. Only the server
 * process writes it (it holds `serve.lock`); every write is atomic (temp + fsync + rename)
 * and mode 0600. API keys are stored only as their SHA-256.
 */
const scopeSchema = z.enum(SCOPES);

const apiKeySchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  scopes: z.array(scopeSchema),
  repos: z.array(z.string()).nullable(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
});

const publicKeySchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  x: z.string(),
  scopes: z.array(scopeSchema),
  created_at: z.string(),
  revoked_at: z.string().nullable(),
});

const orgSchema = z.object({
  id: z.string(),
  name: z.string(),
  created_at: z.string(),
  api_keys: z.array(apiKeySchema),
  public_keys: z.array(publicKeySchema),
});

const stateSchema = z.object({ version: z.literal(1), orgs: z.record(z.string(), orgSchema) });

export type ApiKeyRecord = z.infer<typeof apiKeySchema>;
export type PublicKeyRecord = z.infer<typeof publicKeySchema>;
export type OrgRecord = z.infer<typeof orgSchema>;
export type ServerState = z.infer<typeof stateSchema>;

export class StateStore {
  private state: ServerState = { version: 1, orgs: {} };
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new MesaError("CONFIG_INVALID", `${this.file} is not valid JSON`, {
        hint: "restore it from a backup or move it away to start over",
      });
    }
    const r = stateSchema.safeParse(parsed);
    if (!r.success)
      throw new MesaError(
        "CONFIG_INVALID",
        `${this.file} has an unexpected shape: ${r.error.issues[0]?.message}`,
      );
    this.state = r.data;
  }

  get orgs(): Record<string, OrgRecord> {
    return this.state.orgs;
  }

  org(name: string): OrgRecord | undefined {
    return Object.hasOwn(this.state.orgs, name) ? this.state.orgs[name] : undefined;
  }

  /** Finds an API key by the SHA-256 of its text. */
  keyByHash(hash: string): { org: OrgRecord; key: ApiKeyRecord } | undefined {
    for (const org of Object.values(this.state.orgs)) {
      const key = org.api_keys.find((k) => k.hash === hash);
      if (key) return { org, key };
    }
    return undefined;
  }

  keyById(id: string): { org: OrgRecord; key: ApiKeyRecord } | undefined {
    for (const org of Object.values(this.state.orgs)) {
      const key = org.api_keys.find((k) => k.id === id);
      if (key) return { org, key };
    }
    return undefined;
  }

  /**
   * Applies `mutate` to a copy of the state and persists it; the in-memory state changes
   * only when the write succeeded. Mutations run one at a time.
   */
  update<T>(mutate: (draft: ServerState) => T): Promise<T> {
    const run = this.writing.then(async () => {
      const draft = structuredClone(this.state);
      const result = mutate(draft);
      await writeFileAtomic(this.file, `${JSON.stringify(draft, null, 2)}\n`, { mode: 0o600, durable: true });
      this.state = draft;
      return result;
    });
    this.writing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

export function nowIso(): string {
  return new Date().toISOString();
}
