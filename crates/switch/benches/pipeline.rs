//! ns/frame of the pure pipeline (ingress VLAN → learn → lookup → egress VLAN) with 1, 1k and
//! 100k learned MACs: the cost the forwarding thread pays per frame before any I/O. Measured in
//! CPU time of the bench thread (support/cpu_time.rs), which a loaded machine skews far less
//! than wall time; `bench/pipeline-ir` counts instructions, which it does not skew at all.
//! Run: `cargo bench -p switch`.

#[path = "support/cpu_time.rs"]
mod cpu_time;

use std::hint::black_box;

use cpu_time::CpuTime;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use packet::{ethernet_frame, ipv4_udp, FrameSpec, MacAddr, VlanTag};
use switch::{parse_allowed_ips, Bridge, BridgeSettings, PortSecurity, PortSpec, PortVlan, VlanMode};

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, 0x01, b[0], b[1], b[2], b[3]])
}

fn frame(dst: MacAddr, src: MacAddr, vid: Option<u16>) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let spec = FrameSpec { dst, src, vlan: vid.map(|v| VlanTag::vid(v).unwrap()), ethertype: 0x0800 };
    let n = ethernet_frame(&mut buf, &spec, &[0u8; 46]).unwrap();
    buf.truncate(n);
    buf
}

fn port(name: &str, vlan: PortVlan) -> PortSpec {
    PortSpec::new(name, vlan)
}

/// Stations `0..macs` live behind port 0 (access 10); frames come tagged from the trunk (port 2)
/// from stations `macs..2*macs` to them, so every frame learns (refreshes) its source, finds its
/// destination, pops the tag.
fn bench_macs(c: &mut Criterion<CpuTime>, macs: u32) {
    let settings = BridgeSettings { mac_table_size: 2 * macs as usize + 16, ..BridgeSettings::default() };
    let mut br = Bridge::new(
        settings,
        vec![
            port("vm0", PortVlan::access(10)),
            port("vm1", PortVlan::access(10)),
            port("uplink", PortVlan::new(Some(VlanMode::Trunk), None, &[10, 20]).unwrap()),
            port("vm2", PortVlan::access(20)),
        ],
    );
    let mut out = Vec::with_capacity(8);
    for n in 0..macs {
        br.process(0, &frame(MacAddr::BROADCAST, mac(n), None), 0, &mut out);
    }
    const FRAMES: u32 = 1024;
    let frames: Vec<Vec<u8>> =
        (0..FRAMES).map(|i| frame(mac(i % macs), mac(macs + i % macs), Some(10))).collect();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(u64::from(FRAMES)));
    group.bench_function(format!("unicast learn+lookup+vlan, {macs} MACs"), |b| {
        let mut now = 1;
        b.iter(|| {
            now += 1;
            for f in &frames {
                black_box(br.process(2, black_box(f), now, &mut out));
            }
        })
    });
    group.finish();
}

/// A VM port (access 10) sends IPv4/UDP from its bound address to a station learned on the
/// trunk: the frames port security checks most (source MAC, MAC limit, IPv4 source, UDP port).
/// The same frames with port security on and off; the ratio is the check's cost.
fn bench_security(c: &mut Criterion<CpuTime>, on: bool) {
    let mut vm = PortSecurity::vm(mac(1));
    vm.ips = parse_allowed_ips("198.18.0.1").unwrap();
    let sec = if on { vm } else { PortSecurity::off() };
    let mut br = Bridge::new(
        BridgeSettings::default(),
        vec![
            PortSpec { security: sec, ..port("vm0", PortVlan::access(10)) },
            port("vm1", PortVlan::access(10)),
            port("uplink", PortVlan::new(Some(VlanMode::Trunk), None, &[10, 20]).unwrap()),
        ],
    );
    let mut out = Vec::with_capacity(8);
    br.process(2, &frame(MacAddr::BROADCAST, mac(2), Some(10)), 0, &mut out);
    let mut buf = vec![0u8; 128];
    let spec = FrameSpec { dst: mac(2), src: mac(1), vlan: None, ethertype: 0 };
    let n = ipv4_udp(&mut buf, &spec, [198, 18, 0, 1], [198, 18, 0, 2], (40000, 5201), &[0; 18]).unwrap();
    let f = buf[..n].to_vec();
    const FRAMES: u64 = 1024;
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(FRAMES));
    let name = if on { "VM port IPv4/UDP, port security on" } else { "VM port IPv4/UDP, port security off" };
    group.bench_function(name, |b| {
        let mut now = 1;
        b.iter(|| {
            now += 1;
            security_batch(&mut br, &f, FRAMES, now, &mut out);
        })
    });
    group.finish();
}

/// One measured batch, never inlined so that an instruction counter can count exactly these
/// frames: `valgrind --tool=callgrind --toggle-collect='*security_batch*' BENCH --bench
/// "port security on" --profile-time 2`, then inclusive Ir ÷ (calls × frames).
#[inline(never)]
fn security_batch(br: &mut Bridge, f: &[u8], frames: u64, now: u64, out: &mut Vec<switch::Output>) {
    for _ in 0..frames {
        black_box(br.process(0, black_box(f), now, out));
    }
}

fn pipeline(c: &mut Criterion<CpuTime>) {
    for macs in [1, 1_000, 100_000] {
        bench_macs(c, macs);
    }
    bench_security(c, false);
    bench_security(c, true);
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = pipeline
}
criterion_main!(benches);
