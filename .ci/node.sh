#!/usr/bin/env bash
# Installs Node.js 24 LTS (with its headers; the machine's npm runs on it) into /opt/node-24 from the npm registry's
# node-linux-<arch> package, when it is not there yet. Sourced by .ci/setup and .ci/run:
# it puts that Node first on PATH and makes native builds use its headers.
NODE24_VERSION="${MESA_CI_NODE_VERSION:-24.22.3}"
NODE24_DIR=/opt/node-24
if [ "$("$NODE24_DIR/bin/node" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
  case "$(uname -m)" in x86_64) node_arch=x64 ;; aarch64) node_arch=arm64 ;; *) echo "unsupported arch" >&2; exit 3 ;; esac
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-linux-$node_arch@$NODE24_VERSION" >/dev/null)
  rm -rf "$NODE24_DIR.tmp" && mkdir -p "$NODE24_DIR.tmp"
  tar -xzf "$tmp"/node-linux-*.tgz -C "$NODE24_DIR.tmp" --strip-components=1
  rm -rf "$tmp" "$NODE24_DIR" && mv "$NODE24_DIR.tmp" "$NODE24_DIR"
fi
export PATH="$NODE24_DIR/bin:$PATH"
export npm_config_nodedir="$NODE24_DIR"
