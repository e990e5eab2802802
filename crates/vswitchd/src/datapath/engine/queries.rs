//! Questions the control plane asks the forwarding thread about the state only it owns: a
//! frame's trace, the MAC table statistics, and the one change a user may ask for directly
//! (flushing learned addresses, as `ovs-appctl fdb/flush` does).

use switch::{MacStats, PortSecurityEntry, Trace};

use super::Engine;
use crate::datapath::TraceError;

impl Engine {
    /// Traces `frame` on a copy of `bridge`'s state; outputs to ports without a device are
    /// marked, since the datapath has nothing to send them on.
    pub(super) fn trace(&self, bridge: &str, port: &str, frame: &[u8]) -> Result<Trace, TraceError> {
        let br = self
            .bridges
            .iter()
            .find(|b| b.name == bridge)
            .ok_or_else(|| TraceError::NoBridge(bridge.into()))?;
        let slot = br
            .bridge
            .ports()
            .iter()
            .position(|p| p.name == port)
            .ok_or_else(|| TraceError::NoPort { bridge: bridge.into(), port: port.into() })?;
        let mut trace = br.bridge.trace(slot, frame, self.now_ms());
        for o in &mut trace.outputs {
            o.attached = br.devs.get(o.slot).is_some_and(|d| d.is_some());
        }
        Ok(trace)
    }

    /// Forgets learned addresses on `bridge` (every bridge: `None`); false if it does not exist.
    pub(super) fn fdb_flush(&mut self, bridge: Option<&str>) -> bool {
        let mut found = false;
        for br in self.bridges.iter_mut().filter(|b| bridge.is_none_or(|n| n == b.name)) {
            for slot in 0..br.bridge.ports().len() {
                br.bridge.flush_port(slot);
            }
            found = true;
        }
        found || bridge.is_none()
    }

    pub(super) fn security(&self, bridge: Option<&str>) -> Vec<(String, Vec<PortSecurityEntry>)> {
        let now = self.now_ms();
        let wanted = self.bridges.iter().filter(|b| bridge.is_none_or(|n| n == b.name));
        wanted.map(|b| (b.name.clone(), b.bridge.security_report(now))).collect()
    }

    pub(super) fn mac_stats(&self) -> Vec<(String, MacStats)> {
        self.bridges.iter().map(|b| (b.name.clone(), b.bridge.mac_stats())).collect()
    }
}
