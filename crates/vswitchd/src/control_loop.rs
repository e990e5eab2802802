//! The control loop's thread (`db-sync`): applies database changes as they are announced, and
//! once a [`TICK`] re-checks devices and writes status back.
//!
//! It sleeps until one of those is due, or until the main thread stops it: a stop arrives on
//! the same channel as the announcements, so nothing has to poll a flag. (It used to look at
//! one every 50 ms: 20 wakeups a second on an idle host, each one possibly waking an idle vCPU.)

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::Daemon;
use crate::datapath::{release_freed_heap, TRIM_TICKS};
use crate::service::watchdog::Heartbeat;

/// How often devices are re-checked and status written back (ovs-vswitchd: about once a second).
pub const TICK: Duration = Duration::from_secs(1);

/// What the control loop does, so the loop can be tested without a whole daemon.
pub trait Controlled: Send + 'static {
    /// The database changed: apply it.
    fn sync(&mut self);
    /// A [`TICK`] passed.
    fn tick(&mut self);
}

impl Controlled for Daemon {
    fn sync(&mut self) {
        Daemon::sync(self);
        release_freed_heap();
    }

    fn tick(&mut self) {
        Daemon::tick(self);
    }
}

/// What wakes the loop.
enum Wake {
    /// The database announced a change.
    Changed,
    /// The announcements ended (the database session is gone): the loop ends, as before.
    Closed,
    /// The main thread asked it to stop.
    Stop,
}

/// The running loop; [`ControlLoop::stop`] ends it.
pub struct ControlLoop {
    wake: Sender<Wake>,
    loop_thread: JoinHandle<()>,
}

impl ControlLoop {
    /// Starts the loop on `shared`, woken by `notes` (the database's change announcements);
    /// `beat` is beaten once per tick for the watchdog.
    pub fn start<D: Controlled>(
        shared: Arc<Mutex<D>>,
        notes: Receiver<Value>,
        beat: Arc<Heartbeat>,
    ) -> std::io::Result<ControlLoop> {
        let (wake, woken) = channel();
        let relay = wake.clone();
        // Blocks on the announcements and passes each on; ends with them or with the loop.
        std::thread::Builder::new().name("db-notes".into()).spawn(move || {
            while notes.recv().is_ok() {
                if relay.send(Wake::Changed).is_err() {
                    return;
                }
            }
            let _ = relay.send(Wake::Closed);
        })?;
        let loop_thread =
            std::thread::Builder::new().name("db-sync".into()).spawn(move || run(&shared, &woken, &beat))?;
        Ok(ControlLoop { wake, loop_thread })
    }

    /// Asks the loop to stop and waits until it has (a sync or tick under way finishes first).
    pub fn stop(self) {
        let _ = self.wake.send(Wake::Stop);
        let _ = self.loop_thread.join();
    }
}

fn run<D: Controlled>(shared: &Mutex<D>, woken: &Receiver<Wake>, beat: &Heartbeat) {
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let mut last_tick = Instant::now();
    let mut ticks = 0u32;
    loop {
        let wait = TICK.saturating_sub(last_tick.elapsed());
        match woken.recv_timeout(wait) {
            Ok(Wake::Changed) => {
                // Announcements that piled up meanwhile need one sync, not one each.
                let mut ending = false;
                while let Ok(w) = woken.try_recv() {
                    ending |= !matches!(w, Wake::Changed);
                }
                lock().sync();
                if ending {
                    return;
                }
            }
            Ok(Wake::Closed | Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            lock().tick();
            beat.beat();
            ticks = ticks.wrapping_add(1);
            if ticks % TRIM_TICKS == 1 {
                release_freed_heap();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counts {
        syncs: u32,
        ticks: u32,
    }

    impl Controlled for Counts {
        fn sync(&mut self) {
            self.syncs += 1;
        }
        fn tick(&mut self) {
            self.ticks += 1;
        }
    }

    fn wait_for(shared: &Mutex<Counts>, what: impl Fn(&Counts) -> bool) -> bool {
        (0..1000).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            what(&shared.lock().unwrap())
        })
    }

    #[test]
    fn changes_are_applied_ticks_run_and_stop_ends_it() {
        let shared = Arc::new(Mutex::new(Counts::default()));
        let (notes, rx) = channel();
        let beat = Heartbeat::new();
        let l = ControlLoop::start(shared.clone(), rx, beat.clone()).unwrap();
        notes.send(Value::Null).unwrap();
        assert!(wait_for(&shared, |c| c.syncs >= 1), "a change was never applied");
        assert!(wait_for(&shared, |c| c.ticks >= 1), "no tick");
        l.stop();
        let syncs = shared.lock().unwrap().syncs;
        let _ = notes.send(Value::Null);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(shared.lock().unwrap().syncs, syncs, "applied a change after the stop");
        // The Arc is back to one owner: the loop thread is gone.
        assert_eq!(Arc::strong_count(&shared), 1);
    }

    #[test]
    fn the_loop_ends_when_the_announcements_do() {
        let shared = Arc::new(Mutex::new(Counts::default()));
        let (notes, rx) = channel::<Value>();
        let l = ControlLoop::start(shared.clone(), rx, Heartbeat::new()).unwrap();
        drop(notes);
        assert!(wait_for(&shared, |_| l.loop_thread.is_finished()), "still running");
        l.stop();
    }
}
