use std::collections::VecDeque;

use super::*;

/// A wire that answers each `send` with the next scripted result and records, per accepted
/// run, the datagram lengths it carried (and whether it went as one GSO message).
#[derive(Default)]
struct Scripted {
    answers: VecDeque<io::Result<usize>>,
    sent: Vec<(Vec<usize>, bool)>,
    calls: usize,
}

impl Wire for Scripted {
    fn send(&mut self, buf: &[u8], runs: &[Run], _to: SocketAddr) -> io::Result<usize> {
        self.calls += 1;
        assert!(runs.iter().all(|r| r.start + r.len <= buf.len()), "runs lie within the buffer");
        let n = self.answers.pop_front().unwrap_or(Ok(runs.len()))?;
        let n = n.min(runs.len());
        self.sent.extend(runs[..n].iter().map(|r| (r.lengths().collect(), r.count > 1)));
        Ok(n)
    }
}

fn to() -> SocketAddr {
    "198.18.0.1:51820".parse().unwrap()
}

fn queue(b: &mut Outbox, lens: &[usize]) {
    for &len in lens {
        let s = b.space(len).expect("room");
        s[..len].fill(len as u8);
        b.commit(len);
    }
}

#[test]
fn equal_datagrams_form_one_gso_run_and_a_shorter_one_ends_it() {
    let mut b = Outbox::default();
    queue(&mut b, &[1412, 1412, 1412, 700, 1412, 1412, 80]);
    assert_eq!(b.runs.len(), 2, "{:?}", b.runs);
    let mut w = Scripted::default();
    assert_eq!(b.flush(&mut w, to()), Flushed { sent: 7, dropped: 0 });
    assert_eq!(w.sent, [(vec![1412, 1412, 1412, 700], true), (vec![1412, 1412, 80], true)]);
    assert_eq!((w.calls, b.is_empty()), (1, true), "one sendmmsg, then empty");
}

#[test]
fn a_bigger_datagram_starts_a_new_run_and_runs_respect_the_kernel_limits() {
    let mut b = Outbox::default();
    queue(&mut b, &[500, 1412]);
    queue(&mut b, &[100; 70]);
    let counts: Vec<usize> = b.runs.iter().map(|r| r.count).collect();
    // 1412 > 500 starts a run; the first 100 ends that one (shorter may come last only).
    assert_eq!(counts, [1, 2, MAX_SEGMENTS, 69 - MAX_SEGMENTS]);
    let mut b = Outbox::default();
    queue(&mut b, &[9000; 10]);
    assert!(b.runs.iter().all(|r| r.len <= MAX_RUN_BYTES), "{:?}", b.runs);
    assert_eq!(b.len(), 10);
}

#[test]
fn a_partial_sendmmsg_goes_on_with_the_rest() {
    let mut b = Outbox::default();
    queue(&mut b, &[100, 200, 300, 400]);
    let mut w = Scripted { answers: [Ok(1), Ok(2)].into(), ..Default::default() };
    assert_eq!(b.flush(&mut w, to()), Flushed { sent: 4, dropped: 0 });
    assert_eq!(w.calls, 3);
    let lens: Vec<Vec<usize>> = w.sent.into_iter().map(|(l, _)| l).collect();
    assert_eq!(lens, [vec![100], vec![200], vec![300], vec![400]], "in order, none twice");
}

#[test]
fn eagain_drops_the_rest_and_the_box_is_usable_again() {
    let mut b = Outbox::default();
    queue(&mut b, &[1000, 1000, 900, 300]);
    let mut w = Scripted {
        answers: [Ok(1), Err(io::Error::from_raw_os_error(libc::EAGAIN))].into(),
        ..Default::default()
    };
    assert_eq!(b.flush(&mut w, to()), Flushed { sent: 3, dropped: 1 });
    assert!(b.is_empty());
    queue(&mut b, &[50]);
    assert_eq!(b.flush(&mut w, to()), Flushed { sent: 1, dropped: 0 });
    let mut w = Scripted { answers: [Ok(0)].into(), ..Default::default() };
    queue(&mut b, &[50, 60]);
    assert_eq!(b.flush(&mut w, to()), Flushed { sent: 0, dropped: 2 }, "took nothing: the rest is lost");
}

#[test]
fn refused_gso_is_turned_off_and_the_run_resent_datagram_by_datagram() {
    let mut b = Outbox::default();
    queue(&mut b, &[80, 1000, 1000, 500]);
    let mut w = Scripted {
        answers: [Ok(1), Err(io::Error::from_raw_os_error(libc::EIO))].into(),
        ..Default::default()
    };
    assert_eq!(b.flush(&mut w, to()), Flushed { sent: 4, dropped: 0 });
    assert_eq!(
        w.sent,
        [(vec![80], false), (vec![1000], false), (vec![1000], false), (vec![500], false)],
        "the refused run's datagrams went one by one"
    );
    queue(&mut b, &[1000, 1000]);
    assert_eq!(b.runs.len(), 2, "and GSO stays off");
}

#[test]
fn another_error_loses_only_that_message() {
    let mut b = Outbox::default();
    queue(&mut b, &[100, 200, 300]);
    let unreachable = || Err(io::Error::from_raw_os_error(libc::ENETUNREACH));
    let interrupted = || Err(io::Error::from_raw_os_error(libc::EINTR));
    let mut w = Scripted { answers: [interrupted(), unreachable(), Ok(5)].into(), ..Default::default() };
    assert_eq!(b.flush(&mut w, to()), Flushed { sent: 2, dropped: 1 });
    let lens: Vec<Vec<usize>> = w.sent.into_iter().map(|(l, _)| l).collect();
    assert_eq!(lens, [vec![200], vec![300]]);
}

#[test]
fn a_full_box_says_so() {
    let mut b = Outbox::default();
    let mut n = 0;
    while b.space(1500).is_some() {
        b.commit(1500);
        n += 1;
    }
    assert_eq!(n, CAPACITY / 1500);
    assert!(b.space(CAPACITY % 1500).is_some(), "what is left is still offered");
    b.flush(&mut Scripted::default(), to());
    assert!(b.space(1500).is_some());
}
