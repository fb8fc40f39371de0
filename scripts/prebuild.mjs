// Copies the binding built in this checkout into prebuilds/<platform>-<arch>/, which the package
// tarball ships, so installing the tarball needs no compiler.
import { copyFileSync, existsSync, mkdirSync } from "node:fs";

const built = "build/Release/mesa_fuse.node";
if (!existsSync(built)) {
  console.error(`${built} is missing: run \`npm run build\` first`);
  process.exit(1);
}
const dir = `prebuilds/${process.platform}-${process.arch}`;
mkdirSync(dir, { recursive: true });
copyFileSync(built, `${dir}/mesa_fuse.node`);
