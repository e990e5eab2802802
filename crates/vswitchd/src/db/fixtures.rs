//! Snapshots and plans for the db module's unit tests: one bridge `br0` (UUID `b`, root row
//! `o`) whose ports each have one interface.

use std::collections::HashMap;

use super::plan::Plan;
use super::snapshot::{BridgeRow, IfaceRow, OvsRow, PortRow, Snapshot};
use crate::state::{DesiredBridge, DesiredPort, DesiredState, PortKind};
use switch::{BridgeSettings, PortVlan};

/// `ifaces`: (interface UUID, name, ofport, ofport_request).
pub fn snap(ifaces: &[(&str, &str, Option<i64>, Option<i64>)]) -> Snapshot {
    let ovs = Some(OvsRow { uuid: "o".into(), bridges: vec!["b".into()], ..Default::default() });
    let bridge = BridgeRow {
        uuid: "b".into(),
        name: "br0".into(),
        ports: vec![],
        other_config: vec![],
        external_ids: vec![],
        datapath_id: None,
        mirrors: vec![],
    };
    let bridges = HashMap::from([("b".to_string(), bridge)]);
    let (mut ports, mut rows) = (HashMap::new(), HashMap::new());
    for (uuid, name, ofport, req) in ifaces {
        let (uuid, name) = (uuid.to_string(), name.to_string());
        let row = IfaceRow {
            uuid: uuid.clone(),
            name: name.clone(),
            kind: String::new(),
            ofport: *ofport,
            ofport_request: *req,
            other_config: vec![],
            external_ids: vec![],
            options: vec![],
        };
        rows.insert(uuid.clone(), row);
        let port = PortRow {
            uuid: format!("p{uuid}"),
            name,
            interfaces: vec![uuid],
            tag: None,
            trunks: vec![],
            vlan_mode: None,
        };
        ports.insert(port.uuid.clone(), port);
    }
    Snapshot::new(ovs, bridges, ports, rows)
}

pub fn plan_for(names: &[&str]) -> Plan {
    let ports = names
        .iter()
        .map(|n| DesiredPort {
            name: n.to_string(),
            kind: PortKind::System,
            vlan: PortVlan::access(1),
            security: Default::default(),
            vpn: None,
        })
        .collect();
    Plan {
        desired: DesiredState {
            bridges: vec![DesiredBridge {
                name: "br0".into(),
                settings: BridgeSettings::default(),
                ports,
                mirrors: vec![],
            }],
        },
        rejected: vec![],
        mirror_notes: vec![],
    }
}
