# mesa in a container. Build context: a checkout after `npm pack` (which writes mesa-fs-<version>.tgz).
#   npm ci && npm run build && npm pack
#   docker build -t mesa .
#   docker run --rm -it --device /dev/fuse --cap-add SYS_ADMIN \
#     -e MESA_ORGS=acme:$MESA_KEY -e MESA_SERVICE_URL=https://mesa.example.com mesa
# Every step below is exercised by test/install.test.ts, which runs them in a fresh Debian 12 root.
# Debian 12 has no Node.js >= 22.19, so install.sh installs its private Node.js 24 LTS.
FROM debian:bookworm-slim
COPY install.sh mesa-fs-*.tgz /tmp/mesa/
RUN MESA_INSTALL_TARBALL="$(ls /tmp/mesa/mesa-fs-*.tgz)" sh /tmp/mesa/install.sh --yes && rm -rf /tmp/mesa /var/lib/apt/lists/*
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /root
CMD ["sh", "-c", "mesa mount -d -y && echo \"mounted at $HOME/.local/share/mesa/mnt\" && exec sh"]
