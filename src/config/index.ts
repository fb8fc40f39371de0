export { configCandidates, findConfigFile } from "./file.js";
export { type LoadOptions, loadConfig } from "./load.js";
export { bookmarkProblem, CHANGE_ID_RE, changeIdProblem, formatRev } from "./revs.js";
export { SETTINGS, type Source } from "./settings.js";
export { describeConfig, formatConfigJson, formatConfigText, REDACTED, type ShownValue } from "./show.js";
export { formatSize, parseSize } from "./size.js";
export type * from "./types.js";
