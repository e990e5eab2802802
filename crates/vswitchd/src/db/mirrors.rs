//! Bridge `mirrors` → the mirrors the switch runs, with ovs-vswitchd's reading of the Mirror
//! columns. A mirror that cannot take effect is left out with a note saying why (logged at
//! warn), rather than half-run: no output port (RSPAN through `output_vlan` is not supported by
//! rvswitch), an output port not on the bridge, or more than [`switch::MAX_MIRRORS`] mirrors.

use super::snapshot::{BridgeRow, MirrorRow, Snapshot};
use crate::state::{DesiredMirror, DesiredPort};

/// The bridge's mirrors that take effect (sorted by name: stable masks), and a note for each
/// row that is ignored or only partly honoured.
pub fn mirrors_of(s: &Snapshot, b: &BridgeRow, ports: &[DesiredPort]) -> (Vec<DesiredMirror>, Vec<String>) {
    let mut rows: Vec<&MirrorRow> = b.mirrors.iter().filter_map(|u| s.mirrors.get(u)).collect();
    rows.sort_by(|x, y| (&x.name, &x.uuid).cmp(&(&y.name, &y.uuid)));
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for m in rows {
        let what = format!("bridge {}: mirror {}", b.name, m.name);
        match desired(s, m, ports) {
            Err(why) => notes.push(format!("{what}: {why}; the mirror has no effect")),
            Ok(_) if out.len() == switch::MAX_MIRRORS => {
                notes.push(format!(
                    "{what}: more than {} mirrors on the bridge; ignored",
                    switch::MAX_MIRRORS
                ));
            }
            Ok(d) => {
                if m.output_vlan.is_some() {
                    notes.push(format!(
                        "{what}: specifies both output port and output vlan; ignoring output vlan"
                    ));
                }
                out.push(d);
            }
        }
    }
    (out, notes)
}

/// The mirror as the switch runs it, or why it cannot run.
fn desired(s: &Snapshot, m: &MirrorRow, ports: &[DesiredPort]) -> Result<DesiredMirror, String> {
    let on_bridge = |port_uuid: &String| {
        let name = iface_of(s, port_uuid)?;
        ports.iter().any(|p| p.name == name).then(|| name.to_string())
    };
    let output = match (&m.output_port, m.output_vlan) {
        (Some(p), _) => on_bridge(p).ok_or("its output port is not on the bridge")?,
        (None, Some(vlan)) => {
            return Err(format!("output_vlan {vlan} (RSPAN) is not supported by rvswitch, only output_port"));
        }
        (None, None) => return Err("no output_port".into()),
    };
    Ok(DesiredMirror {
        uuid: m.uuid.clone(),
        name: m.name.clone(),
        select_all: m.select_all,
        src: m.select_src_port.iter().filter_map(on_bridge).collect(),
        dst: m.select_dst_port.iter().filter_map(on_bridge).collect(),
        vlans: m.select_vlan.iter().filter_map(|v| u16::try_from(*v).ok()).collect(),
        output,
    })
}

/// The interface name of a one-interface port (the name the switch knows the port by).
fn iface_of<'a>(s: &'a Snapshot, port_uuid: &str) -> Option<&'a str> {
    let port = s.ports.get(port_uuid)?;
    let [iface] = port.interfaces.as_slice() else { return None };
    s.ifaces.get(iface).map(|i| i.name.as_str())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::db::fixtures::{plan_for, snap};

    /// br0 with a, c, mon (Port UUIDs pa, pc, pmon) and the mirrors `rows`.
    fn with(rows: Vec<MirrorRow>) -> Snapshot {
        let mut s = snap(&[("a", "a", None, None), ("c", "c", None, None), ("mon", "mon", None, None)]);
        let b = s.bridges.get_mut("b").unwrap();
        b.mirrors = rows.iter().map(|m| m.uuid.clone()).collect();
        let mirrors: HashMap<_, _> = rows.into_iter().map(|m| (m.uuid.clone(), m)).collect();
        s.with_mirrors(mirrors)
    }

    fn row(uuid: &str, output: Option<&str>, output_vlan: Option<i64>) -> MirrorRow {
        MirrorRow {
            uuid: uuid.into(),
            name: format!("m-{uuid}"),
            select_src_port: vec!["pa".into(), "pgone".into()],
            select_vlan: vec![10, 20],
            output_port: output.map(String::from),
            output_vlan,
            ..MirrorRow::default()
        }
    }

    fn run(s: &Snapshot) -> (Vec<DesiredMirror>, Vec<String>) {
        let plan = plan_for(&["a", "c", "mon"]);
        mirrors_of(s, &s.bridges["b"], &plan.desired.bridges[0].ports)
    }

    #[test]
    fn an_output_port_mirror_runs_with_the_ports_it_knows() {
        let (m, notes) = run(&with(vec![row("1", Some("pmon"), None)]));
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].output.as_str(), &m[0].src, &m[0].vlans),
            ("mon", &vec!["a".to_string()], &vec![10, 20])
        );
        assert_eq!(m[0].uuid, "1");
    }

    #[test]
    fn rspan_and_outputless_mirrors_say_why_they_do_nothing() {
        let s = with(vec![row("1", None, Some(100)), row("2", None, None), row("3", Some("pgone"), None)]);
        let (m, notes) = run(&s);
        assert!(m.is_empty());
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].contains("output_vlan 100 (RSPAN) is not supported"), "{}", notes[0]);
        assert!(notes[1].contains("no output_port"));
        assert!(notes[2].contains("not on the bridge"));
        let (m, notes) = run(&with(vec![row("1", Some("pmon"), Some(100))]));
        assert_eq!(m.len(), 1);
        assert!(notes[0].contains("ignoring output vlan"), "{notes:?}");
    }

    #[test]
    fn at_most_max_mirrors() {
        let rows =
            (0..switch::MAX_MIRRORS + 2).map(|i| row(&format!("{i:02}"), Some("pmon"), None)).collect();
        let (m, notes) = run(&with(rows));
        assert_eq!(m.len(), switch::MAX_MIRRORS);
        assert_eq!(notes.len(), 2);
    }
}
