/**
 * mesa's SDK: `import { Mesa } from "mesa-fs"`. REST for orchestration (repos, API keys,
 * locally signed tokens, bookmarks, changes) and `mesa.fs.mount()`, the daemon's filesystem
 * in-process (no FUSE), with `bash()`, `changes`, `bookmarks` and `subscribe`.
 */
export type { ExecResult, MesaBash, MesaBashOptions } from "./bash.js";
export type { MesaOptions } from "./client.js";
export {
  ApiError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  ConnectionError,
  InvalidOptionsError,
  MesaFsError,
  NotFoundError,
  PermissionDeniedError,
  ServerError,
} from "./errors.js";
export type { FsChangeEvent, FsStat, MesaFileSystem } from "./fs.js";
export type { ChangeInfo, ChangeTarget, FsBookmarks, FsChanges } from "./fs-vcs.js";
export { Mesa } from "./mesa.js";
export type { MountOptions, RepoSpec } from "./mount.js";
export type {
  ApiKey,
  ApiKeys,
  Bookmark,
  Bookmarks,
  Change,
  Changes,
  CreateApiKeyOptions,
  CreateChangeOptions,
  MergeResult,
  Repo,
  Repos,
} from "./rest.js";
export type { CreateTokenOptions, Token, Tokens } from "./tokens.js";
