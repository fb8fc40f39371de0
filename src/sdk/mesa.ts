/** `new Mesa(...)`: the SDK's entry point. */
import { Client, type MesaOptions } from "./client.js";
import type { MesaFileSystem } from "./fs.js";
import { type MountOptions, mount } from "./mount.js";
import { ApiKeys, Bookmarks, Changes, Repos } from "./rest.js";
import { Tokens } from "./tokens.js";

export class Mesa {
  readonly repos: Repos;
  readonly apiKeys: ApiKeys;
  readonly tokens: Tokens;
  readonly bookmarks: Bookmarks;
  readonly changes: Changes;
  readonly fs: { mount(opts: MountOptions): Promise<MesaFileSystem> };
  private readonly client: Client;

  /** Options default from the same environment (MESA_*) and config.toml as the CLI. */
  constructor(opts: MesaOptions = {}) {
    this.client = new Client(opts);
    this.repos = new Repos(this.client);
    this.apiKeys = new ApiKeys(this.client);
    this.tokens = new Tokens(this.client);
    this.bookmarks = new Bookmarks(this.client);
    this.changes = new Changes(this.client);
    this.fs = { mount: (o) => mount(this.client, o) };
  }

  /** The organization this client works in (asks the server when nothing configured names it). */
  org(): Promise<string> {
    return this.client.org();
  }
}
