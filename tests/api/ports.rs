//! Loopback ports for the processes the tests start.
//! Must not depend on keygate.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

/// A loopback port that was free a moment ago (the OS picks it), and that
/// no earlier call in this test process returned.
///
/// Never handing a port out twice keeps tests apart: a Redis node that a
/// failover test killed is restarted on its port later (and its sentinels
/// remember that port meanwhile); a server another test started there in
/// between would take the port or be adopted into the wrong deployment.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..1000 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0 to find a free port");
        if given.insert(port) {
            return port;
        }
    }
    panic!("no loopback port left that this test process has not used")
}
