//! The control plane in one place: the reconciler (datapath side), the database client, and the
//! optional config file that seeds the database. Everything that changes the switch goes through
//! here under one lock; the forwarding thread is reached only through the reconciler's commands.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ctl::protocol::{FdbReply, ShowReply};
use tracing::{info, warn};

use crate::config::{self, ConfigError};
use crate::datapath::Datapath;
use crate::db::{DbError, DbSync};
use crate::events::links::LinkWatch;
use crate::events::vpn::VpnWatch;
use crate::events::EventRing;
use crate::reconcile::{FdbError, Reconciler};

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file is bad; the database was not touched.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
}

pub struct Daemon {
    rec: Reconciler,
    db: DbSync,
    config_path: Option<PathBuf>,
    /// The first reload could not reach the database (a remote one not answering yet): it is
    /// done, with the first-start clean-up, once the database has sent its contents.
    first_reload_pending: bool,
    events: Arc<EventRing>,
    links: LinkWatch,
    vpns: VpnWatch,
}

impl Daemon {
    pub fn new(rec: Reconciler, db: DbSync, config_path: Option<PathBuf>, events: Arc<EventRing>) -> Daemon {
        Daemon {
            rec,
            db,
            config_path,
            first_reload_pending: false,
            events,
            links: LinkWatch::default(),
            vpns: VpnWatch::default(),
        }
    }

    /// The event ring, for readers that must not hold the daemon's lock while they wait.
    pub fn events(&self) -> Arc<EventRing> {
        self.events.clone()
    }

    /// Reads the config file (if any) into the database, then applies the database. A bad file
    /// changes nothing: it is rejected before the database is touched.
    pub fn reload(&mut self) -> Result<Vec<String>, ReloadError> {
        if let Some(path) = &self.config_path {
            let desired = config::load(path)?;
            self.db.seed(&desired, &path.display().to_string())?;
        }
        Ok(self.db.sync(&mut self.rec)?)
    }

    /// The first reload failed for want of a database; [`Daemon::sync`] does it later.
    pub fn defer_first_reload(&mut self) {
        self.first_reload_pending = true;
    }

    /// Applies the database's current configuration (after a change notification).
    pub fn sync(&mut self) {
        if self.first_reload_pending {
            match self.reload() {
                Ok(changes) => {
                    info!("database reached: applied ({} changes)", changes.len());
                    self.first_reload_pending = false;
                    self.drop_unclaimed_kept();
                }
                Err(e) => warn!("cannot apply the database yet: {e}"),
            }
            return;
        }
        match self.db.sync(&mut self.rec) {
            Ok(changes) if !changes.is_empty() => {
                info!("applied {} change(s) from the database", changes.len())
            }
            Ok(_) => {}
            Err(e) => warn!("cannot apply the database: {e}"),
        }
    }

    /// Periodic work: re-check devices (vanished, reappeared), report links and VPN tunnels that
    /// went up or down, and write status back.
    pub fn tick(&mut self) {
        self.rec.monitor();
        let vpn = self.vpns.changes(self.rec.vpn_states());
        for e in self.links.changes(self.rec.link_states()).into_iter().chain(vpn) {
            self.events.push(e);
        }
        self.db.write_status(&self.rec);
    }

    pub fn show(&self) -> ShowReply {
        self.rec.show(self.config_path.as_ref().map(|p| p.display().to_string()))
    }

    pub fn fdb(&self, bridge: &str) -> Result<FdbReply, FdbError> {
        self.rec.fdb(bridge)
    }

    /// The forwarding thread's handle, for the questions only it can answer (trace, MAC table
    /// statistics, flush).
    pub fn datapath(&self) -> &Datapath {
        self.rec.datapath()
    }

    /// OpenFlow port numbers by interface name.
    pub fn ofports(&self) -> HashMap<String, i64> {
        self.db.ofports()
    }

    /// The port `in_port` names: a port name, or an OpenFlow port number (as OvS accepts).
    pub fn resolve_port(&self, in_port: &str) -> String {
        match in_port.parse::<i64>() {
            Ok(n) => self
                .ofports()
                .into_iter()
                .find(|(_, o)| *o == n)
                .map_or_else(|| in_port.to_string(), |(name, _)| name),
            Err(_) => in_port.to_string(),
        }
    }

    /// After the first reload: kept devices the configuration no longer has are closed.
    pub fn drop_unclaimed_kept(&mut self) {
        self.rec.drop_unclaimed_kept();
    }

    /// Stops forwarding and closes every device — or, with `keep_devices` (an upgrade), leaves
    /// them with the descriptor keeper for the next process.
    pub fn shutdown(&mut self, keep_devices: bool) {
        self.rec.shutdown(keep_devices);
    }
}
