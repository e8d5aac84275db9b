//! Just enough of the NATS client protocol (https://docs.nats.io/reference/reference-protocols/nats-protocol)
//! for JetStream API calls: connect (user/password or token from the URL), publish, and
//! request-reply on an inbox, over plain TCP (`nats://`).
//!
//! Why not `async-nats`: even with `default-features = false` it pulls a TLS stack
//! (rustls, rustls-webpki, tokio-rustls, native certs) and 15 crates this project does not
//! otherwise build, ~50 s of CPU on a clean build here (measured for issue 33), for three
//! request-replies a sample. One connection serves one caller at a time (`&mut self`):
//! there is no background task, PINGs from the server are answered while reading.

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The port a `nats://` URL without one means.
const DEFAULT_PORT: u16 = 4222;
/// A control line longer than this is not NATS (the server's own limit is 4 KiB by default).
const MAX_LINE: u64 = 64 * 1024;
/// A payload larger than this is refused rather than allocated (the server's own
/// `max_payload` is 1 MiB by default, 64 MiB at most).
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// The one subscription: every reply inbox of this connection.
const INBOX_SID: &str = "1";

/// One message delivered to this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    /// Where an answer (or, for JetStream deliveries, the acknowledgement) goes.
    pub reply: Option<String>,
    /// The status of a header-only message (`NATS/1.0 503`: no responders, 404/408 from a
    /// JetStream pull that found nothing).
    pub status: Option<u16>,
    pub payload: Vec<u8>,
}

/// A connection to a NATS server.
pub struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// `_INBOX.<random>`: replies come to `<inbox>.<n>`.
    inbox: String,
    next_reply: u64,
}

/// Where to connect and as whom, from a `nats://[user[:password]@|token@]host[:port]` URL.
#[derive(Debug, PartialEq, Eq)]
struct Address {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

fn address(url: &str) -> anyhow::Result<Address> {
    let parsed = reqwest::Url::parse(url).context("not a URL")?;
    if parsed.scheme() != "nats" {
        bail!("only nats:// URLs are supported (no TLS, no websockets)");
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).context("no host in the URL")?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let user = Some(percent_decoded(parsed.username())).filter(|u| !u.is_empty());
    let password = parsed.password().map(percent_decoded);
    // `nats://secret@host`: a user without a password is a token, as NATS clients read it.
    let (user, token) = match (&user, &password) {
        (Some(u), None) => (None, Some(u.clone())),
        _ => (user, None),
    };
    Ok(Address { host, port: parsed.port().unwrap_or(DEFAULT_PORT), user, password, token })
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Connection {
    /// Connects, authenticates and checks the server took it (a PING answered by PONG).
    pub async fn connect(url: &str) -> anyhow::Result<Connection> {
        let address = address(url)?;
        let stream = TcpStream::connect((address.host.as_str(), address.port)).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        let mut connection = Connection {
            reader: BufReader::new(read),
            writer,
            inbox: format!("_INBOX.{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()),
            next_reply: 0,
        };
        let line = connection.line().await?;
        let Some(info) = line.strip_prefix("INFO ") else { bail!("not a NATS server (it said `{line}`)") };
        let info: serde_json::Value = serde_json::from_str(info).context("the server's INFO")?;
        if info["tls_required"] == true {
            bail!("the server requires TLS, which this reader does not speak");
        }
        if info["headers"] != true {
            bail!("the server does not support headers (NATS 2.2 or later is needed)");
        }
        let mut options = serde_json::json!({
            "verbose": false, "pedantic": false, "lang": "rust", "version": env!("CARGO_PKG_VERSION"),
            "protocol": 1, "headers": true, "no_responders": true,
        });
        if let Some(user) = address.user {
            options["user"] = user.into();
        }
        if let Some(password) = address.password {
            options["pass"] = password.into();
        }
        if let Some(token) = address.token {
            options["auth_token"] = token.into();
        }
        let hello = format!("CONNECT {options}\r\nSUB {}.* {INBOX_SID}\r\nPING\r\n", connection.inbox);
        connection.writer.write_all(hello.as_bytes()).await?;
        loop {
            match connection.line().await?.as_str() {
                "PONG" => return Ok(connection),
                "+OK" => {}
                line if line.starts_with("INFO ") => {}
                line => bail!("the server refused the connection: {}", server_error(line)),
            }
        }
    }

    /// A subject no other request of this connection answers to.
    pub fn new_inbox(&mut self) -> String {
        self.next_reply += 1;
        format!("{}.{}", self.inbox, self.next_reply)
    }

    pub async fn publish(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) -> anyhow::Result<()> {
        let mut frame = Vec::with_capacity(subject.len() + payload.len() + 64);
        frame.extend_from_slice(b"PUB ");
        frame.extend_from_slice(subject.as_bytes());
        if let Some(reply) = reply {
            frame.push(b' ');
            frame.extend_from_slice(reply.as_bytes());
        }
        frame.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        self.writer.write_all(&frame).await?;
        Ok(())
    }

    /// Publishes with a fresh inbox as the reply subject and waits for the answer (older
    /// answers still in flight, from a request that timed out, are dropped). No responder
    /// is an error naming the subject.
    pub async fn request(&mut self, subject: &str, payload: &[u8]) -> anyhow::Result<Message> {
        let inbox = self.new_inbox();
        self.publish(subject, Some(&inbox), payload).await?;
        loop {
            let message = self.next_message().await?;
            if message.subject != inbox {
                continue;
            }
            if message.status == Some(503) {
                bail!("no responders on `{subject}`");
            }
            return Ok(message);
        }
    }

    /// The next message to this connection's inbox; answers the server's PINGs meanwhile.
    pub async fn next_message(&mut self) -> anyhow::Result<Message> {
        loop {
            let line = self.line().await?;
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("MSG") => return self.message(words.collect(), false).await,
                Some("HMSG") => return self.message(words.collect(), true).await,
                Some("PING") => self.writer.write_all(b"PONG\r\n").await?,
                Some("PONG" | "+OK" | "INFO") => {}
                _ => bail!("the server says {}", server_error(&line)),
            }
        }
    }

    /// The payload of a `MSG subject sid [reply] size` or
    /// `HMSG subject sid [reply] header-size total-size` line.
    async fn message(&mut self, words: Vec<&str>, headers: bool) -> anyhow::Result<Message> {
        let sizes = if headers { 2 } else { 1 };
        if words.len() != 2 + sizes && words.len() != 3 + sizes {
            bail!("a malformed message line: {}", words.join(" "));
        }
        let number = |w: &str| w.parse::<usize>().with_context(|| format!("`{w}` is not a size"));
        let total = number(words[words.len() - 1])?;
        let header_size = if headers { number(words[words.len() - 2])? } else { 0 };
        if total > MAX_PAYLOAD || header_size > total {
            bail!("a message of {total} bytes ({header_size} of headers)");
        }
        let reply = (words.len() == 3 + sizes).then(|| words[2].to_owned());
        let subject = words[0].to_owned();
        let mut body = vec![0; total + 2];
        self.reader.read_exact(&mut body).await?;
        body.truncate(total);
        let payload = body.split_off(header_size);
        // `NATS/1.0 503` or `NATS/1.0 404 No Messages`: the status is the second word.
        let status = std::str::from_utf8(&body)
            .ok()
            .and_then(|h| h.lines().next())
            .and_then(|first| first.split_ascii_whitespace().nth(1))
            .and_then(|code| code.parse().ok());
        Ok(Message { subject, reply, status, payload })
    }

    /// One control line, without its CRLF. A closed connection is an error.
    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let read = (&mut self.reader).take(MAX_LINE).read_line(&mut line).await?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        if !line.ends_with('\n') {
            bail!("a protocol line longer than {MAX_LINE} bytes");
        }
        Ok(line.trim_end().to_owned())
    }
}

/// `-ERR 'Authorization Violation'` → `Authorization Violation`.
fn server_error(line: &str) -> String {
    match line.strip_prefix("-ERR") {
        Some(text) => text.trim().trim_matches('\'').to_owned(),
        None => format!("`{line}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue33_credentials_and_defaults_come_from_the_url() {
        let a = address("nats://app:p%40ss@127.0.0.1").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 4222));
        assert_eq!((a.user.as_deref(), a.password.as_deref(), a.token), (Some("app"), Some("p@ss"), None));
        let t = address("nats://s3cret@[::1]:4223").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.token.as_deref(), t.user), ("::1", 4223, Some("s3cret"), None));
        assert!(address("tls://127.0.0.1:4222").is_err());
    }

    /// The edges the real server shows rarely: a PING between answers (every 2 minutes of
    /// idleness), an empty reply field (`MSG subject 1  0`), a header-only status message,
    /// a stale answer to an earlier request. Spoken by a scripted peer on loopback.
    #[tokio::test]
    async fn issue33_pings_statuses_and_stale_answers() {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut read = BufReader::new(read);
            write.write_all(b"INFO {\"headers\":true}\r\n").await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..3 {
                let mut line = String::new();
                read.read_line(&mut line).await.unwrap();
                seen.push(line.clone());
            }
            let inbox = seen[1].split_ascii_whitespace().nth(1).unwrap().trim_end_matches(".*").to_owned();
            write.write_all(b"PONG\r\n").await.unwrap();
            let mut publish = String::new();
            read.read_line(&mut publish).await.unwrap();
            read.read_line(&mut String::new()).await.unwrap();
            let answer = format!(
                "PING\r\nMSG {inbox}.0 1  5\r\nstale\r\nHMSG {inbox}.1 1  28 28\r\nNATS/1.0 404 No Messages\r\n\r\n\r\n"
            );
            write.write_all(answer.as_bytes()).await.unwrap();
            let mut pong = String::new();
            read.read_line(&mut pong).await.unwrap();
            (seen, publish, pong)
        });
        let mut c = Connection::connect(&format!("nats://tok@127.0.0.1:{port}")).await.unwrap();
        let answer = c.request("$JS.API.X", b"{}").await.unwrap();
        assert_eq!((answer.status, answer.reply, answer.payload), (Some(404), None, Vec::new()));
        let (seen, publish, pong) = peer.await.unwrap();
        assert!(seen[0].starts_with("CONNECT {") && seen[0].contains(r#""auth_token":"tok""#), "{seen:?}");
        assert_eq!(seen[2], "PING\r\n");
        assert!(publish.starts_with("PUB $JS.API.X _INBOX.") && publish.ends_with(".1 2\r\n"), "{publish}");
        assert_eq!(pong, "PONG\r\n");
    }

    #[test]
    fn issue33_server_errors_lose_their_quotes() {
        assert_eq!(server_error("-ERR 'Authorization Violation'"), "Authorization Violation");
        assert_eq!(server_error("BOGUS"), "`BOGUS`");
    }
}
