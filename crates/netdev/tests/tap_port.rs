//! Root tests for `TapPort`, always created inside a private namespace.

mod common;

use std::io::IoSlice;
use std::time::Duration;

use common::{expect_one, untagged, with_marker};
use netdev::{interface_info, Netdev, RxBatch, TapPort};
use testbed::{frame_capture, require_root, send_frame, unique, wait_until, Netns};

#[test]
fn tap_is_visible_up_and_removed_with_the_port() {
    if !require_root("tap_is_visible_up_and_removed_with_the_port") {
        return;
    }
    let ns = Netns::new("ntv").unwrap();
    let name = unique("tap");
    let tap = ns.run_in(|| TapPort::create(&name)).unwrap().unwrap();
    assert_eq!(tap.name(), name);
    let info = ns.run_in(|| interface_info(&name)).unwrap().unwrap();
    let info = info.expect("tap visible");
    assert_eq!(info.ifindex, tap.ifindex());
    assert!(info.admin_up);
    assert_ne!(info.mac, [0; 6]);
    drop(tap);
    assert!(wait_until(Duration::from_secs(3), || {
        ns.run_in(|| interface_info(&name)).unwrap().unwrap().is_none()
    }));
    let internal = ns.run_in(|| TapPort::create_internal("br-int0")).unwrap().unwrap();
    assert_eq!(internal.name(), "br-int0");
}

#[test]
fn frames_cross_between_tap_fd_and_device() {
    if !require_root("frames_cross_between_tap_fd_and_device") {
        return;
    }
    let ns = Netns::new("ntx").unwrap();
    let name = unique("tap");
    let mut tap = ns.run_in(|| TapPort::create(&name)).unwrap().unwrap();
    let mut dev = ns.open_port(&name).unwrap();

    // fd → device: what qemu writes appears as received on the tap device.
    let to_dev = untagged(b"tap-to-dev");
    send_frame(&mut tap, &to_dev).unwrap();
    assert_eq!(expect_one(&mut dev, b"tap-to-dev"), to_dev);

    // device → fd: what the host sends out of the tap is read from the fd.
    let to_fd = untagged(b"dev-to-tap");
    send_frame(&mut dev, &to_fd).unwrap();
    assert_eq!(expect_one(&mut tap, b"dev-to-tap"), to_fd);

    // Batches, gather lists included.
    let frames: Vec<Vec<u8>> = (0..8u8).map(|i| untagged(&[b't', b'b', i])).collect();
    let slices: Vec<[IoSlice<'_>; 2]> =
        frames.iter().map(|f| [IoSlice::new(&f[..6]), IoSlice::new(&f[6..])]).collect();
    let refs: Vec<&[IoSlice<'_>]> = slices.iter().map(|s| &s[..]).collect();
    assert_eq!(tap.send_batch(&refs).unwrap(), 8);
    let got = frame_capture(&mut dev, Duration::from_secs(2), 8);
    assert_eq!(with_marker(&got, b"tb").len(), 8);
}

#[test]
fn tap_down_drops_without_error_and_deletion_is_gone() {
    if !require_root("tap_down_drops_without_error_and_deletion_is_gone") {
        return;
    }
    let ns = Netns::new("ntd").unwrap();
    let name = unique("tap");
    let mut tap = ns.run_in(|| TapPort::create(&name)).unwrap().unwrap();
    ns.exec(&["ip", "link", "set", &name, "down"]).unwrap();
    let f = untagged(b"while-down");
    assert_eq!(tap.send_batch(&[&[IoSlice::new(&f)]]).unwrap(), 0);
    let mut batch = RxBatch::new(4);
    assert_eq!(tap.recv_batch(&mut batch).unwrap(), 0);

    ns.exec(&["ip", "link", "del", &name]).unwrap();
    let err = tap.recv_batch(&mut batch).unwrap_err();
    assert!(err.is_gone(), "recv after delete: {err}");
    let err = tap.send_batch(&[&[IoSlice::new(&f)]]).unwrap_err();
    assert!(err.is_gone(), "send after delete: {err}");
}
