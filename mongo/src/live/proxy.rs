//! A fault-injecting TCP proxy between the live clients and the server, on 127.0.0.1.
//!
//! Why a proxy: the network faults the protocols must survive (a request that never arrives, a
//! write whose reply is lost, a slow link, a dropped connection) cannot be asked of a server;
//! they happen between it and the client. The proxy reads the MongoDB wire protocol's framing
//! (every message starts with its length) so it can act on one whole request or reply:
//!
//! - **lost**: the request is dropped and the connection closed; the server never sees it;
//! - **ambiguous**: the request is forwarded, its reply dropped and the connection closed: the
//!   write happened, the client cannot know;
//! - **delay**: the request waits up to [`DELAY_MAX`] before it is forwarded, or (as often)
//!   its reply does: a write that took effect at once is answered late. One slow reply in ten
//!   waits up to [`STALL_MAX`], a stalled link: the call outlasts every margin a holder keeps.
//!   Besides, a write's acknowledgement is often late (100 ms to [`DELAY_MAX`]), as a majority
//!   write's is while a secondary lags: a claim answered late has lasted longer than its
//!   holder may count from its start;
//! - **sever**: the connection is closed before the request is forwarded.
//!
//! Handshakes, authentication and monitoring (`hello`, `isMaster`, `saslStart`,
//! `saslContinue`) pass untouched: the faults are the operations', and a driver that lost
//! sight of its server would only stall. Each decision is
//! drawn from one seeded stream in the order requests arrive.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Longest delay the proxy adds to one request.
pub const DELAY_MAX: Duration = Duration::from_millis(400);
/// Shortest delay of a late write acknowledgement, in milliseconds: a lagging secondary is
/// behind by more than a round trip.
const ACK_DELAY_MIN: u64 = 100;
/// Longest a stalled reply waits.
pub const STALL_MAX: Duration = Duration::from_secs(2);
/// Largest message the proxy forwards (MongoDB's own limit is 48 MB).
const MESSAGE_MAX: usize = 48 * 1024 * 1024;
/// The wire protocol's OP_MSG opcode (the only one modern drivers send).
const OP_MSG: i32 = 2013;

/// How often each network fault strikes, in parts per million of requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyRates {
    /// Requests dropped before the server.
    pub lost: u32,
    /// Requests forwarded whose replies are dropped.
    pub ambiguous: u32,
    /// Requests held back a while.
    pub delay: u32,
    /// Write acknowledgements (of the writes no other fault struck) held back a while.
    pub slow_ack: u32,
    /// Connections closed before a request.
    pub sever: u32,
}

impl ProxyRates {
    /// Whether no fault can strike.
    pub fn is_none(&self) -> bool {
        *self == ProxyRates::default()
    }
}

/// What the proxy did, by fault name ("lost", "ambiguous", "delay", "slow ack", "sever",
/// "forwarded").
pub type ProxyCounts = BTreeMap<&'static str, u64>;

struct Shared {
    rates: ProxyRates,
    rng: Mutex<StdRng>,
    counts: Mutex<ProxyCounts>,
}

impl Shared {
    fn count(&self, what: &'static str) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *c.entry(what).or_default() += 1;
    }

    /// The fate of one request (`write`: an insert, update, delete or findAndModify).
    fn draw(&self, write: bool) -> Fate {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let mut roll = rng.random_range(0..1_000_000u32);
        let r = self.rates;
        for (rate, fate) in [
            (r.lost, Fate::Lost),
            (r.ambiguous, Fate::Ambiguous),
            (r.sever, Fate::Sever),
        ] {
            if roll < rate {
                return fate;
            }
            roll -= rate.min(roll);
        }
        if roll < r.delay {
            // Half hold the request back (it takes effect late), half its reply (the caller
            // learns late of a write that took effect at once: its call lasts longer).
            let held = rng.random_bool(0.5);
            let max = if !held && rng.random_bool(0.1) {
                STALL_MAX
            } else {
                DELAY_MAX
            };
            let d = Duration::from_millis(rng.random_range(1..=max.as_millis() as u64));
            return if held {
                Fate::Delay(d)
            } else {
                Fate::SlowReply(d)
            };
        }
        if write && rng.random_range(0..1_000_000u32) < r.slow_ack {
            let d = rng.random_range(ACK_DELAY_MIN..=DELAY_MAX.as_millis() as u64);
            return Fate::SlowAck(Duration::from_millis(d));
        }
        Fate::Forward
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Forward,
    Lost,
    Ambiguous,
    Delay(Duration),
    SlowReply(Duration),
    SlowAck(Duration),
    Sever,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`,
    /// injecting faults at `rates`, drawn from `seed`.
    pub async fn start(
        upstream: SocketAddr,
        rates: ProxyRates,
        seed: u64,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            rates,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: Mutex::new(ProxyCounts::new()),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, upstream, shared.clone(), stop.clone()));
        Ok(FaultProxy { addr, shared, stop })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the proxy has done so far.
    pub fn counts(&self) -> ProxyCounts {
        self.shared
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(e) => {
                    tracing::debug!(error = %e, "fault proxy: accept failed");
                    continue;
                }
            },
        };
        let (shared, stop) = (shared.clone(), stop.child_token());
        tokio::spawn(async move {
            // A server that is down (restarting) refuses: the client sees its connection close.
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = relay(client, server, shared) => {}
            }
        });
    }
}

/// Relays one connection until either side closes or a fault severs it.
async fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (client_rx, client_tx) = client.into_split();
    let (server_rx, server_tx) = server.into_split();
    let drop_reply = Arc::new(Notify::new());
    let (slow_tx, slow_rx) = tokio::sync::mpsc::unbounded_channel();
    let up = requests(
        client_rx,
        server_tx,
        shared.clone(),
        drop_reply.clone(),
        slow_tx,
    );
    let down = replies(server_rx, client_tx, drop_reply, slow_rx);
    // Whichever direction ends first ends the connection: both halves drop here.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Client to server: each request meets its fate.
async fn requests(
    mut rx: OwnedReadHalf,
    mut tx: OwnedWriteHalf,
    shared: Arc<Shared>,
    drop_reply: Arc<Notify>,
    slow_reply: tokio::sync::mpsc::UnboundedSender<Duration>,
) {
    while let Some(message) = read_message(&mut rx).await {
        let fate = if exempt(&message) {
            Fate::Forward
        } else {
            shared.draw(is_write(&message))
        };
        match fate {
            Fate::Forward => shared.count("forwarded"),
            Fate::Lost => {
                shared.count("lost");
                return;
            }
            Fate::Sever => {
                shared.count("sever");
                return;
            }
            Fate::Ambiguous => {
                shared.count("ambiguous");
                drop_reply.notify_one();
            }
            Fate::Delay(d) => {
                shared.count("delay");
                tokio::time::sleep(d).await;
            }
            Fate::SlowReply(d) | Fate::SlowAck(d) => {
                shared.count(if matches!(fate, Fate::SlowAck(_)) {
                    "slow ack"
                } else {
                    "delay"
                });
                // A connection carries one request at a time: the next reply is this one's.
                let _ = slow_reply.send(d);
            }
        }
        if tx.write_all(&message).await.is_err() {
            return;
        }
    }
}

/// Server to client: replies pass, some late, unless one is to be dropped (then the
/// connection closes).
async fn replies(
    mut rx: OwnedReadHalf,
    mut tx: OwnedWriteHalf,
    drop_reply: Arc<Notify>,
    mut slow_reply: tokio::sync::mpsc::UnboundedReceiver<Duration>,
) {
    let mut dropping = false;
    loop {
        let message = tokio::select! {
            biased;
            _ = drop_reply.notified(), if !dropping => {
                dropping = true;
                continue;
            }
            m = read_message(&mut rx) => m,
        };
        let Some(message) = message else { return };
        if let Ok(d) = slow_reply.try_recv() {
            tokio::time::sleep(d).await;
        }
        if dropping || tx.write_all(&message).await.is_err() {
            return;
        }
    }
}

/// One whole wire message (its length prefix included), or `None` at the end of the stream or
/// on a malformed length.
async fn read_message(rx: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    rx.read_exact(&mut len).await.ok()?;
    let n = usize::try_from(i32::from_le_bytes(len)).ok()?;
    if !(16..=MESSAGE_MAX).contains(&n) {
        return None;
    }
    let mut message = vec![0u8; n];
    message[..4].copy_from_slice(&len);
    rx.read_exact(&mut message[4..]).await.ok()?;
    Some(message)
}

/// Handshakes, authentication and monitoring pass untouched: any message that is not an
/// OP_MSG, and an OP_MSG whose command is one of theirs.
fn exempt(message: &[u8]) -> bool {
    let opcode = message
        .get(12..16)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_le_bytes);
    if opcode != Some(OP_MSG) {
        return true;
    }
    matches!(
        command_name(message),
        Some("hello" | "isMaster" | "ismaster" | "saslStart" | "saslContinue")
    )
}

/// Whether a request writes (its acknowledgement is the one a majority write concern holds).
fn is_write(message: &[u8]) -> bool {
    matches!(
        command_name(message),
        Some("insert" | "update" | "delete" | "findAndModify")
    )
}

/// The command of an OP_MSG: the first key of its body (section kind 0 right after the flags).
fn command_name(message: &[u8]) -> Option<&str> {
    // Header (16 bytes), flags (4), section kind (1), document length (4), element type (1).
    if message.get(20) != Some(&0) {
        return None;
    }
    let name = message.get(26..)?;
    let end = name.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&name[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_msg(command: &str) -> Vec<u8> {
        let mut body = vec![0x10];
        body.extend_from_slice(command.as_bytes());
        body.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
        let doc_len = (4 + body.len()) as i32;
        let mut m = vec![0u8; 16];
        m[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0]);
        m.extend_from_slice(&doc_len.to_le_bytes());
        m.extend_from_slice(&body);
        let len = m.len() as i32;
        m[..4].copy_from_slice(&len.to_le_bytes());
        m
    }

    #[test]
    fn reads_the_command_and_spares_the_handshake() {
        assert_eq!(command_name(&op_msg("update")), Some("update"));
        assert!(is_write(&op_msg("findAndModify")) && is_write(&op_msg("update")));
        assert!(!is_write(&op_msg("find")));
        assert!(exempt(&op_msg("hello")));
        assert!(exempt(&op_msg("isMaster")));
        assert!(exempt(&op_msg("saslStart")));
        assert!(!exempt(&op_msg("findAndModify")));
        // A legacy OP_QUERY handshake (opcode 2004) passes too.
        let mut legacy = op_msg("isMaster");
        legacy[12..16].copy_from_slice(&2004i32.to_le_bytes());
        assert!(exempt(&legacy));
    }

    #[test]
    fn fates_follow_the_rates_and_the_seed() {
        let shared = |seed| Shared {
            rates: ProxyRates {
                lost: 100_000,
                ambiguous: 100_000,
                delay: 100_000,
                slow_ack: 500_000,
                sever: 100_000,
            },
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: Mutex::new(ProxyCounts::new()),
        };
        let (a, b) = (shared(7), shared(7));
        let fates: Vec<Fate> = (0..10_000).map(|_| a.draw(false)).collect();
        assert_eq!(
            fates,
            (0..10_000).map(|_| b.draw(false)).collect::<Vec<_>>()
        );
        let forwarded = fates.iter().filter(|f| **f == Fate::Forward).count();
        // 60% forwarded, within a generous margin.
        assert!((5_500..6_500).contains(&forwarded), "{forwarded}");
        let lost = fates.iter().filter(|f| **f == Fate::Lost).count();
        assert!((800..1_200).contains(&lost), "{lost}");
        // Delays hold the request back or the reply, about half each.
        let held = fates.iter().filter(|f| matches!(f, Fate::Delay(_))).count();
        let slow = fates
            .iter()
            .filter(|f| matches!(f, Fate::SlowReply(_)))
            .count();
        assert!(
            (350..650).contains(&held) && (350..650).contains(&slow),
            "{held} {slow}"
        );
        // Some slow replies stall past the ordinary delay, none past the stall bound.
        let stalls = fates
            .iter()
            .filter(|f| matches!(f, Fate::SlowReply(d) if *d > DELAY_MAX))
            .count();
        assert!((10..100).contains(&stalls), "{stalls}");
        assert!(fates
            .iter()
            .all(|f| !matches!(f, Fate::SlowReply(d) | Fate::Delay(d) if *d > STALL_MAX)));
        // Only writes are acknowledged late: half of those no other fault struck.
        assert!(!fates.iter().any(|f| matches!(f, Fate::SlowAck(_))));
        let writes: Vec<Fate> = (0..10_000).map(|_| a.draw(true)).collect();
        let acks = writes
            .iter()
            .filter(|f| matches!(f, Fate::SlowAck(d) if (Duration::from_millis(ACK_DELAY_MIN)..=DELAY_MAX).contains(d)))
            .count();
        assert!((2_700..3_300).contains(&acks), "{acks}");
    }
}
