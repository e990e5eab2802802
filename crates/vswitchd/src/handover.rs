//! Listening sockets handed from one rvswitchd to the next across an in-place upgrade (SIGUSR2
//! re-execs the binary): the OVSDB and control sockets stay bound the whole time, so a client
//! that connects while the processes change waits in the backlog instead of finding no socket
//! (ovs-vsctl, libvirt and rvsctl see no gap). The descriptor survives `exec` and its number
//! travels in an environment variable of the new image.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// The OVSDB listener's descriptor number.
pub const DB_LISTENER: &str = "RVSWITCH_DB_LISTENER_FD";
/// The control socket listener's descriptor number.
pub const CONTROL_LISTENER: &str = "RVSWITCH_CONTROL_LISTENER_FD";

/// The listening socket the previous image handed over under `var`, if any and if it really is
/// a listening socket (anything else named there is ignored and left alone). Made close-on-exec
/// again, so it does not leak into programs we start.
pub fn inherited(var: &str) -> Option<UnixListener> {
    let fd: libc::c_int = std::env::var(var).ok()?.parse().ok()?;
    if fd < 3 || !is_listening_socket(fd) {
        return None;
    }
    // SAFETY: the previous image left this descriptor open for us under this name, nothing in
    // this process owns it yet, and we checked it is a listening socket.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(&owned, true).ok()?;
    Some(UnixListener::from(owned))
}

fn is_listening_socket(fd: libc::c_int) -> bool {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_ACCEPTCONN writes one int into our buffer; a bad descriptor only fails.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut on as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && on == 1
}

fn set_cloexec(fd: &OwnedFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps `fd` open across the coming `exec` and returns the environment entry that names it.
pub fn pass_on(var: &str, fd: OwnedFd) -> io::Result<(String, String)> {
    set_cloexec(&fd, false)?;
    Ok((var.to_string(), fd.into_raw_fd().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_survives_the_round_trip_and_other_descriptors_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = UnixListener::bind(&path).unwrap();
        let (var, value) = pass_on("RVSWITCH_TEST_LISTENER_FD", OwnedFd::from(l)).unwrap();
        std::env::set_var(&var, &value);
        let back = inherited(&var).expect("the listener");
        // Still listening at the same path: a client connects and is accepted.
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert!(back.accept().is_ok());
        // A descriptor that is not a listening socket is not taken.
        let file = std::fs::File::open("/dev/null").unwrap();
        std::env::set_var("RVSWITCH_TEST_OTHER_FD", file.as_raw_fd().to_string());
        assert!(inherited("RVSWITCH_TEST_OTHER_FD").is_none());
        std::env::remove_var("RVSWITCH_TEST_OTHER_FD");
        std::env::remove_var(&var);
    }
}
