//! VPN tunnel up/down events: the control loop's tick reads every VPN port's tunnel state (as
//! the forwarding thread last published it) and this says which changed. Pure: the states
//! are an argument. Same rules as [`super::links::LinkWatch`]: a change is an event, a tunnel
//! seen for the first time is one only when it is up, a port that is gone is forgotten.

use std::collections::HashMap;

use ctl::protocol::EventKind;

use super::Pending;

/// One VPN port's tunnel at a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpnState {
    pub bridge: String,
    pub port: String,
    pub up: bool,
    /// The peer (host:port) as last heard from or configured.
    pub endpoint: String,
}

/// The tunnel state last seen per (bridge, port).
#[derive(Debug, Default)]
pub struct VpnWatch {
    last: HashMap<(String, String), bool>,
}

impl VpnWatch {
    pub fn changes(&mut self, now: Vec<VpnState>) -> Vec<Pending> {
        let mut next = HashMap::with_capacity(now.len());
        let mut out = Vec::new();
        for VpnState { bridge, port, up, endpoint } in now {
            let key = (bridge, port);
            let was = self.last.get(&key).copied();
            if was != Some(up) && (was.is_some() || up) {
                let kind = if up { EventKind::VpnUp { endpoint } } else { EventKind::VpnDown { endpoint } };
                out.push(Pending { bridge: key.0.clone(), port: key.1.clone(), kind });
            }
            next.insert(key, up);
        }
        self.last = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(port: &str, up: bool, endpoint: &str) -> VpnState {
        VpnState { bridge: "br0".into(), port: port.into(), up, endpoint: endpoint.into() }
    }

    fn kinds(v: Vec<Pending>) -> Vec<(String, EventKind)> {
        v.into_iter().map(|p| (p.port, p.kind)).collect()
    }

    #[test]
    fn tunnel_transitions_are_events_with_the_endpoint() {
        let mut w = VpnWatch::default();
        let (a, b) = ("198.18.60.1:51820", "198.18.61.7:4000");
        assert!(w.changes(vec![st("vpn0", false, a)]).is_empty(), "down from the start is no event");
        let up = EventKind::VpnUp { endpoint: a.into() };
        assert_eq!(kinds(w.changes(vec![st("vpn0", true, a)])), vec![("vpn0".into(), up)]);
        assert!(w.changes(vec![st("vpn0", true, b)]).is_empty(), "roaming while up is no up/down event");
        let down = EventKind::VpnDown { endpoint: b.into() };
        assert_eq!(kinds(w.changes(vec![st("vpn0", false, b)])), vec![("vpn0".into(), down)]);
        assert!(w.changes(vec![st("vpn0", false, b)]).is_empty());
        assert!(w.changes(vec![]).is_empty(), "a removed port is no event");
        let up = EventKind::VpnUp { endpoint: a.into() };
        assert_eq!(kinds(w.changes(vec![st("vpn0", true, a)])), vec![("vpn0".into(), up)], "re-added and up");
    }
}
