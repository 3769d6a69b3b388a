//! An IMAP server that misbehaves on purpose: it greets, takes any LOGIN,
//! reports an INBOX of one message, and then answers the UID FETCH of it
//! the way one hostile server would. Each instance listens on a loopback
//! port of its own and stops when dropped.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// How the server answers the UID FETCH of its one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// With a body structure nested this many levels deep.
    DeepBodyStructure(usize),
    /// With FETCH responses, without end.
    EndlessFetches,
    /// With untagged `OK`s, without end.
    EndlessUntagged,
    /// By announcing a literal of this many bytes, then sending zeros
    /// without end.
    HugeLiteral(u64),
    /// By starting its answer, then saying nothing more.
    Stall,
    /// One byte of its answer at a time, every 200 ms, without end.
    Dribble,
}

pub struct HostileImap {
    pub address: SocketAddr,
    serving: JoinHandle<()>,
}

impl HostileImap {
    pub async fn start(how: Misbehaviour) -> HostileImap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let address = listener.local_addr().expect("its address");
        let serving = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                sessions.spawn(session(socket, how));
            }
        });
        HostileImap { address, serving }
    }
}

impl Drop for HostileImap {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// A header the poll admits (an allowed sender), so that it goes on to
/// the parts if it ever gets that far.
const HEADER: &str = "From: Atlantica Airways <noreply@atlantica-airways.example>\r\nSubject: booked\r\n\r\n";

async fn session(socket: TcpStream, how: Misbehaviour) {
    let (reader, mut writer) = socket.into_split();
    let mut lines = BufReader::new(reader);
    if writer.write_all(b"* OK [CAPABILITY IMAP4rev1] hostile server ready\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut words = line.split_whitespace();
        let tag = words.next().unwrap_or("*").to_owned();
        let command = words.next().unwrap_or_default().to_ascii_uppercase();
        let answer = match command.as_str() {
            "LOGIN" => format!("{tag} OK LOGIN completed\r\n"),
            "STATUS" => format!("* STATUS INBOX (UIDNEXT 2 UIDVALIDITY 7)\r\n{tag} OK STATUS completed\r\n"),
            "EXAMINE" | "SELECT" => format!(
                "* 1 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n\
                 * OK [UIDNEXT 2] next\r\n{tag} OK [READ-ONLY] EXAMINE completed\r\n"
            ),
            "LOGOUT" => {
                let _ = writer.write_all(format!("* BYE\r\n{tag} OK LOGOUT completed\r\n").as_bytes()).await;
                return;
            }
            "UID" => {
                misbehave(&mut writer, &mut lines, how).await;
                return;
            }
            _ => format!("{tag} BAD not here\r\n"),
        };
        if writer.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Answers the UID FETCH as `how` says, until the client hangs up.
async fn misbehave<W, R>(writer: &mut W, reader: &mut R, how: Misbehaviour)
where
    W: AsyncWriteExt + Unpin,
    R: AsyncRead + Unpin,
{
    match how {
        Misbehaviour::DeepBodyStructure(depth) => {
            let mut reply = b"* 1 FETCH (UID 1 RFC822.SIZE 100 BODYSTRUCTURE ".to_vec();
            reply.extend(std::iter::repeat_n(b'(', depth));
            reply.extend(b"\"text\" \"html\" NIL NIL NIL \"7bit\" 10 1");
            reply.extend(b" \"mixed\")".repeat(depth));
            reply.extend(format!(" BODY[HEADER]<0> {{{}}}\r\n{HEADER})\r\n", HEADER.len()).as_bytes());
            let _ = writer.write_all(&reply).await;
        }
        Misbehaviour::EndlessFetches => {
            let reply =
                format!("* 1 FETCH (UID 1 RFC822.SIZE 100 BODY[HEADER]<0> {{{}}}\r\n{HEADER})\r\n", HEADER.len());
            let burst = reply.repeat(64);
            while writer.write_all(burst.as_bytes()).await.is_ok() {}
        }
        Misbehaviour::EndlessUntagged => {
            let burst = "* OK still looking for that message\r\n".repeat(256);
            while writer.write_all(burst.as_bytes()).await.is_ok() {}
        }
        Misbehaviour::HugeLiteral(size) => {
            let head = format!("* 1 FETCH (UID 1 RFC822.SIZE 100 BODY[HEADER]<0> {{{size}}}\r\n");
            if writer.write_all(head.as_bytes()).await.is_ok() {
                let zeros = vec![0u8; 64 * 1024];
                while writer.write_all(&zeros).await.is_ok() {}
            }
        }
        Misbehaviour::Stall => {
            if writer.write_all(b"* 1 FETCH (UID 1 RFC822.SIZE ").await.is_ok() {
                // Reads whatever the client sends, until it hangs up.
                let mut sink = tokio::io::sink();
                let _ = tokio::io::copy(reader, &mut sink).await;
            }
        }
        Misbehaviour::Dribble => {
            if writer.write_all(b"* 1 FETCH (UID 1 X-PADDING ").await.is_ok() {
                while writer.write_all(b"x").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
