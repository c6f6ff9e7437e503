//! The remote driver without sockets: which connections it asks for under the
//! caps, the next address after a failure, and the outcomes it reports.

use std::path::Path;

use super::*;
use crate::smtp::client::Failure;

fn config(extra: &str) -> Config {
    let text = format!("hostname mx.test\nlocal_domains mx.test\n{extra}");
    Config::parse(Path::new("t.conf"), &text).expect("test config")
}

fn request(job: &str, rcpts: &[&str]) -> RemoteRequest {
    RemoteRequest {
        job: job.into(),
        path: PathBuf::from("/nonexistent"),
        offset: 0,
        len: 100,
        from: ReversePath::Null,
        rcpts: rcpts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (local, domain) = r.split_once('@').unwrap();
                (
                    i,
                    Mailbox {
                        local: local.into(),
                        domain: domain.into(),
                    },
                )
            })
            .collect(),
    }
}

/// The connections asked for so far: (attempt, address).
fn connects(remote: &mut RemoteDelivery) -> Vec<(u64, SocketAddr)> {
    remote
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Connect(c) => Some((c.attempt, c.addr)),
            Action::Dns(_) => None,
        })
        .collect()
}

fn accepted(n: usize) -> client::Outcome {
    client::Outcome {
        rcpts: (0..n).map(|_| Ok("250 2.0.0 Ok".to_string())).collect(),
        session: None,
    }
}

#[test]
fn connections_stay_within_the_caps() {
    let config = config(
        "relayhost [192.0.2.1]:2525\nrelayhost_tls none\n\
         max_outbound_connections 3\nmax_outbound_per_destination 2\n",
    );
    let mut remote = RemoteDelivery::load(&config).unwrap();
    let now = Instant::now();
    for job in ["A", "B", "C", "D"] {
        remote.submit(&config, request(job, &["x@far.example"]), now);
    }
    let first = connects(&mut remote);
    assert_eq!(first.len(), 2, "per-destination cap: {first:?}");
    assert!(first.iter().all(|(_, a)| a.to_string() == "192.0.2.1:2525"));
    // One ends: exactly one more starts.
    remote.attempt_done(&config, first[0].0, Ok(accepted(1)));
    let second = connects(&mut remote);
    assert_eq!(second.len(), 1, "{second:?}");
    let delivered = remote.take_delivered();
    assert_eq!(delivered.len(), 1);
    assert!(matches!(delivered[0].outcome, Outcome::Sent));
    assert_eq!(delivered[0].relay, "192.0.2.1[192.0.2.1]:2525");
}

#[test]
fn the_global_cap_holds_across_destinations() {
    let config = config("max_outbound_connections 2\nmax_outbound_per_destination 5\n");
    let mut remote = RemoteDelivery::load(&config).unwrap();
    let now = Instant::now();
    // Address literals need no DNS.
    for (job, domain) in [
        ("A", "[192.0.2.1]"),
        ("B", "[192.0.2.2]"),
        ("C", "[192.0.2.3]"),
    ] {
        remote.submit(&config, request(job, &[&format!("x@{domain}")]), now);
    }
    assert_eq!(connects(&mut remote).len(), 2);
}

#[test]
fn a_refused_connection_moves_on_and_the_last_error_defers() {
    let config = config("relayhost [192.0.2.1]:2525\nrelayhost_tls none\n");
    let mut remote = RemoteDelivery::load(&config).unwrap();
    remote.submit(
        &config,
        request("A", &["x@far.example", "y@far.example"]),
        Instant::now(),
    );
    let c = connects(&mut remote);
    assert_eq!(c.len(), 1, "one transaction for both recipients");
    remote.attempt_done(&config, c[0].0, Err("Connection refused".into()));
    let delivered = remote.take_delivered();
    assert_eq!(delivered.len(), 2);
    for d in &delivered {
        match &d.outcome {
            Outcome::Deferred(why) => assert!(why.contains("Connection refused"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn per_recipient_verdicts_and_a_refused_login() {
    let config = config("relayhost [192.0.2.1]:2525\nrelayhost_tls none\n");
    let mut remote = RemoteDelivery::load(&config).unwrap();
    remote.submit(
        &config,
        request("A", &["a@far.example", "b@far.example"]),
        Instant::now(),
    );
    let c = connects(&mut remote);
    let refused = Failure {
        permanent: true,
        code: 550,
        enhanced: "5.1.1".into(),
        text: "no such user".into(),
        stage: "RCPT TO",
    };
    let outcome = client::Outcome {
        rcpts: vec![Ok("250 2.0.0 Ok".into()), Err(refused)],
        session: None,
    };
    remote.attempt_done(&config, c[0].0, Ok(outcome));
    let d = remote.take_delivered();
    assert!(matches!(d[0].outcome, Outcome::Sent));
    assert_eq!(
        d[1].outcome,
        Outcome::Bounced("550 5.1.1 no such user".into())
    );
    assert_eq!(d[1].remote_mta.as_deref(), Some("192.0.2.1"));

    remote.submit(&config, request("B", &["a@far.example"]), Instant::now());
    let c = connects(&mut remote);
    let login = Failure {
        permanent: true,
        code: 535,
        enhanced: "5.7.8".into(),
        text: "bad credentials".into(),
        stage: "AUTH",
    };
    let outcome = client::Outcome {
        rcpts: vec![Err(login.clone())],
        session: Some(login),
    };
    remote.attempt_done(&config, c[0].0, Ok(outcome));
    match &remote.take_delivered()[0].outcome {
        Outcome::Deferred(why) => assert!(why.starts_with("4.7.8 "), "{why}"),
        other => panic!("a refused login defers: {other:?}"),
    }
}
