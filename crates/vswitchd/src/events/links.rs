//! Port up/down events: the control loop's tick looks at every port's link state and this
//! says which changed. Pure: the states are an argument.

use std::collections::HashMap;

use ctl::protocol::EventKind;

use super::Pending;

/// The link state last seen per (bridge, port).
#[derive(Debug, Default)]
pub struct LinkWatch {
    last: HashMap<(String, String), bool>,
}

impl LinkWatch {
    /// The events for `now` (every port's (bridge, port, up)): a change is an event; a port
    /// seen for the first time is one when it is up (it came up); a port that is gone is
    /// forgotten without one (its removal is a configuration change, not a link event).
    pub fn changes(&mut self, now: Vec<(String, String, bool)>) -> Vec<Pending> {
        let mut next = HashMap::with_capacity(now.len());
        let mut out = Vec::new();
        for (bridge, port, up) in now {
            let key = (bridge, port);
            let was = self.last.get(&key).copied();
            if was != Some(up) && (was.is_some() || up) {
                let kind = if up { EventKind::PortUp } else { EventKind::PortDown };
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

    fn st(port: &str, up: bool) -> (String, String, bool) {
        ("br0".into(), port.into(), up)
    }

    fn kinds(v: Vec<Pending>) -> Vec<(String, EventKind)> {
        v.into_iter().map(|p| (p.port, p.kind)).collect()
    }

    #[test]
    fn transitions_are_events_steady_state_is_not() {
        let mut w = LinkWatch::default();
        assert_eq!(
            kinds(w.changes(vec![st("a", true), st("b", false)])),
            vec![("a".into(), EventKind::PortUp)]
        );
        assert!(w.changes(vec![st("a", true), st("b", false)]).is_empty());
        assert_eq!(
            kinds(w.changes(vec![st("a", false), st("b", true)])),
            vec![("a".into(), EventKind::PortDown), ("b".into(), EventKind::PortUp)]
        );
        assert!(w.changes(vec![st("b", true)]).is_empty(), "a removed port is no event");
        assert_eq!(
            kinds(w.changes(vec![st("a", true), st("b", true)])),
            vec![("a".into(), EventKind::PortUp)]
        );
    }
}
