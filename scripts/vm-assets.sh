#!/usr/bin/env bash
# Fetches what the real-VM test boots: Debian's cloud kernel and the virtio-net modules, taken
# out of the package with dpkg-deb (nothing is installed into /boot). Usage: vm-assets.sh DIR
set -euo pipefail
dir=${1:?usage: vm-assets.sh DIR}
mkdir -p "$dir"
[ -f "$dir/vmlinuz" ] && [ -f "$dir/modules/virtio_net.ko" ] && exit 0
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "$pkg" >/dev/null)
dpkg-deb -x "$work"/*.deb "$work/x"
cp "$work"/x/boot/vmlinuz-* "$dir/vmlinuz"
mkdir -p "$dir/modules"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  find "$work/x/lib/modules" -name "$m.ko" -exec cp {} "$dir/modules/" \;
done
ls "$dir/modules" | grep -q virtio_net.ko
