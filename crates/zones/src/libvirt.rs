//! libvirt XML: one `<network>` per zone (bridge mode on the zone's OVS bridge, portgroups as
//! VLAN tags) and one domain `<interface>` snippet per VM. libvirt then asks the switch for a
//! port tagged with the portgroup's VLAN when the VM starts, like it does with Open vSwitch.

use std::fmt::Write;

use crate::model::{Model, Vm, Zone};

/// One generated file: its name (no directory) and contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlFile {
    /// `ZONE.network.xml` or `VM.interface.xml`.
    pub name: String,
    /// The XML text.
    pub contents: String,
}

/// Why no XML could be produced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LibvirtError {
    /// The zone asked for is not in the file.
    #[error("no zone named \"{0}\" in the zones file")]
    NoSuchZone(String),
}

/// Escapes text for an XML attribute or element (both quote kinds, so either quoting works).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The libvirt network of a zone.
pub fn network_xml(zone: &Zone) -> String {
    let mut s = String::from("<network>\n");
    let _ = writeln!(s, "  <name>{}</name>", escape(&zone.name));
    s.push_str("  <forward mode='bridge'/>\n");
    let _ = writeln!(s, "  <bridge name='{}'/>", escape(&zone.bridge));
    s.push_str("  <virtualport type='openvswitch'/>\n");
    for pg in &zone.portgroups {
        let default = if pg.default { " default='yes'" } else { "" };
        let _ = writeln!(s, "  <portgroup name='{}'{default}>", escape(&pg.name));
        let _ = writeln!(s, "    <vlan>\n      <tag id='{}'/>\n    </vlan>", pg.vlan);
        s.push_str("  </portgroup>\n");
    }
    s.push_str("</network>\n");
    s
}

/// The `<interface>` element to put in the VM's domain XML.
pub fn interface_xml(vm: &Vm) -> String {
    let pg = vm.portgroup.as_ref().map(|p| format!(" portgroup='{}'", escape(p))).unwrap_or_default();
    format!(
        "<interface type='network'>\n  <source network='{}'{pg}/>\n  <mac address='{}'/>\n  <model type='virtio'/>\n</interface>\n",
        escape(&vm.zone),
        vm.mac
    )
}

/// All files for the model, or only those of one zone (its network and its VMs' interfaces).
pub fn files(model: &Model, zone: Option<&str>) -> Result<Vec<XmlFile>, LibvirtError> {
    if let Some(z) = zone {
        if !model.zones.iter().any(|m| m.name == z) {
            return Err(LibvirtError::NoSuchZone(z.to_string()));
        }
    }
    let wanted = |name: &str| zone.is_none_or(|z| z == name);
    let mut out: Vec<XmlFile> = model
        .zones
        .iter()
        .filter(|z| wanted(&z.name))
        .map(|z| XmlFile { name: format!("{}.network.xml", z.name), contents: network_xml(z) })
        .collect();
    out.extend(
        model
            .vms
            .iter()
            .filter(|v| wanted(&v.zone))
            .map(|v| XmlFile { name: format!("{}.interface.xml", v.name), contents: interface_xml(v) }),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's host: intranet (vlan-10 default, guest), internet, one VM in each.
    const FILE: &str = include_str!("../../../examples/zones.toml");

    #[test]
    fn network_has_bridge_virtualport_and_portgroups() {
        let m = crate::parse(FILE, "z").unwrap();
        let x = network_xml(&m.zones[0]);
        assert_eq!(
            x,
            "<network>\n  <name>intranet</name>\n  <forward mode='bridge'/>\n  <bridge name='br-intranet'/>\n  \
             <virtualport type='openvswitch'/>\n  <portgroup name='vlan-10' default='yes'>\n    <vlan>\n      \
             <tag id='10'/>\n    </vlan>\n  </portgroup>\n  <portgroup name='guest'>\n    <vlan>\n      \
             <tag id='20'/>\n    </vlan>\n  </portgroup>\n</network>\n"
        );
        assert!(!network_xml(&m.zones[1]).contains("portgroup"));
    }

    #[test]
    fn interface_uses_default_portgroup_and_escapes() {
        let m = crate::parse(FILE, "z").unwrap();
        assert!(interface_xml(&m.vms[0]).contains("<source network='intranet' portgroup='vlan-10'/>"));
        assert!(interface_xml(&m.vms[1]).contains("<source network='internet'/>"));
        assert_eq!(escape("a'&<\"b>"), "a&apos;&amp;&lt;&quot;b&gt;");
    }

    #[test]
    fn files_per_zone_or_all() {
        let m = crate::parse(FILE, "z").unwrap();
        let all: Vec<String> = files(&m, None).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(
            all,
            [
                "intranet.network.xml",
                "internet.network.xml",
                "office-desktop.interface.xml",
                "web-browser.interface.xml"
            ]
        );
        let one: Vec<String> = files(&m, Some("internet")).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(one, ["internet.network.xml", "web-browser.interface.xml"]);
        assert_eq!(files(&m, Some("nope")), Err(LibvirtError::NoSuchZone("nope".into())));
    }
}
