//! `CLUSTER NODES` parsing shared by the cluster test harness
//! (`tests/api/redis_cluster.rs`) and the bench's cluster
//! (`examples/bench/topology.rs`, which includes this file by path).
//! Must depend on nothing but std.

/// The ports of the healthy masters serving slots and of the healthy
/// replicas in a `CLUSTER NODES` text, each sorted.
pub fn cluster_roles(text: &str) -> (Vec<u16>, Vec<u16>) {
    let mut masters = vec![];
    let mut replicas = vec![];
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if flags.contains("fail") {
            continue;
        }
        let Some(port) = addr
            .split('@')
            .next()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
        else {
            continue;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        // Fields 9.. are the slot ranges a master serves.
        if flags.contains(&"master") && fields.len() > 8 {
            masters.push(port);
        } else if flags.contains(&"slave") {
            replicas.push(port);
        }
    }
    masters.sort_unstable();
    replicas.sort_unstable();
    (masters, replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_text_gives_the_roles() {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
b1 127.0.0.1:7004@17004 slave a1 0 0 1 connected
b2 127.0.0.1:7005@17005 slave a2 0 0 2 connected
b3 127.0.0.1:7006@17006 slave,fail a3 0 0 3 connected
c0 127.0.0.1:7007@17007 master - 0 0 0 connected
";
        let (m, r) = cluster_roles(text);
        // A master without slots is not serving; a failed node is left out.
        assert_eq!(m, vec![7001, 7002, 7003]);
        assert_eq!(r, vec![7004, 7005]);
    }
}
