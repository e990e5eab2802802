//! Root tests for `SystemPort` on a veth pair inside a private namespace.

mod common;

use std::io::IoSlice;
use std::time::Duration;

use common::{expect_one, tagged, untagged, with_marker};
use netdev::{Netdev, NetdevError, RxBatch, SystemPort};
use testbed::{frame_capture, require_root, send_frame, unique, Netns, Veth};

/// A namespace with a veth pair `a`↔`b` inside and ports open on both ends.
struct Pair {
    ports: (SystemPort, SystemPort),
    veth: Veth,
    a: String,
    ns: Netns,
}

fn pair(prefix: &str) -> Pair {
    let ns = Netns::new(prefix).unwrap();
    let a = unique("a");
    let b = unique("b");
    let veth = Veth::between(&ns, &a, &ns, &b).unwrap();
    let pa = ns.open_port(&a).unwrap();
    let pb = ns.open_port(&b).unwrap();
    Pair { ports: (pa, pb), veth, a, ns }
}

#[test]
fn untagged_frame_arrives_byte_identical() {
    if !require_root("untagged_frame_arrives_byte_identical") {
        return;
    }
    // Keep `p` bound: its namespace and veth guards must outlive the ports.
    let p = pair("ndu");
    let (mut pa, mut pb) = p.ports;
    assert!(pa.ifindex() > 0 && pa.ifindex() != pb.ifindex());
    let frame = untagged(b"untagged-1");
    send_frame(&mut pa, &frame).unwrap();
    assert_eq!(expect_one(&mut pb, b"untagged-1"), frame);
}

#[test]
fn vlan_tags_survive_kernel_stripping() {
    if !require_root("vlan_tags_survive_kernel_stripping") {
        return;
    }
    // Keep `p` bound: its namespace and veth guards must outlive the ports.
    let p = pair("ndv");
    let (mut pa, mut pb) = p.ports;
    let cases: [(&[u8], u16, u8, u16); 3] =
        [(b"vid10-pcp3", 0x8100, 3, 10), (b"prio-tag-vid0", 0x8100, 5, 0), (b"qinq-outer", 0x88a8, 0, 100)];
    for (marker, tpid, pcp, vid) in cases {
        let frame = tagged(marker, tpid, pcp, vid);
        send_frame(&mut pa, &frame).unwrap();
        let got = expect_one(&mut pb, marker);
        assert_eq!(got, frame, "tag {tpid:#x}/{pcp}/{vid} changed in transit");
    }
}

#[test]
fn batched_send_and_receive_and_no_echo() {
    if !require_root("batched_send_and_receive_and_no_echo") {
        return;
    }
    // Keep `p` bound: its namespace and veth guards must outlive the ports.
    let p = pair("ndb");
    let (mut pa, mut pb) = p.ports;
    let frames: Vec<Vec<u8>> = (0..16u8).map(|i| untagged(&[b'b', b'a', b't', b'c', b'h', i])).collect();
    // Split each frame into two slices to exercise the gather path.
    let slices: Vec<[IoSlice<'_>; 2]> =
        frames.iter().map(|f| [IoSlice::new(&f[..14]), IoSlice::new(&f[14..])]).collect();
    let refs: Vec<&[IoSlice<'_>]> = slices.iter().map(|s| &s[..]).collect();
    assert_eq!(pa.send_batch(&refs).unwrap(), 16);
    let got = frame_capture(&mut pb, Duration::from_secs(2), 16);
    let ours = with_marker(&got, b"batch");
    assert_eq!(ours.len(), 16, "got {} of 16", ours.len());
    for (sent, recvd) in frames.iter().zip(ours) {
        assert_eq!(sent, recvd, "order or content changed");
    }
    // Our own frames must not come back on the sending socket.
    let echo = frame_capture(&mut pa, Duration::from_millis(300), 64);
    assert!(with_marker(&echo, b"batch").is_empty(), "sent frames read back");
}

#[test]
fn oversized_frame_is_skipped_not_fatal() {
    if !require_root("oversized_frame_is_skipped_not_fatal") {
        return;
    }
    // Keep `p` bound: its namespace and veth guards must outlive the ports.
    let p = pair("ndo");
    let (mut pa, mut pb) = p.ports;
    let big = untagged(&[b'X'; 3000]); // above the 1500 MTU: EMSGSIZE
    let small = untagged(b"after-big");
    let runt = [0u8; 4]; // shorter than an Ethernet header
    let frames: [&[IoSlice<'_>]; 3] =
        [&[IoSlice::new(&big)], &[IoSlice::new(&runt)], &[IoSlice::new(&small)]];
    let sent = pa.send_batch(&frames).unwrap();
    assert!(sent == 1 || sent == 2, "sent {sent}"); // the runt may or may not be accepted
    assert_eq!(expect_one(&mut pb, b"after-big"), small);
    // An empty batch is fine too.
    assert_eq!(pa.send_batch(&[]).unwrap(), 0);
    let mut empty = RxBatch::new(0);
    assert_eq!(pb.recv_batch(&mut empty).unwrap(), 0);
}

#[test]
fn link_down_is_not_gone() {
    if !require_root("link_down_is_not_gone") {
        return;
    }
    let p = pair("ndd");
    let (mut pa, _pb) = p.ports;
    p.ns.exec(&["ip", "link", "set", &p.a, "down"]).unwrap();
    let mut batch = RxBatch::new(8);
    for _ in 0..3 {
        assert_eq!(pa.recv_batch(&mut batch).unwrap(), 0);
    }
    assert_eq!(pa.send_batch(&[&[IoSlice::new(&untagged(b"down"))]]).unwrap(), 0);
    let info = p.ns.run_in(|| netdev::interface_info(&p.a)).unwrap();
    assert!(!info.unwrap().unwrap().admin_up);
}

#[test]
fn deleted_device_reports_gone() {
    if !require_root("deleted_device_reports_gone") {
        return;
    }
    let p = pair("ndg");
    let mut veth = p.veth;
    let (mut pa, mut pb) = p.ports;
    // Raw socket on the same device, to observe the errnos the kernel gives.
    let raw = p.ns.open_port(&p.a).unwrap();
    veth.delete().unwrap();

    let mut buf = [0u8; 64];
    // SAFETY: valid buffer; non-blocking calls on a socket we own.
    let (recv_errno, send_errno) = unsafe {
        let r = libc::recv(raw.raw_fd(), buf.as_mut_ptr().cast(), 64, libc::MSG_DONTWAIT);
        let recv_errno = if r < 0 { *libc::__errno_location() } else { 0 };
        let f = untagged(b"x");
        let s = libc::send(raw.raw_fd(), f.as_ptr().cast(), f.len(), libc::MSG_DONTWAIT);
        let send_errno = if s < 0 { *libc::__errno_location() } else { 0 };
        (recv_errno, send_errno)
    };
    eprintln!(
        "after veth deletion: recv errno {recv_errno} ({}), send errno {send_errno} ({})",
        std::io::Error::from_raw_os_error(recv_errno),
        std::io::Error::from_raw_os_error(send_errno)
    );

    let mut batch = RxBatch::new(4);
    let err = pa.recv_batch(&mut batch).unwrap_err();
    assert!(err.is_gone(), "recv: {err}");
    // Sticky: the kernel reports it only once, the port remembers.
    assert!(pa.recv_batch(&mut batch).unwrap_err().is_gone());
    assert!(matches!(pa.send_batch(&[&[IoSlice::new(&untagged(b"y"))]]), Err(NetdevError::DeviceGone(_))));
    // The peer vanished with the pair; sending first (no pending recv error) must also say so.
    let err = pb.send_batch(&[&[IoSlice::new(&untagged(b"z"))]]).unwrap_err();
    assert!(err.is_gone(), "send: {err}");
    assert!(batch.is_empty());
}

#[test]
fn missing_device_error_matches_ovs() {
    if !require_root("missing_device_error_matches_ovs") {
        return;
    }
    let ns = Netns::new("ndm").unwrap();
    let err = ns.run_in(|| SystemPort::open("nosuchdev0")).unwrap().err().unwrap();
    assert!(matches!(err, NetdevError::NoSuchDevice(_)));
    assert_eq!(err.to_string(), "could not open network device nosuchdev0 (No such device)");
    let bad = ns.run_in(|| SystemPort::open("bad name")).unwrap().err().unwrap();
    assert!(matches!(bad, NetdevError::InvalidName { .. }), "{bad}");
}

#[test]
fn open_brings_device_up() {
    if !require_root("open_brings_device_up") {
        return;
    }
    let ns = Netns::new("ndup").unwrap();
    let a = unique("a");
    let b = unique("b");
    ns.exec(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]).unwrap();
    let before = ns.run_in(|| netdev::interface_info(&a)).unwrap().unwrap().unwrap();
    assert!(!before.admin_up);
    let port = ns.open_port(&a).unwrap();
    let after = ns.run_in(|| netdev::interface_info(&a)).unwrap().unwrap().unwrap();
    assert!(after.admin_up);
    assert_eq!(after.ifindex, port.ifindex());
    assert_eq!(port.name(), a);
    assert_eq!(after.mtu, 1500);
    assert_ne!(after.mac, [0; 6]);
}

/// Opens `name` in `ns` receiving with recvmmsg (no ring).
fn open_copying(ns: &Netns, name: &str) -> SystemPort {
    ns.run_in(|| SystemPort::open_copying(name)).unwrap().unwrap()
}

#[test]
fn ring_and_copying_ports_see_the_same_frames() {
    if !require_root("ring_and_copying_ports_see_the_same_frames") {
        return;
    }
    let p = pair("ndr");
    let (mut pa, mut pb) = p.ports;
    assert!(pb.has_rx_ring(), "this kernel should give AF_PACKET a TPACKET_V2 ring");
    // A second, ring-less port on the same device sees the same traffic.
    let b_name = pb.name().to_string();
    let mut copying = open_copying(&p.ns, &b_name);
    assert!(!copying.has_rx_ring());
    let frames = [
        untagged(b"ring-plain"),
        tagged(b"ring-vid10", 0x8100, 3, 10),
        tagged(b"ring-prio0", 0x8100, 5, 0),
        tagged(b"ring-qinq", 0x88a8, 0, 100),
    ];
    for f in &frames {
        send_frame(&mut pa, f).unwrap();
    }
    let via_ring = frame_capture(&mut pb, Duration::from_secs(2), frames.len());
    let via_copy = frame_capture(&mut copying, Duration::from_secs(2), frames.len());
    for (marker, f) in [&b"ring-plain"[..], b"ring-vid10", b"ring-prio0", b"ring-qinq"].iter().zip(&frames) {
        assert_eq!(with_marker(&via_ring, marker), vec![f], "ring: {}", String::from_utf8_lossy(marker));
        assert_eq!(with_marker(&via_copy, marker), vec![f], "copy: {}", String::from_utf8_lossy(marker));
    }
}

#[test]
fn frames_bigger_than_a_ring_slot_arrive_whole_and_in_order() {
    if !require_root("frames_bigger_than_a_ring_slot_arrive_whole_and_in_order") {
        return;
    }
    let p = pair("ndj");
    let (mut pa, mut pb) = p.ports;
    assert!(pb.has_rx_ring());
    let b_name = pb.name().to_string();
    for dev in [p.a.as_str(), b_name.as_str()] {
        p.ns.exec(&["ip", "link", "set", dev, "mtu", "9000"]).unwrap();
    }
    // small, jumbo (does not fit a 2 KiB slot: read from the socket queue), tagged jumbo, small
    let mut jumbo = untagged(b"jumbo-1");
    jumbo.resize(8000, 0x6a);
    let mut tagged_jumbo = tagged(b"jumbo-2", 0x8100, 1, 42);
    tagged_jumbo.resize(5000, 0x6b);
    let frames = [untagged(b"small-1"), jumbo, tagged_jumbo, untagged(b"small-2")];
    let slices: Vec<[IoSlice<'_>; 1]> = frames.iter().map(|f| [IoSlice::new(f)]).collect();
    let refs: Vec<&[IoSlice<'_>]> = slices.iter().map(|s| &s[..]).collect();
    assert_eq!(pa.send_batch(&refs).unwrap(), 4);
    let got = frame_capture(&mut pb, Duration::from_secs(2), 4);
    let ours: Vec<&Vec<u8>> =
        got.iter().filter(|f| f.windows(6).any(|w| w == b"small-" || w == b"jumbo-")).collect();
    assert_eq!(ours.len(), 4, "got {} frames", ours.len());
    for (sent, recvd) in frames.iter().zip(ours) {
        assert_eq!(sent.len(), recvd.len());
        assert_eq!(sent, recvd, "content or order changed");
    }
}

#[test]
fn ring_wraps_around_without_losing_or_reordering() {
    if !require_root("ring_wraps_around_without_losing_or_reordering") {
        return;
    }
    let p = pair("ndw");
    let (mut pa, mut pb) = p.ports;
    let mut batch = RxBatch::new(32);
    let mut next: u32 = 0;
    let total: u32 = 3000; // many times the ring's 128 slots
    let mut sent: u32 = 0;
    // Bounded: each round sends up to 64 and drains what arrived.
    for _ in 0..2000 {
        if next == total {
            break;
        }
        // Keep fewer frames in flight than the ring has slots, so none may be dropped.
        if sent < total && sent - next < 32 {
            let frames: Vec<Vec<u8>> = (sent..(sent + 64).min(total))
                .map(|i| {
                    let mut m = b"wrap".to_vec();
                    m.extend(i.to_be_bytes());
                    untagged(&m)
                })
                .collect();
            let slices: Vec<[IoSlice<'_>; 1]> = frames.iter().map(|f| [IoSlice::new(f)]).collect();
            let refs: Vec<&[IoSlice<'_>]> = slices.iter().map(|s| &s[..]).collect();
            sent += pa.send_batch(&refs).unwrap() as u32;
        }
        std::thread::sleep(Duration::from_millis(1));
        let n = pb.recv_batch(&mut batch).unwrap();
        for i in 0..n {
            let f = batch.frame(i);
            let Some(at) = f.windows(4).position(|w| w == b"wrap") else { continue };
            let seq = u32::from_be_bytes(f[at + 4..at + 8].try_into().unwrap());
            assert_eq!(seq, next, "lost or reordered");
            next += 1;
        }
    }
    assert_eq!(next, total, "only {next} of {total} frames arrived");
}

#[test]
fn frames_the_kernel_dropped_are_reported() {
    if !require_root("frames_the_kernel_dropped_are_reported") {
        return;
    }
    let p = pair("ndd");
    let (mut pa, mut pb) = p.ports;
    assert_eq!(pb.take_kernel_drops(), 0);
    // 600 frames at a receiver that reads nothing: more than its ring holds.
    let frames: Vec<Vec<u8>> = (0..600u32).map(|i| untagged(&i.to_be_bytes())).collect();
    let slices: Vec<[IoSlice<'_>; 1]> = frames.iter().map(|f| [IoSlice::new(f)]).collect();
    let refs: Vec<&[IoSlice<'_>]> = slices.iter().map(|s| &s[..]).collect();
    let mut sent = 0;
    for chunk in refs.chunks(50) {
        sent += pa.send_batch(chunk).unwrap();
    }
    assert_eq!(sent, 600);
    std::thread::sleep(Duration::from_millis(100));
    let mut batch = RxBatch::new(64);
    let mut received = 0;
    for _ in 0..100 {
        let n = pb.recv_batch(&mut batch).unwrap();
        if n == 0 {
            break;
        }
        received += n;
    }
    let dropped = pb.take_kernel_drops();
    assert!(dropped > 0, "no drops reported, {received} received");
    assert_eq!(received as u64 + dropped, 600, "received {received} + dropped {dropped}");
    assert_eq!(pb.take_kernel_drops(), 0, "reading resets the counter");
}

/// Pins the calling thread to `cpu`; false if this process may not run there.
fn pin_to(cpu: usize) -> bool {
    // SAFETY: `cpu_set_t` is plain data; the libc macros only touch the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[test]
fn per_cpu_queues_tell_which_cpu_sent() {
    per_cpu_queues("per_cpu_queues_tell_which_cpu_sent", SystemPort::open_per_cpu, true);
}

/// The same without rings (the slow path beside the kernel fast path): frames wait in the
/// sockets' queues and are read with recvmmsg.
#[test]
fn per_cpu_queues_without_rings_tell_which_cpu_sent() {
    per_cpu_queues(
        "per_cpu_queues_without_rings_tell_which_cpu_sent",
        SystemPort::open_per_cpu_copying,
        false,
    );
}

type PerCpuOpen = fn(&str, usize) -> Result<SystemPort, netdev::NetdevError>;

fn per_cpu_queues(test: &str, open: PerCpuOpen, ring: bool) {
    if !require_root(test) {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if cpus < 2 {
        testbed::skip(test, &format!("needs 2 CPUs, this process may use {cpus}"));
        return;
    }
    let ns = Netns::new("ndq").unwrap();
    let (a, b) = (unique("a"), unique("b"));
    let _veth = Veth::between(&ns, &a, &ns, &b).unwrap();
    let mut rx = ns.run_in(|| open(&b, cpus)).unwrap().unwrap();
    assert_eq!(rx.rx_queues(), cpus, "every queue joined the fanout group");
    assert_eq!(rx.has_rx_ring(), ring, "receive ring as asked");
    let mut tx = ns.open_port(&a).unwrap();
    let mut batch = RxBatch::new(64);
    for cpu in 0..cpus {
        // Sending from a thread pinned to `cpu`: veth hands the frame over in that CPU's
        // context, so it must land in queue `cpu` and in no other.
        let marker = format!("cpu-{cpu}");
        let frame = untagged(marker.as_bytes());
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(pin_to(cpu), "cannot pin to CPU {cpu}");
                send_frame(&mut tx, &frame).unwrap();
            });
        });
        let mut seen = vec![0usize; cpus];
        for _ in 0..50 {
            for (q, count) in seen.iter_mut().enumerate() {
                let n = rx.recv_queue(q, &mut batch).unwrap();
                *count += (0..n)
                    .filter(|&i| batch.frame(i).windows(marker.len()).any(|w| w == marker.as_bytes()))
                    .count();
            }
            if seen.iter().sum::<usize>() > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut want = vec![0usize; cpus];
        want[cpu] = 1;
        assert_eq!(seen, want, "frame sent on CPU {cpu}: count per queue");
    }
    // What the port itself sends must not come back into any of its queues (the fanout group
    // has its own ignore-outgoing flag; without it every sent frame is copied back).
    let echo = untagged(b"own-send");
    send_frame(&mut rx, &echo).unwrap();
    assert!(expect_one(&mut tx, b"own-send") == echo, "the sent frame reached the peer");
    std::thread::sleep(Duration::from_millis(100));
    for q in 0..cpus {
        let n = rx.recv_queue(q, &mut batch).unwrap();
        let echoed = (0..n).filter(|&i| batch.frame(i).windows(8).any(|w| w == b"own-send")).count();
        assert_eq!(echoed, 0, "queue {q} received the port's own frame");
    }
}
