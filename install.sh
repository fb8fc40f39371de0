#!/bin/sh
# mesa installer: system packages (FUSE), a supported Node.js, and the mesa CLI.
#
#   curl -fsSL <host>/install.sh | sh -s -- --yes
#
# Idempotent: running it again updates mesa in place. Everything is staged first and
# moved into place at the end, so a failure never leaves a half-installed mesa.
set -eu

# Node.js 22.19 or newer runs mesa (its HTTP client needs it); older or missing gets a private
# Node.js 24 LTS (the same version CI runs on).
NODE_MIN_MAJOR=22
NODE_MIN_MINOR=19
NODE_VERSION="${MESA_NODE_VERSION:-24.22.3}"
NPM_VERSION="${MESA_NPM_VERSION:-11.21.2}"
PACKAGE="${MESA_INSTALL_PACKAGE:-mesa-fs}"
REGISTRY="${MESA_NPM_REGISTRY:-https://registry.npmjs.org}"

YES=0
PREFIX=""

usage() {
  cat <<'EOF'
Usage: install.sh [--yes] [--prefix DIR] [--help]

Installs mesa and what it needs to mount repositories:
  - on Debian/Ubuntu: fuse3 (fusermount3, libfuse3), ca-certificates; from a checkout without a
    built FUSE binding also libfuse3-dev, pkg-config, g++, make and python3 to build it
  - user_allow_other in /etc/fuse.conf (asks first unless --yes)
  - Node.js >= 22.19 (else a private Node.js 24 LTS from the npm registry)
  - mesa itself, from this checkout when run inside one, from the tarball in
    MESA_INSTALL_TARBALL, or else from the npm registry (package MESA_INSTALL_PACKAGE, default mesa-fs)
then runs `mesa doctor`.

Options:
  -y, --yes        answer yes to every question (non-interactive)
  --prefix DIR     install under DIR (bin/ and lib/mesa/); default /usr/local as root, ~/.local otherwise
  -h, --help       show this help

Exit codes: 0 installed, 1 failed (nothing changed for mesa itself), 2 bad usage, 3 unsupported system.
EOF
}

say() { printf '%s\n' "mesa-install: $*"; }
fail() {
  printf '%s\n' "mesa-install: error: $1" >&2
  exit "${2:-1}"
}

while [ $# -gt 0 ]; do
  case "$1" in
  -y | --yes) YES=1 ;;
  --prefix)
    [ $# -ge 2 ] || fail "--prefix needs a directory" 2
    PREFIX="$2"
    shift
    ;;
  --prefix=*) PREFIX="${1#--prefix=}" ;;
  -h | --help)
    usage
    exit 0
    ;;
  *) fail "unknown option: $1 (see --help)" 2 ;;
  esac
  shift
done

IS_ROOT=0
[ "$(id -u)" = "0" ] && IS_ROOT=1

if [ -z "$PREFIX" ]; then
  if [ "$IS_ROOT" = 1 ]; then PREFIX=/usr/local; else PREFIX="$HOME/.local"; fi
fi
BIN_DIR="$PREFIX/bin"
LIB_DIR="$PREFIX/lib/mesa"

confirm() {
  [ "$YES" = 1 ] && return 0
  if [ -r /dev/tty ]; then
    printf '%s [y/N] ' "mesa-install: $1" >/dev/tty
    read -r answer </dev/tty || answer=""
    case "$answer" in y | Y | yes | YES) return 0 ;; esac
  fi
  return 1
}

# --- system detection (before any change) -----------------------------------------
OS="$(uname -s)"
ARCH="$(uname -m)"
[ "$OS" = "Linux" ] || fail "unsupported system: $OS. mesa needs Linux with FUSE (macOS and Windows are not supported)" 3
case "$ARCH" in
x86_64 | amd64) NODE_ARCH=x64 ;;
aarch64 | arm64) NODE_ARCH=arm64 ;;
*) fail "unsupported architecture: $ARCH (supported: x86_64, aarch64)" 3 ;;
esac

DISTRO=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  DISTRO="$(. /etc/os-release && printf '%s %s' "${ID:-}" "${ID_LIKE:-}")"
fi
is_debian_like() {
  case " $DISTRO " in *" debian "* | *" ubuntu "*) return 0 ;; esac
  return 1
}

# --- system packages ----------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  if [ "$IS_ROOT" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  elif have sudo; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  else
    fail "installing $* needs root: run this script as root or with sudo available"
  fi
}

install_system_packages() {
  if ! is_debian_like; then
    say "not Debian/Ubuntu: install fuse3 (fusermount3 and libfuse3) and ca-certificates with your package manager"
    return 0
  fi
  need=""
  # mesa's FUSE binding links libfuse3; fusermount3 mounts for it. Both come with fuse3.
  if ! have fusermount3 || ! ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so\.3'; then need="$need fuse3"; fi
  # Installing from a checkout that has no built binding compiles it (native/, node-gyp).
  if [ -n "$(script_dir)" ] && [ -f "$(script_dir)/binding.gyp" ] && [ ! -f "$(script_dir)/build/Release/mesa_fuse.node" ] &&
    [ -z "${MESA_INSTALL_TARBALL:-}" ]; then
    need="$need libfuse3-dev pkg-config g++ make python3"
  fi
  [ -e /etc/ssl/certs/ca-certificates.crt ] || need="$need ca-certificates"
  have curl || have wget || need="$need curl"
  [ -n "$need" ] || return 0
  say "installing system packages:$need"
  if [ "$IS_ROOT" = 1 ]; then apt-get update -qq; elif have sudo; then sudo apt-get update -qq; fi
  # shellcheck disable=SC2086
  apt_install $need
}

enable_user_allow_other() {
  conf=/etc/fuse.conf
  if [ -f "$conf" ] && grep -q '^[[:space:]]*user_allow_other[[:space:]]*$' "$conf"; then return 0; fi
  if [ "$IS_ROOT" != 1 ]; then
    say "note: /etc/fuse.conf lacks user_allow_other, which mesa needs when not run as root."
    say "      fix as root: sed -i 's/^#user_allow_other/user_allow_other/' /etc/fuse.conf"
    return 0
  fi
  if confirm "enable user_allow_other in /etc/fuse.conf (lets the mount serve other users' processes)?"; then
    # Only the bare commented option line; the explanatory comments mention it too.
    if [ -f "$conf" ] && grep -q '^#[[:space:]]*user_allow_other[[:space:]]*$' "$conf"; then
      sed -i 's/^#[[:space:]]*user_allow_other[[:space:]]*$/user_allow_other/' "$conf"
    else
      printf 'user_allow_other\n' >>"$conf"
    fi
    say "enabled user_allow_other in $conf"
  else
    say "left /etc/fuse.conf unchanged; mounts as a non-root user will need user_allow_other"
  fi
}

check_dev_fuse() {
  if [ ! -e /dev/fuse ]; then
    say "warning: /dev/fuse is missing. In a container, start it with: --device /dev/fuse --cap-add SYS_ADMIN"
    return 0
  fi
  if [ ! -r /dev/fuse ] || [ ! -w /dev/fuse ]; then
    say "warning: /dev/fuse is not accessible to $(id -un). Fix as root: chmod 666 /dev/fuse"
  fi
}

# --- Node.js --------------------------------------------------------------------------
node_ok() {
  "$1" -e "const [a,b]=process.versions.node.split('.').map(Number);process.exit(a>$NODE_MIN_MAJOR||(a===$NODE_MIN_MAJOR&&b>=$NODE_MIN_MINOR)?0:1)" 2>/dev/null
}

fetch() { # url dest
  if have curl; then curl -fsSL --retry 3 -o "$2" "$1"; else wget -q -O "$2" "$1"; fi
}

STAGE=""
cleanup() { [ -n "$STAGE" ] && rm -rf "$STAGE"; }
trap cleanup EXIT INT TERM

# Prints the node binary to use; installs a private copy into the stage when needed.
ensure_node() {
  if have node && node_ok "$(command -v node)"; then
    command -v node
    return 0
  fi
  if [ -x "$LIB_DIR/node/bin/node" ] && node_ok "$LIB_DIR/node/bin/node"; then
    printf '%s\n' "$LIB_DIR/node/bin/node"
    return 0
  fi
  say "Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR not found; installing a private Node.js $NODE_VERSION for mesa" >&2
  mkdir -p "$STAGE/node"
  fetch "$REGISTRY/node-linux-$NODE_ARCH/-/node-linux-$NODE_ARCH-$NODE_VERSION.tgz" "$STAGE/node.tgz" ||
    fail "could not download Node.js from $REGISTRY; install Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR yourself and run this again"
  tar -xzf "$STAGE/node.tgz" -C "$STAGE/node" --strip-components=1 package/bin/node
  rm -f "$STAGE/node.tgz"
  node_ok "$STAGE/node/bin/node" || fail "the downloaded Node.js does not run on this system"
  printf '%s\n' "$STAGE/node/bin/node"
}

# Prints a command that runs npm with the chosen node.
ensure_npm() {
  node_bin="$1"
  if have npm && [ "$(dirname "$(command -v npm)")" = "$(dirname "$node_bin")" ]; then
    printf '%s\n' "$(command -v npm)"
    return 0
  fi
  if [ -f "$STAGE/npm/bin/npm-cli.js" ]; then
    printf '%s\n' "$STAGE/npm/bin/npm-cli.js"
    return 0
  fi
  mkdir -p "$STAGE/npm"
  fetch "$REGISTRY/npm/-/npm-$NPM_VERSION.tgz" "$STAGE/npm.tgz" || fail "could not download npm from $REGISTRY"
  tar -xzf "$STAGE/npm.tgz" -C "$STAGE/npm" --strip-components=1
  rm -f "$STAGE/npm.tgz"
  printf '%s\n' "$STAGE/npm/bin/npm-cli.js"
}

# --- mesa itself ----------------------------------------------------------------------
script_dir() {
  case "$0" in */*) (cd "$(dirname "$0")" && pwd) ;; *) printf '' ;; esac
}

# Prints what to give `npm install`: a tarball path or the package name.
mesa_source() {
  node_bin="$1"
  npm_cmd="$2"
  if [ -n "${MESA_INSTALL_TARBALL:-}" ]; then
    [ -f "$MESA_INSTALL_TARBALL" ] || fail "MESA_INSTALL_TARBALL does not name a file: $MESA_INSTALL_TARBALL"
    printf '%s\n' "$MESA_INSTALL_TARBALL"
    return 0
  fi
  dir="$(script_dir)"
  if [ -n "$dir" ] && [ -f "$dir/package.json" ] && grep -q '"name": "mesa-fs"' "$dir/package.json"; then
    say "installing from the checkout at $dir" >&2
    if [ ! -f "$dir/dist/src/cli/main.js" ] || [ ! -f "$dir/build/Release/mesa_fuse.node" ]; then
      (cd "$dir" && "$node_bin" "$npm_cmd" ci --no-audit --no-fund >&2 && "$node_bin" "$npm_cmd" run build >&2)
    fi
    (cd "$dir" && "$node_bin" "$npm_cmd" pack --silent --pack-destination "$STAGE" >/dev/null)
    ls "$STAGE"/mesa-fs-*.tgz
    return 0
  fi
  printf '%s\n' "$PACKAGE"
}

main() {
  install_system_packages
  enable_user_allow_other
  check_dev_fuse

  mkdir -p "$PREFIX"
  STAGE="$(mktemp -d "$PREFIX/.mesa-install.XXXXXX")"
  node_bin="$(ensure_node)"
  PATH="$(dirname "$node_bin"):$PATH"
  export PATH
  npm_cmd="$(ensure_npm "$node_bin")"
  case "$npm_cmd" in *.js) npm_run() { "$node_bin" "$npm_cmd" "$@"; } ;; *) npm_run() { "$npm_cmd" "$@"; } ;; esac
  src="$(mesa_source "$node_bin" "$npm_cmd")"

  say "installing mesa ($src)"
  npm_run install --global --prefix "$STAGE/pkg" --no-audit --no-fund --loglevel=error "$src" >&2 ||
    fail "npm could not install mesa from $src"
  [ -f "$STAGE/pkg/lib/node_modules/mesa-fs/bin/mesa" ] || fail "the installed package has no bin/mesa"

  # Swap the new install into place (previous one kept until the swap succeeds).
  mkdir -p "$LIB_DIR" "$BIN_DIR"
  rm -rf "$LIB_DIR/pkg.old"
  [ -d "$LIB_DIR/pkg" ] && mv "$LIB_DIR/pkg" "$LIB_DIR/pkg.old"
  mv "$STAGE/pkg" "$LIB_DIR/pkg"
  rm -rf "$LIB_DIR/pkg.old"
  case "$node_bin" in
  "$STAGE"/*)
    rm -rf "$LIB_DIR/node"
    mv "$STAGE/node" "$LIB_DIR/node"
    node_bin="$LIB_DIR/node/bin/node"
    ;;
  esac

  cat >"$BIN_DIR/mesa.tmp" <<EOF
#!/bin/sh
exec "$node_bin" "$LIB_DIR/pkg/lib/node_modules/mesa-fs/bin/mesa" "\$@"
EOF
  chmod 755 "$BIN_DIR/mesa.tmp"
  mv "$BIN_DIR/mesa.tmp" "$BIN_DIR/mesa"

  say "installed $("$BIN_DIR/mesa" --version) to $BIN_DIR/mesa"
  case ":$PATH:" in *":$BIN_DIR:"*) ;; *) say "add $BIN_DIR to your PATH: export PATH=\"$BIN_DIR:\$PATH\"" ;; esac
  "$BIN_DIR/mesa" doctor || say "mesa doctor found problems; see above for the fix of each"
}

main
