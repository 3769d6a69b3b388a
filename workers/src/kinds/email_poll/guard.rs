//! The guard between an IMAP server and async-imap's parser.
//!
//! A user names the IMAP server a poll talks to, so the server is as
//! untrusted as the user. Every byte it sends passes through [`Guard`]
//! (above TLS: the decrypted bytes) before async-imap sees it, and the guard
//! lexes just enough IMAP to keep one server from hurting the worker that
//! runs every other job too:
//!
//! - imap-proto 0.16 parses parentheses (body structures, their extension
//!   lists, envelopes) by recursion without a limit, so a reply nested deep
//!   enough overflows the thread's stack, which aborts the process. The
//!   guard refuses a reply nested deeper than [`ImapLimits::max_depth`]
//!   before the parser is handed the parenthesis that crosses it.
//! - async-imap reserves what a literal `{N}` announces before the bytes
//!   come: an announcement over [`ImapLimits::max_literal`] is refused as
//!   soon as its digits pass the limit.
//! - async-imap parses an incomplete reply again from its start after every
//!   read. The guard hands it whole lines only (a literal's bytes as they
//!   come, since the parser waits for all of them at once), so a server that
//!   dribbles a line byte by byte costs a parse per line, not per byte; and
//!   a reply's text outside its literals is capped ([`ImapLimits::max_line`]),
//!   as are its literals.
//! - what one command, and one session, may receive is capped in bytes and
//!   replies, and a server that goes quiet in the middle of an answer
//!   ([`ImapLimits::read_timeout`]) or takes too long over one
//!   ([`ImapLimits::command_timeout`]) is given up on.
//!
//! A refusal poisons the connection: every later read fails the same way,
//! and the bytes that broke a limit never reach the parser.
//!
//! What async-imap keeps is bounded by these limits too: its read buffer
//! holds one reply at a time (a line and the literals announced in it),
//! and its channel of unsolicited replies holds at most 100 (more are
//! dropped), which `imap.rs` empties after every command.
//!
//! Where literals and quoted strings are must be judged exactly as the
//! parser judges them, or a server could hide parentheses from the guard
//! (say, in what the guard takes for a literal but the parser reads as the
//! next reply). imap-proto reads a reply that starts with `+`, and one whose
//! second word is a status (`OK`, `NO`, `BAD`, `BYE`, `PREAUTH`), as text
//! up to the line's end: no nesting, no literals, except that a response
//! code may hold a literal (`[BADCHARSET ({3}`), which no server has a
//! reason to send, so a status line that ends in a literal announcement is
//! refused. Any other reply is data: `"` opens a quoted string (`\`
//! escapes), `{N}` CRLF announces N bytes of literal (`{N+}` and `~{N}` are
//! sized the same way), and parentheses nest. Where the parser would read a
//! byte otherwise, it fails the reply, and a failed reply ends the session.

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// How much a server may send, and how slowly. The defaults are far above
/// what a poll asks for (headers of at most [`super::message::MAX_HEADER_BYTES`],
/// parts of at most [`super::message::MAX_PART_BYTES`], batches of 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapLimits {
    /// Parentheses open at once in one reply. Dovecot caps MIME nesting at
    /// 100 levels, which makes body structures 102 deep (measured), so a
    /// MIME bomb in an honest mailbox is parsed and skipped; the parser
    /// spends 6 to 8.5 KiB of stack a level (optimised, as the dev profile
    /// builds it too), so 128 levels stay near half of a tokio worker's
    /// 2 MiB stack.
    pub max_depth: u32,
    /// Bytes one literal may announce.
    pub max_literal: u64,
    /// Bytes of one reply outside its literals (a body structure with
    /// thousands of parts is ~100 KiB).
    pub max_line: usize,
    /// Literals in one reply.
    pub max_literals: u32,
    /// Bytes received in answer to one command: what a poll holds in
    /// memory at once.
    pub max_command_bytes: u64,
    /// Replies received in answer to one command (tagged or not).
    pub max_command_replies: u32,
    /// Bytes received over one connection.
    pub max_session_bytes: u64,
    /// How long the server may leave a read of ours waiting.
    pub read_timeout: Duration,
    /// How long one command may take, from its sending to its last byte.
    pub command_timeout: Duration,
}

impl Default for ImapLimits {
    fn default() -> Self {
        ImapLimits {
            max_depth: 128,
            max_literal: 8 * MIB,
            max_line: (256 * KIB) as usize,
            max_literals: 1_024,
            max_command_bytes: 64 * MIB,
            max_command_replies: 10_000,
            max_session_bytes: 1_024 * MIB,
            read_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(120),
        }
    }
}

/// Why the guard gave up on a server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the IMAP server sent a reply nested deeper than {0} levels")]
    TooDeep(u32),
    #[error("the IMAP server announced a literal of more than {}", HumanSize(*.0))]
    LiteralTooLarge(u64),
    #[error("the IMAP server sent a reply with more than {} outside its literals", HumanSize(*.0 as u64))]
    LineTooLong(usize),
    #[error("the IMAP server sent a reply with more than {0} literals")]
    TooManyLiterals(u32),
    #[error("the IMAP server announced a literal at the end of a status line")]
    LiteralInStatus,
    #[error("the IMAP server sent more than {0} replies to one command")]
    TooManyReplies(u32),
    #[error("the IMAP server sent more than {} in answer to one command", HumanSize(*.0))]
    CommandTooLarge(u64),
    #[error("the IMAP server sent more than {} over one connection", HumanSize(*.0))]
    SessionTooLarge(u64),
    #[error("the IMAP server went silent for {} s while we waited for its answer", .0.as_secs_f64())]
    Stalled(Duration),
    #[error("the IMAP server took more than {} s to answer one command", .0.as_secs_f64())]
    TooSlow(Duration),
}

/// A byte count as people read it: `8 MiB`, `256 KiB`, or bytes.
struct HumanSize(u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            bytes if bytes >= MIB && bytes % MIB == 0 => write!(f, "{} MiB", bytes / MIB),
            bytes if bytes >= KIB && bytes % KIB == 0 => write!(f, "{} KiB", bytes / KIB),
            bytes => write!(f, "{bytes} bytes"),
        }
    }
}

impl Refusal {
    /// A server that was merely slow: the network, or a busy server, may be
    /// better in a minute. Anything else is what the server sent, and it
    /// will send it again.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Refusal::Stalled(_) | Refusal::TooSlow(_))
    }

    fn to_io(&self) -> io::Error {
        let kind = if self.is_timeout() { io::ErrorKind::TimedOut } else { io::ErrorKind::InvalidData };
        io::Error::new(kind, self.clone())
    }
}

/// The statuses that make the rest of a reply text (RFC 3501's
/// resp-cond-state, resp-cond-auth and resp-cond-bye).
const STATUSES: [&[u8]; 5] = [b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH"];
const LONGEST_STATUS: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first word of a reply: `*`, a tag, or `+…`.
    First,
    /// The second word, which says whether the reply is text or data.
    Second {
        word: [u8; LONGEST_STATUS],
        len: usize,
    },
    Data,
    Quoted,
    Escaped,
    /// `{`, then the digits of a literal's size, then perhaps `+`.
    Size {
        size: u64,
        digits: bool,
        plus: bool,
    },
    /// `{N}`: a literal if CRLF follows.
    Closed {
        size: u64,
    },
    ClosedCr {
        size: u64,
    },
    Literal {
        left: u64,
    },
    /// A status or continuation line, to its end.
    Text {
        tail: Tail,
    },
}

/// How a text line ends so far: whether it ends in `{N}` (or `{N+}`),
/// perhaps followed by CR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    Other,
    Open,
    Digits,
    Plus,
    Closed,
    ClosedCr,
}

impl Tail {
    fn after(self, byte: u8) -> Tail {
        match (self, byte) {
            (_, b'{') => Tail::Open,
            (Tail::Open | Tail::Digits, b'0'..=b'9') => Tail::Digits,
            (Tail::Digits, b'+') => Tail::Plus,
            (Tail::Digits | Tail::Plus, b'}') => Tail::Closed,
            (Tail::Closed, b'\r') => Tail::ClosedCr,
            _ => Tail::Other,
        }
    }
}

/// The lexer: what the server sent so far, as far as the limits care.
#[derive(Debug, Clone)]
struct Lexer {
    limits: ImapLimits,
    state: State,
    depth: u32,
    line: usize,
    literals: u32,
    command_bytes: u64,
    command_replies: u32,
    session_bytes: u64,
}

impl Lexer {
    fn new(limits: ImapLimits) -> Lexer {
        Lexer {
            limits,
            state: State::First,
            depth: 0,
            line: 0,
            literals: 0,
            command_bytes: 0,
            command_replies: 0,
            session_bytes: 0,
        }
    }

    /// A command went out: what follows answers it.
    fn command_sent(&mut self) {
        self.command_bytes = 0;
        self.command_replies = 0;
    }

    /// Takes the next bytes from the server. Returns the length of the
    /// prefix of `bytes` the parser may have: up to the end of the last
    /// whole line or of the last literal byte (0 when the bytes only add to
    /// a line not yet whole); and the limit they broke, if they did, after
    /// which nothing more is read.
    fn feed(&mut self, bytes: &[u8]) -> (usize, Option<Refusal>) {
        let len = bytes.len() as u64;
        self.session_bytes = self.session_bytes.saturating_add(len);
        if self.session_bytes > self.limits.max_session_bytes {
            return (0, Some(Refusal::SessionTooLarge(self.limits.max_session_bytes)));
        }
        self.command_bytes = self.command_bytes.saturating_add(len);
        if self.command_bytes > self.limits.max_command_bytes {
            return (0, Some(Refusal::CommandTooLarge(self.limits.max_command_bytes)));
        }
        let mut deliverable = 0;
        let mut at = 0;
        while at < bytes.len() {
            if let State::Literal { left } = self.state {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len() - at);
                at += take;
                let left = left - take as u64;
                self.state = if left == 0 { State::Data } else { State::Literal { left } };
                deliverable = at;
                continue;
            }
            let byte = bytes[at];
            at += 1;
            self.line += 1;
            if self.line > self.limits.max_line {
                return (deliverable, Some(Refusal::LineTooLong(self.limits.max_line)));
            }
            match self.byte(byte) {
                Ok(true) => deliverable = at,
                Ok(false) => {}
                Err(refusal) => return (deliverable, Some(refusal)),
            }
        }
        (deliverable, None)
    }

    /// One byte outside a literal; true when it ends a line.
    fn byte(&mut self, byte: u8) -> Result<bool, Refusal> {
        match self.state {
            State::First => match byte {
                b'+' if self.line == 1 => self.state = State::Text { tail: Tail::Other },
                b' ' => self.state = State::Second { word: [0; LONGEST_STATUS], len: 0 },
                b'\n' => return self.end_of_reply(),
                _ => {}
            },
            State::Second { mut word, len } => match byte {
                b'a'..=b'z' | b'A'..=b'Z' if len < LONGEST_STATUS => {
                    word[len] = byte;
                    self.state = State::Second { word, len: len + 1 };
                }
                b' ' | b'\r' | b'\n' if STATUSES.iter().any(|status| status.eq_ignore_ascii_case(&word[..len])) => {
                    self.state = State::Text { tail: Tail::Other };
                    return self.byte(byte);
                }
                _ => {
                    self.state = State::Data;
                    return self.byte(byte);
                }
            },
            State::Text { tail } => {
                if byte == b'\n' {
                    if matches!(tail, Tail::Closed | Tail::ClosedCr) {
                        return Err(Refusal::LiteralInStatus);
                    }
                    return self.end_of_reply();
                }
                self.state = State::Text { tail: tail.after(byte) };
            }
            State::Data => match byte {
                b'"' => self.state = State::Quoted,
                b'{' => self.state = State::Size { size: 0, digits: false, plus: false },
                b'(' => {
                    self.depth += 1;
                    if self.depth > self.limits.max_depth {
                        return Err(Refusal::TooDeep(self.limits.max_depth));
                    }
                }
                b')' => self.depth = self.depth.saturating_sub(1),
                b'\n' => return self.end_of_reply(),
                _ => {}
            },
            State::Quoted => match byte {
                b'\\' => self.state = State::Escaped,
                b'"' => self.state = State::Data,
                b'\n' => return self.end_of_reply(),
                _ => {}
            },
            State::Escaped => match byte {
                b'\n' => return self.end_of_reply(),
                _ => self.state = State::Quoted,
            },
            State::Size { size, digits, plus } => match byte {
                b'0'..=b'9' if !plus => {
                    let size = size.saturating_mul(10).saturating_add(u64::from(byte - b'0'));
                    if size > self.limits.max_literal {
                        return Err(Refusal::LiteralTooLarge(self.limits.max_literal));
                    }
                    self.state = State::Size { size, digits: true, plus };
                }
                b'+' if digits && !plus => self.state = State::Size { size, digits, plus: true },
                b'}' if digits => self.state = State::Closed { size },
                _ => {
                    self.state = State::Data;
                    return self.byte(byte);
                }
            },
            State::Closed { size } => match byte {
                b'\r' => self.state = State::ClosedCr { size },
                _ => {
                    self.state = State::Data;
                    return self.byte(byte);
                }
            },
            State::ClosedCr { size } => match byte {
                b'\n' => {
                    self.literals += 1;
                    if self.literals > self.limits.max_literals {
                        return Err(Refusal::TooManyLiterals(self.limits.max_literals));
                    }
                    self.state = if size == 0 { State::Data } else { State::Literal { left: size } };
                    return Ok(true);
                }
                _ => {
                    self.state = State::Data;
                    return self.byte(byte);
                }
            },
            // `feed` takes literal bytes in bulk, before they get here.
            State::Literal { .. } => {}
        }
        Ok(false)
    }

    fn end_of_reply(&mut self) -> Result<bool, Refusal> {
        self.state = State::First;
        self.depth = 0;
        self.line = 0;
        self.literals = 0;
        self.command_replies += 1;
        if self.command_replies > self.limits.max_command_replies {
            return Err(Refusal::TooManyReplies(self.limits.max_command_replies));
        }
        Ok(true)
    }
}

/// Bytes read from the server at a time.
const CHUNK: usize = 16 * 1024;

/// A stream to an IMAP server, checked as described in the module
/// documentation. Writes pass through; each one starts a command's clock
/// and budget.
pub struct Guard<S> {
    inner: S,
    lexer: Lexer,
    /// Bytes read but not handed on: `pending[start..start + ready]` may
    /// go, the rest waits for its line's end.
    pending: Vec<u8>,
    start: usize,
    ready: usize,
    chunk: Box<[u8]>,
    eof: bool,
    failed: Option<Refusal>,
    command_started: Instant,
    /// When the server started keeping us waiting, if it is.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Guard<S> {
    pub fn new(inner: S, limits: ImapLimits) -> Guard<S> {
        Guard {
            inner,
            lexer: Lexer::new(limits),
            pending: Vec::new(),
            start: 0,
            ready: 0,
            chunk: vec![0; CHUNK].into_boxed_slice(),
            eof: false,
            failed: None,
            command_started: Instant::now(),
            waiting_since: None,
            timer: None,
        }
    }

    /// The stream below, and whatever the server sent that was not read:
    /// dropped, as it must be after STARTTLS.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn fail(&mut self, refusal: Refusal) -> io::Error {
        let err = refusal.to_io();
        tracing::debug!(reason = %refusal, "IMAP guard gave up on the server");
        self.failed = Some(refusal);
        err
    }

    /// Hands on up to `ready` bytes (or, at the end of the stream, what is
    /// left of a line that never ended: the parser will say so).
    fn deliver(&mut self, buf: &mut ReadBuf<'_>, upto: usize) {
        let n = upto.min(buf.remaining());
        buf.put_slice(&self.pending[self.start..self.start + n]);
        self.start += n;
        self.ready = self.ready.saturating_sub(n);
        if self.start == self.pending.len() {
            self.pending.clear();
            self.start = 0;
        } else if self.start > self.pending.len() / 2 {
            self.pending.drain(..self.start);
            self.start = 0;
        }
    }

    /// Waits for the server within both clocks: its silence, and the
    /// command's deadline.
    fn poll_clock(&mut self, cx: &mut Context<'_>) -> Poll<Refusal> {
        let now = Instant::now();
        let limits = self.lexer.limits;
        let silent_since = *self.waiting_since.get_or_insert(now);
        let silence_ends = later(silent_since, limits.read_timeout);
        let deadline = later(self.command_started, limits.command_timeout);
        let (wake, refusal) = if silence_ends <= deadline {
            (silence_ends, Refusal::Stalled(limits.read_timeout))
        } else {
            (deadline, Refusal::TooSlow(limits.command_timeout))
        };
        if now >= wake {
            return Poll::Ready(refusal);
        }
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(wake)));
        if timer.deadline() != wake {
            timer.as_mut().reset(wake);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(refusal),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `at` plus `by`, or a day after `at` when that is past what an `Instant`
/// can hold (a timeout configured absurdly long).
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by).unwrap_or_else(|| at + Duration::from_secs(86_400))
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            // What came before a refusal was fine, and is handed on first:
            // the command it answered gets its answer.
            if this.ready > 0 {
                this.deliver(buf, this.ready);
                return Poll::Ready(Ok(()));
            }
            if let Some(refusal) = &this.failed {
                return Poll::Ready(Err(refusal.to_io()));
            }
            if this.eof {
                let left = this.pending.len() - this.start;
                this.deliver(buf, left);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = ReadBuf::new(&mut this.chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Pending => {
                    return match this.poll_clock(cx) {
                        Poll::Ready(refusal) => Poll::Ready(Err(this.fail(refusal))),
                        Poll::Pending => Poll::Pending,
                    };
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Ready(Ok(())) => {}
            }
            let read = chunk.filled().len();
            this.waiting_since = None;
            if read == 0 {
                this.eof = true;
                continue;
            }
            let limits = this.lexer.limits;
            if this.command_started.elapsed() >= limits.command_timeout {
                return Poll::Ready(Err(this.fail(Refusal::TooSlow(limits.command_timeout))));
            }
            let held = this.pending.len() - this.start;
            let (deliverable, refusal) = this.lexer.feed(&this.chunk[..read]);
            match refusal {
                None => this.pending.extend_from_slice(&this.chunk[..read]),
                Some(refusal) => {
                    this.pending.extend_from_slice(&this.chunk[..deliverable]);
                    this.fail(refusal);
                }
            }
            if deliverable > 0 {
                this.ready = held + deliverable;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    this.lexer.command_sent();
                    this.command_started = Instant::now();
                    this.waiting_since = None;
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            // A server that stops reading our commands is as stuck as one
            // that stops answering them.
            Poll::Pending => match this.poll_clock(cx) {
                Poll::Ready(refusal) => Poll::Ready(Err(this.fail(refusal))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: fmt::Debug> fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("inner", &self.inner)
            .field("held", &(self.pending.len() - self.start))
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that sends `chunks`, one read each, then closes.
    #[derive(Debug)]
    struct Chunks(VecDeque<Vec<u8>>);

    impl Chunks {
        fn split(bytes: &[u8], at: &[usize]) -> Chunks {
            let mut chunks = VecDeque::new();
            let mut from = 0;
            for &to in at.iter().chain(std::iter::once(&bytes.len())) {
                chunks.push_back(bytes[from..to].to_vec());
                from = to;
            }
            Chunks(chunks)
        }

        fn bytewise(bytes: &[u8]) -> Chunks {
            Chunks(bytes.iter().map(|&b| vec![b]).collect())
        }
    }

    impl AsyncRead for Chunks {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            if let Some(mut chunk) = self.0.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Chunks {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Everything the guard hands on, read by read, until the end or its
    /// refusal.
    async fn reads<S: AsyncRead + AsyncWrite + Unpin>(guard: &mut Guard<S>) -> (Vec<Vec<u8>>, Option<Refusal>) {
        let mut reads = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            match guard.read(&mut buf).await {
                Ok(0) => return (reads, None),
                Ok(n) => reads.push(buf[..n].to_vec()),
                Err(err) => {
                    let refusal = err.get_ref().and_then(|e| e.downcast_ref::<Refusal>()).cloned();
                    assert!(refusal.is_some(), "not a refusal: {err}");
                    return (reads, refusal);
                }
            }
        }
    }

    async fn run(limits: ImapLimits, server: Chunks) -> (Vec<u8>, Option<Refusal>) {
        let (reads, refusal) = reads(&mut Guard::new(server, limits)).await;
        (reads.concat(), refusal)
    }

    /// `bytes` read whole, split in two at every place, and byte by byte:
    /// the same bytes come out, and the same refusal, each way.
    async fn every_split(limits: ImapLimits, bytes: &[u8]) -> (Vec<u8>, Option<Refusal>) {
        let whole = run(limits, Chunks::split(bytes, &[])).await;
        for at in 1..bytes.len() {
            assert_eq!(run(limits, Chunks::split(bytes, &[at])).await, whole, "split at {at}");
        }
        assert_eq!(run(limits, Chunks::bytewise(bytes)).await, whole, "byte by byte");
        whole
    }

    fn limits() -> ImapLimits {
        ImapLimits { max_depth: 4, max_literal: 100, ..ImapLimits::default() }
    }

    /// An honest session's answers, with the awkward bytes where a careless
    /// lexer would trip: parentheses and braces in quoted strings (escaped
    /// quotes too) and in literals, and a literal that looks like replies.
    const HONEST: &[u8] = b"* OK [CAPABILITY IMAP4rev1] ready (really {5}) now\r\n\
        A0001 OK LOGIN done\r\n\
        * STATUS INBOX (UIDNEXT 3 UIDVALIDITY 7)\r\n\
        A0002 OK STATUS done\r\n\
        * 1 FETCH (UID 1 BODYSTRUCTURE ((\"text\" \"html\" (\"name\" \"a (((( \\\"{9999}\\\" ))))\") NIL NIL \"7bit\" 10 1)\
         \"mixed\") BODY[HEADER]<0> {39}\r\nSubject: ((((( {99999}\r\n* OK ((((((\r\n\r\n)\r\n\
        * 2 FETCH (UID 2 BODY[1] {0}\r\n ENVELOPE (NIL \"}{\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n\
        A0003 OK FETCH done\r\n";

    #[tokio::test]
    async fn honest_replies_pass_unchanged_however_they_are_read() {
        let (out, refusal) = every_split(limits(), HONEST).await;
        assert_eq!(refusal, None);
        assert_eq!(out, HONEST);
    }

    #[tokio::test]
    async fn the_parser_gets_whole_lines_and_literal_bytes_as_they_come() {
        let mut guard = Guard::new(Chunks::bytewise(HONEST), limits());
        let (reads, refusal) = reads(&mut guard).await;
        assert_eq!(refusal, None);
        let literal: &[u8] = b"Subject: ((((( {99999}\r\n* OK ((((((\r\n\r\n";
        for read in &reads {
            assert!(
                read.ends_with(b"\n") || literal.windows(read.len()).any(|w| w == read.as_slice()),
                "a read ends mid-line: {:?}",
                String::from_utf8_lossy(read)
            );
        }
        assert_eq!(reads[0], b"* OK [CAPABILITY IMAP4rev1] ready (really {5}) now\r\n");
    }

    #[tokio::test]
    async fn a_reply_nested_too_deep_is_refused_before_the_parser_sees_it() {
        let at_limit =
            b"* 1 FETCH (BODYSTRUCTURE (((\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1) \"mixed\") \"mixed\"))\r\n";
        assert_eq!(every_split(limits(), at_limit).await, (at_limit.to_vec(), None));

        let mut deeper = b"* 1 OK fine\r\n* 2 FETCH (BODYSTRUCTURE ".to_vec();
        deeper.extend(std::iter::repeat_n(b'(', 100_000));
        let (out, refusal) = every_split(limits(), &deeper[..200]).await;
        assert_eq!(refusal, Some(Refusal::TooDeep(4)));
        assert_eq!(out, b"* 1 OK fine\r\n", "the reply before it is whole, and nothing of the deep one");
        let short = b"* 2 FETCH (BODYSTRUCTURE (((((\"text\"";
        let (out, refusal) = every_split(limits(), short).await;
        assert_eq!((out.len(), refusal), (0, Some(Refusal::TooDeep(4))));
    }

    #[tokio::test]
    async fn literals_are_sized_before_they_come() {
        for ok in
            [&b"* 1 FETCH (BODY[] {100}\r\n"[..], b"* 1 FETCH (BODY[] {0100+}\r\n", b"* 1 FETCH (BINARY[] ~{100}\r\n"]
        {
            let mut bytes = ok.to_vec();
            bytes.extend([b'('; 100]);
            bytes.extend(b")\r\n");
            assert_eq!(every_split(limits(), &bytes).await, (bytes.clone(), None), "{}", String::from_utf8_lossy(ok));
        }
        for over in [
            &b"* 1 FETCH (BODY[] {101}\r\n"[..],
            b"* 1 FETCH (X {1073741824",
            b"* 1 FETCH (X ~{999999999999999999999999}",
        ] {
            let (out, refusal) = every_split(limits(), over).await;
            assert_eq!(
                (out.len(), refusal),
                (0, Some(Refusal::LiteralTooLarge(100))),
                "{}",
                String::from_utf8_lossy(over)
            );
        }
        // Not announcements: braces in quoted strings, and `{N}` not at a line's end.
        let not = b"* 1 FETCH (X \"{1000}\" Y {1000} Z {1000}x)\r\n";
        let (_, refusal) = every_split(ImapLimits { max_literal: 5000, ..limits() }, not).await;
        assert_eq!(refusal, None);
        let (out, refusal) = every_split(limits(), b"* 1 FETCH (X \"{1000}\")\r\n").await;
        assert_eq!((out.len(), refusal), (24, None));
    }

    #[tokio::test]
    async fn status_and_continuation_lines_are_text_without_literals() {
        let text = b"* OK [ALERT] ((((((((((((( \"\r\n+ go ((((((((\r\nA0001 NO [BADCHARSET (UTF-8)] (((((((\r\n";
        assert_eq!(every_split(limits(), text).await, (text.to_vec(), None));
        for announced in [&b"* OK hello {5}\r\n"[..], b"+ {5+}\r\n", b"A0001 NO [BADCHARSET ({3}\r\nabc)] no\r\n"] {
            let (out, refusal) = every_split(limits(), announced).await;
            assert_eq!(
                (out.len(), refusal),
                (0, Some(Refusal::LiteralInStatus)),
                "{}",
                String::from_utf8_lossy(announced)
            );
        }
        // A second word that is not a status makes a data reply.
        let data = b"* OKAY {3}\r\n(((\r\n";
        assert_eq!(every_split(limits(), data).await, (data.to_vec(), None));
    }

    #[tokio::test]
    async fn long_lines_many_literals_and_endless_answers_are_refused() {
        let line = |n: usize| {
            let mut line = b"* 1 FETCH (X ".to_vec();
            line.extend(std::iter::repeat_n(b'x', n));
            line.extend(b")\r\n");
            line
        };
        let small = ImapLimits { max_line: 64, ..limits() };
        assert_eq!(run(small, Chunks::split(&line(48), &[])).await.1, None);
        assert_eq!(run(small, Chunks::split(&line(49), &[])).await.1, Some(Refusal::LineTooLong(64)));

        let literals = |n: usize| {
            let mut reply = b"* 1 FETCH (X".to_vec();
            for _ in 0..n {
                reply.extend(b" {1}\r\nx");
            }
            reply.extend(b")\r\n");
            reply
        };
        let few = ImapLimits { max_literals: 3, ..limits() };
        assert_eq!(run(few, Chunks::split(&literals(3), &[])).await.1, None);
        assert_eq!(run(few, Chunks::split(&literals(4), &[])).await.1, Some(Refusal::TooManyLiterals(3)));

        let replies = b"* 1 EXISTS\r\n".repeat(11);
        let ten = ImapLimits { max_command_replies: 10, ..limits() };
        assert_eq!(run(ten, Chunks::split(&replies[..120], &[])).await.1, None);
        assert_eq!(run(ten, Chunks::split(&replies, &[])).await.1, Some(Refusal::TooManyReplies(10)));
        let budget = ImapLimits { max_command_bytes: 100, ..limits() };
        assert_eq!(run(budget, Chunks::split(&replies, &[])).await.1, Some(Refusal::CommandTooLarge(100)));
    }

    #[tokio::test]
    async fn each_command_starts_a_budget_and_the_session_has_one_too() {
        let limits = ImapLimits { max_command_replies: 2, max_session_bytes: 60, ..limits() };
        let (client, mut server) = tokio::io::duplex(1024);
        let mut guard = Guard::new(client, limits);
        let mut buf = [0u8; 256];
        for round in 0..2 {
            guard.write_all(b"A0001 NOOP\r\n").await.expect("write");
            server.write_all(b"* 1 EXISTS\r\nA0001 OK\r\n").await.expect("write");
            let mut got = 0;
            while got < 22 {
                got += guard.read(&mut buf).await.unwrap_or_else(|err| panic!("round {round}: {err}"));
            }
        }
        // Within the command's budget, but past the session's.
        guard.write_all(b"A0002 NOOP\r\n").await.expect("write");
        server.write_all(b"* 2 EXISTS\r\nA0002 OK\r\n").await.expect("write");
        let err = guard.read(&mut buf).await.expect_err("over the session's budget");
        assert_eq!(err.get_ref().and_then(|e| e.downcast_ref::<Refusal>()), Some(&Refusal::SessionTooLarge(60)));
        // And it stays refused.
        assert!(guard.read(&mut buf).await.is_err());
    }

    #[tokio::test]
    async fn a_silent_server_and_a_slow_one_are_given_up_on() {
        let limits = ImapLimits {
            read_timeout: Duration::from_millis(100),
            command_timeout: Duration::from_secs(60),
            ..limits()
        };
        let (client, mut server) = tokio::io::duplex(1024);
        let mut guard = Guard::new(client, limits);
        server.write_all(b"* 1 FETCH (UID 1 ").await.expect("write");
        let started = std::time::Instant::now();
        let err = guard.read(&mut [0u8; 64]).await.expect_err("silent");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            err.get_ref().and_then(|e| e.downcast_ref::<Refusal>()),
            Some(&Refusal::Stalled(limits.read_timeout))
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        // A byte every 20 ms is never silent for long, and never done.
        let limits =
            ImapLimits { read_timeout: Duration::from_secs(60), command_timeout: Duration::from_millis(300), ..limits };
        let (client, mut server) = tokio::io::duplex(1024);
        let mut guard = Guard::new(client, limits);
        let drip = tokio::spawn(async move {
            while server.write_all(b"x").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        guard.write_all(b"A0001 NOOP\r\n").await.expect("write");
        let started = std::time::Instant::now();
        let err = guard.read(&mut [0u8; 64]).await.expect_err("too slow");
        assert_eq!(
            err.get_ref().and_then(|e| e.downcast_ref::<Refusal>()),
            Some(&Refusal::TooSlow(limits.command_timeout))
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(guard);
        drip.await.expect("the drip ends when the client hangs up");
    }

    /// A FETCH whose body structure is `depth` levels deep: multiparts
    /// around one text part.
    fn nested(depth: usize) -> Vec<u8> {
        let mut reply = b"* 1 FETCH (UID 1 BODYSTRUCTURE ".to_vec();
        reply.extend(std::iter::repeat_n(b'(', depth - 1));
        reply.extend(b"(\"text\" \"html\" NIL NIL NIL \"7bit\" 10 1)");
        for _ in 1..depth {
            reply.extend(b" \"mixed\")");
        }
        reply.extend(b")\r\n");
        reply
    }

    /// Runs `reply` through the guard and async-imap on a thread with a
    /// tokio worker's stack (2 MiB), as a poll would.
    fn parse_on_a_worker_stack(reply: Vec<u8>) -> Result<usize, String> {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                runtime.block_on(async move {
                    let mut greeting_and_reply = b"* OK ready\r\n".to_vec();
                    greeting_and_reply.extend(reply);
                    let server = Chunks::split(&greeting_and_reply, &[]);
                    let mut client = async_imap::Client::new(Guard::new(server, ImapLimits::default()));
                    client.read_response().await.expect("a greeting").expect("a greeting");
                    match client.read_response().await {
                        Some(Ok(reply)) => match reply.parsed() {
                            async_imap::imap_proto::Response::Fetch(_, attributes) => Ok(attributes.len()),
                            other => Err(format!("not a FETCH: {other:?}")),
                        },
                        Some(Err(err)) => Err(err.to_string()),
                        None => Err("no reply".into()),
                    }
                })
            })
            .expect("a thread")
            .join()
            .map_err(|_| "the parser panicked".to_owned())?
    }

    #[test]
    fn the_deepest_reply_allowed_parses_on_a_worker_stack_and_a_deeper_one_is_refused() {
        // The FETCH's own list is the first level.
        let deepest = ImapLimits::default().max_depth as usize - 1;
        assert_eq!(parse_on_a_worker_stack(nested(deepest)), Ok(2));
        let refused = parse_on_a_worker_stack(nested(deepest + 1)).expect_err("refused");
        assert!(refused.contains(&Refusal::TooDeep(128).to_string()), "{refused}");
        let refused = parse_on_a_worker_stack(nested(100_000)).expect_err("refused");
        assert!(refused.contains(&Refusal::TooDeep(128).to_string()), "{refused}");
    }
}
