//! The two ends of a link: [`BmcLink`] on the BMC, [`RmcLink`] in the daemon. Each turns
//! received frames into events and outgoing messages into sealed frames.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::message::{RequestEnvelope, ResponseEnvelope};
use crate::{
    decode_frame, encode_frame, Direction, Drop, DropCounters, FrameBuf, FrameKind, Header,
    MAX_DECODED, MAX_FRAME,
};

/// The long-term link key of one enrolled BMC.
pub type LinkKey = [u8; 32];
const TAG_LEN: usize = 16;

/// What the BMC says in answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    /// The BMC's Ed25519 public identity.
    pub identity: [u8; 32],
    pub enrolled: bool,
    /// The BMC accepts an enrollment offer now (never enrolled, or re-opened on the BMC).
    pub enrollment_open: bool,
    pub bmc_nonce: [u8; 16],
    /// HMAC-SHA256 under the link key over both nonces (zero when not enrolled).
    pub proof: [u8; 32],
    pub firmware_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EnrollAccept {
    bmc_public: [u8; 32],
    signature: heapless::Vec<u8, 64>,
}

fn enrollment_key(
    shared: &[u8; 32],
    identity: &[u8; 32],
    rmc_public: &[u8; 32],
    bmc_public: &[u8; 32],
) -> LinkKey {
    let hk = Hkdf::<Sha256>::new(Some(identity), shared);
    let mut info = [0u8; 64 + 16];
    info[..16].copy_from_slice(b"racklet-enroll-1");
    info[16..48].copy_from_slice(rmc_public);
    info[48..80].copy_from_slice(bmc_public);
    let mut key = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(&info, &mut key);
    key
}

fn enrollment_transcript(bmc: u64, rmc_public: &[u8; 32], bmc_public: &[u8; 32]) -> [u8; 80] {
    let mut t = [0u8; 80];
    t[..8].copy_from_slice(b"rkl-enrl");
    t[8..16].copy_from_slice(&bmc.to_le_bytes());
    t[16..48].copy_from_slice(rmc_public);
    t[48..80].copy_from_slice(bmc_public);
    t
}

fn session_key(link: &LinkKey, rmc_nonce: &[u8; 16], bmc_nonce: &[u8; 16]) -> [u8; 32] {
    let mut salt = [0u8; 32];
    salt[..16].copy_from_slice(rmc_nonce);
    salt[16..].copy_from_slice(bmc_nonce);
    let hk = Hkdf::<Sha256>::new(Some(&salt), link);
    let mut key = [0u8; 32];
    let _ = hk.expand(b"racklet-session-1", &mut key);
    key
}

fn proof(link: &LinkKey, bmc: u64, rmc_nonce: &[u8; 16], bmc_nonce: &[u8; 16]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(link) else {
        return [0u8; 32];
    };
    mac.update(b"racklet-hello-ack-1");
    mac.update(&bmc.to_le_bytes());
    mac.update(rmc_nonce);
    mac.update(bmc_nonce);
    mac.finalize().into_bytes().into()
}

/// Checks a hello-ack proof in constant time.
fn verify_proof(
    link: &LinkKey,
    bmc: u64,
    rmc_nonce: &[u8; 16],
    bmc_nonce: &[u8; 16],
    claimed: &[u8; 32],
) -> bool {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(link) else {
        return false;
    };
    mac.update(b"racklet-hello-ack-1");
    mac.update(&bmc.to_le_bytes());
    mac.update(rmc_nonce);
    mac.update(bmc_nonce);
    mac.verify_slice(claimed).is_ok()
}

/// Keys and counters of one session.
#[derive(Clone)]
struct Session {
    cipher: ChaCha20Poly1305,
    tx: u64,
    rx_highest: u64,
}

impl Session {
    fn new(key: &[u8; 32]) -> Self {
        Session {
            cipher: ChaCha20Poly1305::new(key.into()),
            tx: 0,
            rx_highest: 0,
        }
    }

    fn nonce(direction: Direction, counter: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[0] = direction as u8;
        n[4..].copy_from_slice(&counter.to_le_bytes());
        n.into()
    }

    fn seal<T: Serialize>(&mut self, bmc: u64, direction: Direction, msg: &T) -> Option<FrameBuf> {
        self.tx = self.tx.checked_add(1)?;
        let header = Header {
            kind: FrameKind::Sealed,
            direction,
            bmc,
            counter: self.tx,
        };
        let mut buf = [0u8; MAX_DECODED];
        let room = MAX_DECODED - crate::HEADER_LEN - TAG_LEN;
        let used = postcard::to_slice(msg, &mut buf[..room]).ok()?.len();
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                &Self::nonce(direction, self.tx),
                &header.encode(),
                &mut buf[..used],
            )
            .ok()?;
        buf[used..used + TAG_LEN].copy_from_slice(&tag);
        encode_frame(&header, &buf[..used + TAG_LEN])
    }

    fn open<T: DeserializeOwned>(&mut self, header: &Header, payload: &[u8]) -> Result<T, Drop> {
        if header.counter <= self.rx_highest {
            return Err(Drop::Replayed);
        }
        if payload.len() < TAG_LEN {
            return Err(Drop::Truncated);
        }
        let (body, tag) = payload.split_at(payload.len() - TAG_LEN);
        let mut buf = [0u8; MAX_DECODED];
        let buf = buf.get_mut(..body.len()).ok_or(Drop::Oversized)?;
        buf.copy_from_slice(body);
        self.cipher
            .decrypt_in_place_detached(
                &Self::nonce(header.direction, header.counter),
                &header.encode(),
                buf,
                tag.into(),
            )
            .map_err(|_| Drop::Tampered)?;
        let msg = postcard::from_bytes(buf).map_err(|_| Drop::Malformed)?;
        self.rx_highest = header.counter;
        Ok(msg)
    }
}

/// What the BMC end made of a received frame.
#[derive(Debug)]
pub enum BmcEvent {
    /// Send this frame back (hello or enrollment answer).
    Reply(FrameBuf),
    /// A request from the daemon, authenticated and fresh.
    Request(RequestEnvelope),
    /// Enrollment completed: persist this key, it is the BMC's link key from now on.
    Enrolled(LinkKey, FrameBuf),
    Dropped(Drop),
}

/// The BMC's end of the link.
pub struct BmcLink {
    serial: u64,
    identity: SigningKey,
    key: Option<LinkKey>,
    enrollment_open: bool,
    firmware_version: u32,
    /// A session offered in a hello ack; it becomes current with its first valid frame, so
    /// a replayed hello cannot tear down the live session.
    pending: Option<Session>,
    current: Option<Session>,
    pub drops: DropCounters,
}

impl BmcLink {
    /// `key` is the persisted link key, if this BMC is enrolled.
    pub fn new(
        serial: u64,
        identity: SigningKey,
        key: Option<LinkKey>,
        firmware_version: u32,
    ) -> Self {
        BmcLink {
            serial,
            enrollment_open: key.is_none(),
            identity,
            key,
            firmware_version,
            pending: None,
            current: None,
            drops: DropCounters::default(),
        }
    }

    pub fn enrolled(&self) -> bool {
        self.key.is_some()
    }

    pub fn identity(&self) -> VerifyingKey {
        self.identity.verifying_key()
    }

    /// Undoes an enrollment that could not be persisted: the BMC stays (or becomes again)
    /// unenrolled, with `previous` as its key.
    pub fn revert_enrollment(&mut self, previous: Option<LinkKey>) {
        self.key = previous;
        self.enrollment_open = previous.is_none();
        self.current = None;
        self.pending = None;
    }

    /// Lets an enrolled BMC enroll again (its owner's deliberate act on the BMC itself).
    pub fn reopen_enrollment(&mut self) {
        self.enrollment_open = true;
    }

    pub fn has_session(&self) -> bool {
        self.current.is_some()
    }

    fn drop(&mut self, d: Drop) -> BmcEvent {
        self.drops.count(d);
        BmcEvent::Dropped(d)
    }

    /// Handles one frame from the wire (without its delimiter).
    pub fn receive<R: RngCore + CryptoRng>(&mut self, frame: &[u8], rng: &mut R) -> BmcEvent {
        let mut buf = [0u8; MAX_FRAME];
        let (header, payload) = match decode_frame(frame, &mut buf) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if header.bmc != self.serial || header.direction != Direction::ToBmc {
            return self.drop(Drop::NotForUs);
        }
        match header.kind {
            FrameKind::Hello => {
                let Ok(rmc_nonce) = <[u8; 16]>::try_from(payload) else {
                    return self.drop(Drop::Malformed);
                };
                let mut bmc_nonce = [0u8; 16];
                rng.fill_bytes(&mut bmc_nonce);
                let (enrolled, p) = match &self.key {
                    Some(k) => {
                        self.pending = Some(Session::new(&session_key(k, &rmc_nonce, &bmc_nonce)));
                        (true, proof(k, self.serial, &rmc_nonce, &bmc_nonce))
                    }
                    None => (false, [0u8; 32]),
                };
                let ack = HelloAck {
                    identity: self.identity.verifying_key().to_bytes(),
                    enrolled,
                    enrollment_open: self.enrollment_open,
                    bmc_nonce,
                    proof: p,
                    firmware_version: self.firmware_version,
                };
                self.plain(FrameKind::HelloAck, &ack)
            }
            FrameKind::EnrollOffer => {
                if !self.enrollment_open {
                    return self.drop(Drop::Unexpected);
                }
                let Ok(rmc_public) = <[u8; 32]>::try_from(payload) else {
                    return self.drop(Drop::Malformed);
                };
                let secret = StaticSecret::random_from_rng(&mut *rng);
                let bmc_public = PublicKey::from(&secret).to_bytes();
                let shared = secret.diffie_hellman(&PublicKey::from(rmc_public));
                let identity = self.identity.verifying_key().to_bytes();
                let key = enrollment_key(shared.as_bytes(), &identity, &rmc_public, &bmc_public);
                let signature = self.identity.sign(&enrollment_transcript(
                    self.serial,
                    &rmc_public,
                    &bmc_public,
                ));
                let accept = EnrollAccept {
                    bmc_public,
                    signature: heapless::Vec::from_slice(&signature.to_bytes()).unwrap_or_default(),
                };
                match self.plain(FrameKind::EnrollAccept, &accept) {
                    BmcEvent::Reply(frame) => {
                        self.key = Some(key);
                        self.enrollment_open = false;
                        self.current = None;
                        self.pending = None;
                        BmcEvent::Enrolled(key, frame)
                    }
                    other => other,
                }
            }
            FrameKind::Sealed => {
                // A frame under the pending session promotes it; otherwise the current one.
                let mut pending_error = None;
                if let Some(mut pending) = self.pending.clone() {
                    match pending.open::<RequestEnvelope>(&header, payload) {
                        Ok(req) => {
                            self.current = Some(pending);
                            self.pending = None;
                            return BmcEvent::Request(req);
                        }
                        Err(d) => pending_error = Some(d),
                    }
                }
                let result = match self.current.as_mut() {
                    Some(session) => session.open::<RequestEnvelope>(&header, payload),
                    None => Err(pending_error.unwrap_or(Drop::Unexpected)),
                };
                match result {
                    Ok(req) => BmcEvent::Request(req),
                    Err(d) => self.drop(d),
                }
            }
            FrameKind::HelloAck | FrameKind::EnrollAccept => self.drop(Drop::Unexpected),
        }
    }

    fn plain<T: Serialize>(&mut self, kind: FrameKind, msg: &T) -> BmcEvent {
        let mut buf = [0u8; MAX_DECODED];
        let header = Header {
            kind,
            direction: Direction::ToRmc,
            bmc: self.serial,
            counter: 0,
        };
        match postcard::to_slice(msg, &mut buf)
            .ok()
            .and_then(|p| encode_frame(&header, p))
        {
            Some(frame) => BmcEvent::Reply(frame),
            None => self.drop(Drop::Oversized),
        }
    }

    /// Seals a response for the daemon. `None` without a session.
    pub fn respond(&mut self, response: &ResponseEnvelope) -> Option<FrameBuf> {
        let serial = self.serial;
        self.current
            .as_mut()?
            .seal(serial, Direction::ToRmc, response)
    }
}

/// What the daemon end made of a received frame.
#[derive(Debug)]
pub enum RmcEvent {
    /// The BMC answered a hello. `session` is true once an enrolled BMC proved the key.
    Hello {
        ack: HelloAck,
        session: bool,
    },
    /// The BMC accepted enrollment with the identity the operator approved: persist `key`.
    Enrolled {
        key: LinkKey,
    },
    Response(ResponseEnvelope),
    Dropped(Drop),
}

/// The rack management daemon's end of the link to one BMC.
pub struct RmcLink {
    serial: u64,
    key: Option<LinkKey>,
    rmc_nonce: Option<[u8; 16]>,
    /// (approved identity, our X25519 secret) while an enrollment is under way.
    enrolling: Option<([u8; 32], StaticSecret)>,
    session: Option<Session>,
    pub drops: DropCounters,
}

impl RmcLink {
    /// `key`: the persisted link key if this BMC was enrolled before.
    pub fn new(serial: u64, key: Option<LinkKey>) -> Self {
        RmcLink {
            serial,
            key,
            rmc_nonce: None,
            enrolling: None,
            session: None,
            drops: DropCounters::default(),
        }
    }

    pub fn serial(&self) -> u64 {
        self.serial
    }

    pub fn has_session(&self) -> bool {
        self.session.is_some()
    }

    fn header(&self, kind: FrameKind) -> Header {
        Header {
            kind,
            direction: Direction::ToBmc,
            bmc: self.serial,
            counter: 0,
        }
    }

    /// Starts a session (or learns the BMC's identity when it is not enrolled).
    pub fn hello<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Option<FrameBuf> {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        self.rmc_nonce = Some(nonce);
        self.session = None;
        encode_frame(&self.header(FrameKind::Hello), &nonce)
    }

    /// Offers enrollment to the BMC whose identity the operator approved.
    pub fn enroll<R: RngCore + CryptoRng>(
        &mut self,
        approved_identity: [u8; 32],
        rng: &mut R,
    ) -> Option<FrameBuf> {
        let secret = StaticSecret::random_from_rng(&mut *rng);
        let public = PublicKey::from(&secret).to_bytes();
        self.enrolling = Some((approved_identity, secret));
        encode_frame(&self.header(FrameKind::EnrollOffer), &public)
    }

    fn drop(&mut self, d: Drop) -> RmcEvent {
        self.drops.count(d);
        RmcEvent::Dropped(d)
    }

    /// Handles one frame from the wire (without its delimiter).
    pub fn receive(&mut self, frame: &[u8]) -> RmcEvent {
        let mut buf = [0u8; MAX_FRAME];
        let (header, payload) = match decode_frame(frame, &mut buf) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if header.bmc != self.serial || header.direction != Direction::ToRmc {
            return self.drop(Drop::NotForUs);
        }
        match header.kind {
            FrameKind::HelloAck => {
                let Ok(ack) = postcard::from_bytes::<HelloAck>(payload) else {
                    return self.drop(Drop::Malformed);
                };
                // Each hello is answered once: a replayed ack finds no nonce, so a
                // session (and its nonces) is never rebuilt under the same key.
                let Some(rmc_nonce) = self.rmc_nonce.take() else {
                    return self.drop(Drop::Unexpected);
                };
                let mut session = false;
                if let Some(k) = &self.key {
                    if !ack.enrolled {
                        // A BMC we hold a key for claims to have none: a wiped BMC, or
                        // someone impersonating it. Either way, nothing is trusted.
                        return RmcEvent::Hello { ack, session };
                    }
                    if verify_proof(k, self.serial, &rmc_nonce, &ack.bmc_nonce, &ack.proof) {
                        self.session =
                            Some(Session::new(&session_key(k, &rmc_nonce, &ack.bmc_nonce)));
                        session = true;
                    } else {
                        return self.drop(Drop::Tampered);
                    }
                }
                RmcEvent::Hello { ack, session }
            }
            FrameKind::EnrollAccept => {
                let Some((identity, secret)) = self.enrolling.take() else {
                    return self.drop(Drop::Unexpected);
                };
                let Ok(accept) = postcard::from_bytes::<EnrollAccept>(payload) else {
                    return self.drop(Drop::Malformed);
                };
                let rmc_public = PublicKey::from(&secret).to_bytes();
                let verified = VerifyingKey::from_bytes(&identity)
                    .ok()
                    .zip(Signature::from_slice(&accept.signature).ok())
                    .is_some_and(|(vk, sig)| {
                        vk.verify(
                            &enrollment_transcript(self.serial, &rmc_public, &accept.bmc_public),
                            &sig,
                        )
                        .is_ok()
                    });
                if !verified {
                    return self.drop(Drop::Tampered);
                }
                let shared = secret.diffie_hellman(&PublicKey::from(accept.bmc_public));
                let key = enrollment_key(
                    shared.as_bytes(),
                    &identity,
                    &rmc_public,
                    &accept.bmc_public,
                );
                self.key = Some(key);
                RmcEvent::Enrolled { key }
            }
            FrameKind::Sealed => {
                let Some(session) = self.session.as_mut() else {
                    return self.drop(Drop::Unexpected);
                };
                match session.open::<ResponseEnvelope>(&header, payload) {
                    Ok(r) => RmcEvent::Response(r),
                    Err(d) => self.drop(d),
                }
            }
            FrameKind::Hello | FrameKind::EnrollOffer => self.drop(Drop::Unexpected),
        }
    }

    /// Seals a request. `None` without a session.
    pub fn request(&mut self, request: &RequestEnvelope) -> Option<FrameBuf> {
        let serial = self.serial;
        self.session
            .as_mut()?
            .seal(serial, Direction::ToBmc, request)
    }
}
