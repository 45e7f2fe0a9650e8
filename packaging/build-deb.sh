#!/bin/sh
# Builds target/debian/wmbusd_<version>_<arch>.deb with dpkg-deb (no cargo-deb needed):
# the binary in /usr/bin, the systemd unit, /etc/wmbusd/wmbusd.toml as a conffile, the
# wmbusd system user (postinst) and /var/lib/wmbusd.
#
#   packaging/build-deb.sh                 # cargo build --release, then package
#   WMBUSD_BIN=path/to/wmbusd packaging/build-deb.sh   # package a binary built elsewhere
#   ARCH=arm64 WMBUSD_BIN=… packaging/build-deb.sh      # label for another architecture
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
arch=${ARCH:-$(dpkg --print-architecture)}
bin=${WMBUSD_BIN:-}
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --release --locked)
    bin="$root/target/release/wmbusd"
fi
out="$root/target/debian"
stage="$out/wmbusd_${version}_${arch}"
rm -rf "$stage"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
    "$stage/etc/wmbusd" "$stage/var/lib/wmbusd" "$stage/usr/share/doc/wmbusd"
install -m 0755 "$bin" "$stage/usr/bin/wmbusd"
strip --strip-debug "$stage/usr/bin/wmbusd" 2>/dev/null || true
# The unit as installed by the package: the binary is in /usr/bin.
sed 's|/usr/local/bin/wmbusd|/usr/bin/wmbusd|' "$root/systemd/wmbusd.service" \
    > "$stage/lib/systemd/system/wmbusd.service"
chmod 0644 "$stage/lib/systemd/system/wmbusd.service"
install -m 0640 "$root/config/wmbusd.toml" "$stage/etc/wmbusd/wmbusd.toml"
install -m 0644 "$root/README.md" "$stage/usr/share/doc/wmbusd/README.md"
install -m 0644 "$root/LICENSE" "$stage/usr/share/doc/wmbusd/copyright"
install -m 0644 "$root/packaging/debian/conffiles" "$stage/DEBIAN/conffiles"
install -m 0755 "$root/packaging/debian/postinst" "$root/packaging/debian/prerm" "$stage/DEBIAN/"
size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: wmbusd
Version: $version
Architecture: $arch
Maintainer: wmbusd maintainers <wmbusd@localhost>
Installed-Size: $size
Depends: adduser, libc6
Section: net
Priority: optional
Homepage: https://localhost/wmbusd
Description: wireless M-Bus / OMS gateway daemon
 Listens to wireless M-Bus utility meters through a radio dongle, decrypts and
 decodes their telegrams and publishes normalised readings over MQTT, spooled on
 disk until the broker acknowledged them.
CONTROL
dpkg-deb --root-owner-group --build "$stage" "$out/wmbusd_${version}_${arch}.deb" >/dev/null
echo "$out/wmbusd_${version}_${arch}.deb"
