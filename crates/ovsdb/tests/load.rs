//! 100 concurrent clients transacting for a bounded time: no errors, no lost updates.

mod common;
use common::{RawClient, TestServer};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn hundred_clients_no_lost_updates() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    let r = c.result(
        "transact",
        json!(["Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}]),
        1,
    );
    let ovs = r[0]["uuid"][1].as_str().unwrap().to_string();
    // A monitor watching everything must also keep up (it reads in the background).
    c.result(
        "monitor_cond",
        json!(["Open_vSwitch", "all", {"Open_vSwitch": [{"columns": ["next_cfg"]}]}]),
        2,
    );
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    let reader = std::thread::spawn(move || {
        while let Some(m) = c.recv() {
            if m["method"] == "update2" {
                seen2.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let total = Arc::new(AtomicU64::new(0));
    // The ten seconds the OVSDB issue asks for; each client stops by itself at the deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut threads = Vec::new();
    for i in 0..100u64 {
        let (sock, ovs, total) = (s.sock(), ovs.clone(), total.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = RawClient::connect(&sock);
            let key = format!("client{i}");
            let mut n = 0u64;
            let mut id = 10;
            while Instant::now() < deadline {
                n += 1;
                id += 1;
                // Each client keeps its own counter in external_ids and bumps next_cfg.
                let r = c.result(
                    "transact",
                    json!(["Open_vSwitch",
                        {"op": "mutate", "table": "Open_vSwitch", "where": [["_uuid", "==", ["uuid", ovs]]],
                         "mutations": [["next_cfg", "+=", 1],
                                       ["external_ids", "delete", ["set", [key]]],
                                       ["external_ids", "insert", ["map", [[key, n.to_string()]]]]]}]),
                    id,
                );
                assert_eq!(r, json!([{"count": 1}]), "client {i}");
            }
            total.fetch_add(n, Ordering::Relaxed);
            n
        }));
    }
    let counts: Vec<u64> = threads.into_iter().map(|t| t.join().expect("client thread")).collect();
    let total = total.load(Ordering::Relaxed);
    assert!(total >= 100, "only {total} transactions");
    let mut c = RawClient::connect(&s.sock());
    let r = c.result("transact", json!(["Open_vSwitch", {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg", "external_ids"]}]), 1);
    let row = &r[0]["rows"][0];
    assert_eq!(row["next_cfg"], json!(total));
    let ids: std::collections::HashMap<String, String> = row["external_ids"][1]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string()))
        .collect();
    for (i, n) in counts.iter().enumerate() {
        assert_eq!(ids[&format!("client{i}")], n.to_string());
    }
    // The monitor received one update per transaction.
    let until = Instant::now() + Duration::from_secs(15);
    while seen.load(Ordering::Relaxed) < total && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen.load(Ordering::Relaxed), total);
    drop(s);
    let _ = reader.join();
    eprintln!("load: {total} transactions by 100 clients in 10 s");
}
