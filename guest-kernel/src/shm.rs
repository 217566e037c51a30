//! The shared-memory demo between VMs (docs/devices.md, "Shared memory
//! and doorbell"): a region the hypervisor maps into every peer (an
//! `el2-hyp,shm` DT node) used as a grid of mailboxes, and a doorbell
//! interrupt that says "look at your mailboxes".
//!
//! Pure: the mailbox layout and the message format, and what a peer says
//! back; the glue (`arch/aarch64/shm.rs`) owns the memory accesses, the
//! hypercall and the interrupt.
//!
//! Layout: the mailbox from peer `f` to peer `t` is [`SLOT`] bytes at
//! `(t * peers + f) * SLOT`, so two senders never share one (a receiver
//! scans its row). A mailbox's first word is its state ([`EMPTY`],
//! [`WRITING`], [`FULL`]), changed atomically: a sender claims an empty
//! one (EMPTY → WRITING), writes the body, and publishes it (→ FULL,
//! release); the receiver reads a FULL one (acquire) and empties it. The
//! body ([`BODY`] bytes after the state) is `from`, `kind`, `len` (u32,
//! little-endian) and `len` bytes of UTF-8 text.
//!
//! The demo: peer 0 says [`Kind::Hello`] to peer 1 at boot; a peer
//! answers a hello with a [`Kind::Reply`], and peer 0 answers a reply
//! with a [`Kind::Ack`] — so each direction has a message that arrives
//! after its receiver listens, by doorbell interrupt.

use alloc::format;
use alloc::string::String;

/// Bytes per mailbox.
pub const SLOT: usize = 256;
/// Bytes of a mailbox after its state word.
pub const BODY: usize = SLOT - 4;
/// Longest text.
pub const MAX_TEXT: usize = BODY - 12;

/// Mailbox states.
pub const EMPTY: u32 = 0;
pub const WRITING: u32 = 1;
pub const FULL: u32 = 2;

/// The offset of the mailbox from peer `from` to peer `to`.
pub fn mailbox(to: usize, from: usize, peers: usize) -> usize {
    (to * peers + from) * SLOT
}

/// Whether a region of `size` bytes holds the mailboxes of `peers` peers.
pub fn fits(size: u64, peers: usize) -> bool {
    (peers * peers * SLOT) as u64 <= size
}

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hello = 1,
    Reply = 2,
    Ack = 3,
}

/// A message as read from a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: usize,
    pub kind: Kind,
    pub text: String,
}

/// Why a full mailbox held no message (another VM wrote it: anything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// `from` is not the peer whose mailbox it is.
    From(u32),
    Kind(u32),
    Len(u32),
    NotUtf8,
}

/// The body of `m`.
pub fn encode(m: &Message) -> [u8; BODY] {
    let mut b = [0u8; BODY];
    let text = &m.text.as_bytes()[..m.text.len().min(MAX_TEXT)];
    b[0..4].copy_from_slice(&(m.from as u32).to_le_bytes());
    b[4..8].copy_from_slice(&(m.kind as u32).to_le_bytes());
    b[8..12].copy_from_slice(&(text.len() as u32).to_le_bytes());
    b[12..12 + text.len()].copy_from_slice(text);
    b
}

/// The message in the body of the mailbox from peer `from`, checked as
/// input from another VM.
pub fn decode(b: &[u8; BODY], from: usize) -> Result<Message, Bad> {
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if word(0) as usize != from {
        return Err(Bad::From(word(0)));
    }
    let kind = match word(4) {
        1 => Kind::Hello,
        2 => Kind::Reply,
        3 => Kind::Ack,
        k => return Err(Bad::Kind(k)),
    };
    let len = word(8);
    if len as usize > MAX_TEXT {
        return Err(Bad::Len(len));
    }
    let text = core::str::from_utf8(&b[12..12 + len as usize]).map_err(|_| Bad::NotUtf8)?;
    Ok(Message { from, kind, text: String::from(text) })
}

/// Peer 0's greeting, from the VM named `me`.
pub fn hello(me: usize, name: &str) -> Message {
    Message { from: me, kind: Kind::Hello, text: format!("hello from {name}") }
}

/// What peer `me` (VM `name`) says back to `m`, if anything.
pub fn answer(m: &Message, me: usize, name: &str, peer_name: &str) -> Option<Message> {
    let (kind, text) = match m.kind {
        Kind::Hello => (Kind::Reply, format!("hello back from {name}")),
        Kind::Reply => (Kind::Ack, format!("thanks, {peer_name}")),
        Kind::Ack => return None,
    };
    Some(Message { from: me, kind, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_are_one_per_sender_and_receiver() {
        assert_eq!(mailbox(0, 1, 2), SLOT);
        assert_eq!(mailbox(1, 0, 2), 2 * SLOT);
        assert_eq!(mailbox(2, 2, 3), 8 * SLOT);
        assert!(fits(4096, 4));
        assert!(!fits(4096, 5));
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let m = hello(0, "a");
        assert_eq!(m.text, "hello from a");
        let b = encode(&m);
        assert_eq!(decode(&b, 0), Ok(m.clone()));
        assert_eq!(decode(&b, 1), Err(Bad::From(0)), "another peer's name");
        let mut bad = b;
        bad[4] = 9;
        assert_eq!(decode(&bad, 0), Err(Bad::Kind(9)));
        let mut bad = b;
        bad[8..12].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(decode(&bad, 0), Err(Bad::Len(1000)));
        let mut bad = b;
        bad[12] = 0xff;
        assert_eq!(decode(&bad, 0), Err(Bad::NotUtf8));
        let long = Message { from: 1, kind: Kind::Ack, text: "x".repeat(1000) };
        assert_eq!(decode(&encode(&long), 1).unwrap().text.len(), MAX_TEXT);
    }

    #[test]
    fn the_demo_is_hello_reply_ack() {
        let h = hello(0, "a");
        let r = answer(&h, 1, "b", "a").unwrap();
        assert_eq!((r.from, r.kind, r.text.as_str()), (1, Kind::Reply, "hello back from b"));
        let a = answer(&r, 0, "a", "b").unwrap();
        assert_eq!((a.from, a.kind, a.text.as_str()), (0, Kind::Ack, "thanks, b"));
        assert_eq!(answer(&a, 1, "b", "a"), None);
    }
}
