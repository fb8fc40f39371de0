/** Public surface of the Git client. */

export { applyDelta } from "./delta.js";
export * from "./objects.js";
export { type GitObject, PackParser, writePack } from "./pack.js";
export {
  type Capabilities,
  type FetchStats,
  GitRemote,
  type GitRemoteOptions,
  type LsRefsResult,
  type RefUpdate,
  type RemoteRef,
} from "./remote.js";
export { type BuiltTree, buildTree, splitPath, type TreeChange, type TreeLoader } from "./tree-build.js";
