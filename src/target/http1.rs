//! One HTTP/1.1 keep-alive connection, driven inline by the future that sends on it: the
//! request is written with one `write`, the answer read into the connection's buffer and
//! parsed in place with `httparse` (the parser hyper uses), as wrk does.
//!
//! Why not hyper's client connection: it runs each connection as a task of its own and
//! hands every request and answer across an internal channel, so a request costs two
//! task wake-ups and a keep-alive poll on top of its two system calls; at the tens of
//! thousands of requests per second of a load generator that was the difference to wrk
//! (issue 11). What this does not do, because a load generator does not need it:
//! pipelining, `Expect: 100-continue`, upgrades, HTTP/2. A 1xx interim answer is skipped.
//!
//! Body framing follows RFC 9112 §6.3: none for HEAD and 1xx/204/304, else
//! `Transfer-Encoding: chunked`, else `Content-Length`, else to the end of the connection.
//!
//! An answer is timed when its last bytes reached this host's kernel (`SO_TIMESTAMPNS`,
//! read with each `recvmsg`), not when this process got round to reading them: a
//! generator thread that was asleep (an idle vCPU wakes in ~0.1 ms) or busy with other
//! answers would otherwise add its own delay to the target's latency, and more so the
//! less loaded it is (issue 13: service time p50 0.25 → 0.19 ms for a process sending
//! 250/s). Where the socket gives no timestamp, the read time is used.

use std::io;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use tokio::io::{AsyncWriteExt as _, Interest};
use tokio::net::TcpStream;

use super::Failure;

/// Read buffer size: an answer of a few KiB arrives with one `read`.
const READ_CHUNK: usize = 16 * 1024;
/// Headers parsed per answer; more is a protocol error.
const MAX_HEADERS: usize = 100;
/// An answer's head larger than this is a protocol error, not a reason to grow forever.
const MAX_HEAD: usize = 1024 * 1024;

/// An answer, its body cut at the caller's limit.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body was longer than the limit; the rest was read and dropped.
    pub truncated: bool,
    /// Cut short because the shared budget of answers being read ran out (issue 32).
    pub starved: bool,
    /// When the answer's last bytes were received by the kernel, wall clock (`None`: the
    /// socket gives no receive timestamps).
    pub received: Option<SystemTime>,
}

pub struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    read: BytesMut,
    /// What `recvmsg` reads into (initialised once; the bytes are then copied to `read`).
    scratch: Vec<u8>,
    /// Room for one receive-timestamp control message.
    control: Vec<u8>,
    /// The kernel's receive time of the bytes read last (converted once per answer, by
    /// the caller: no clock is read per `recvmsg`).
    received: Option<SystemTime>,
    /// The request being written (kept for its capacity).
    write: Vec<u8>,
}

/// One `recvmsg` into `into`: the bytes read and the kernel's receive time of the last of
/// them, when the socket reports it.
fn receive(fd: std::os::fd::RawFd, into: &mut [u8], control: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
    let mut iov = [IoSliceMut::new(into)];
    let message = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty()).map_err(io::Error::from)?;
    let mut at = None;
    // A truncated control message (ENOBUFS) only loses the stamp, never the bytes.
    for message in message.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmTimestampns(ts) = message {
            at = Some(SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32));
        }
    }
    Ok((message.bytes, at))
}

/// How an answer's body ends.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Connection {
    pub async fn open(host: &str, port: u16) -> io::Result<Connection> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        if let Err(error) = setsockopt(&stream, sockopt::ReceiveTimestampns, &true) {
            tracing::debug!("no receive timestamps ({error}): answers are timed when read");
        }
        Ok(Connection {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK),
            scratch: vec![0; READ_CHUNK],
            control: nix::cmsg_space!(nix::sys::time::TimeSpec),
            received: None,
            write: Vec::with_capacity(512),
        })
    }

    /// Whether an idle connection can carry a request: the server has not closed it nor
    /// sent anything unasked. Costs no system call unless the event loop saw it readable.
    pub fn is_reusable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            // Readable while idle: an end of stream, an error or stray bytes, or a stale
            // readiness, which a read tells apart.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Poll::Ready(Err(_)) => false,
        }
    }

    /// Writes the request. An error means it was not delivered (the caller may use
    /// another connection); with `Ok` it may have reached the server.
    pub async fn write_request(
        &mut self,
        method: &Method,
        target: &str,
        host: &[u8],
        headers: &[(HeaderName, HeaderValue)],
        body: Option<&[u8]>,
    ) -> io::Result<()> {
        let w = &mut self.write;
        w.clear();
        w.extend_from_slice(method.as_str().as_bytes());
        w.push(b' ');
        w.extend_from_slice(target.as_bytes());
        w.extend_from_slice(b" HTTP/1.1\r\n");
        let mut has_host = false;
        let mut has_type = false;
        for (name, value) in headers {
            has_host |= name == http::header::HOST;
            has_type |= name == http::header::CONTENT_TYPE;
            // Framing is this client's job; a scenario's own would contradict it.
            if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
                continue;
            }
            w.extend_from_slice(name.as_str().as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(value.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        if !has_host {
            w.extend_from_slice(b"host: ");
            w.extend_from_slice(host);
            w.extend_from_slice(b"\r\n");
        }
        if let Some(body) = body {
            if !has_type {
                w.extend_from_slice(b"content-type: application/json\r\n");
            }
            w.extend_from_slice(b"content-length: ");
            w.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            w.extend_from_slice(b"\r\n\r\n");
            w.extend_from_slice(body);
        } else {
            w.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&self.write).await
    }

    /// Reads one answer to its last byte, keeping the first `max_body` bytes of its body
    /// (fewer when `budget`, shared by the answers being read at once, runs out).
    /// Returns whether the connection can carry another request.
    pub async fn read_answer(
        &mut self,
        method: &Method,
        max_body: usize,
        budget: Option<&BodyBudget>,
    ) -> Result<(Answer, bool), Failure> {
        let (status, headers, framing, mut keep_alive) = loop {
            let head = self.read_head().await?;
            if (100..200).contains(&head.0) && head.0 != 101 {
                continue; // an interim answer; the real one follows
            }
            break head;
        };
        let framing = if *method == Method::HEAD || status == 101 { Framing::None } else { framing };
        let mut body = Body::new(max_body, budget);
        match framing {
            Framing::None => {}
            Framing::Length(length) => self.read_exactly(length, &mut body).await?,
            Framing::Chunked => self.read_chunked(&mut body).await?,
            Framing::UntilClose => {
                keep_alive = false;
                loop {
                    body.push(self.read.split());
                    if !self.fill().await? {
                        break;
                    }
                }
            }
        }
        let (body, truncated, starved) = body.finish();
        let received = self.received.take();
        Ok((Answer { status, headers, body, truncated, starved, received }, keep_alive && status != 101))
    }

    /// The next `length` bytes of the body into `body`; the stream ending first is a broken answer.
    async fn read_exactly(&mut self, mut length: u64, body: &mut Body<'_>) -> Result<(), Failure> {
        while length > 0 {
            if self.read.is_empty() && !self.fill().await? {
                return Err(Failure::Body);
            }
            let take = (self.read.len() as u64).min(length) as usize;
            body.push(self.read.split_to(take));
            length -= take as u64;
        }
        Ok(())
    }

    /// Reads more bytes into the buffer, noting when the kernel received them; `false` at
    /// the end of the stream.
    async fn fill(&mut self) -> Result<bool, Failure> {
        let Connection { stream, scratch, control, .. } = self;
        let fd = stream.as_raw_fd();
        let (n, at) = loop {
            stream.readable().await.map_err(|_| Failure::Body)?;
            // A short read has emptied the socket (TCP copies every queued byte up to the
            // buffer's size). Returning `WouldBlock` from `try_io` then makes tokio clear the
            // readiness it saw (only that one: an answer arriving meanwhile keeps it), which
            // spares the next request on this connection an `EAGAIN` read to find that out.
            let mut drained = None;
            let read = stream.try_io(Interest::READABLE, || {
                let (n, at) = receive(fd, scratch, control)?;
                if n > 0 && n < scratch.len() {
                    drained = Some((n, at));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok((n, at))
            });
            match read {
                Ok(read) => break read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match drained {
                    Some(read) => break read,
                    None => continue,
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Failure::Body),
            }
        };
        if n == 0 {
            return Ok(false);
        }
        self.read.extend_from_slice(&self.scratch[..n]);
        self.received = at;
        Ok(true)
    }

    /// The status line and headers: (status, headers, framing, keep-alive).
    async fn read_head(&mut self) -> Result<(u16, HeaderMap, Framing, bool), Failure> {
        loop {
            let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut parsed);
            match response.parse(&self.read) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = head_of(&response)?;
                    self.read.advance(len);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) if self.read.len() < MAX_HEAD => {}
                _ => return Err(Failure::Transport),
            }
            if !self.fill().await? {
                // Closed before a whole head: nothing or a part of an answer.
                return Err(Failure::Body);
            }
        }
    }

    /// A chunked body: chunks until the zero-sized one, then trailers until an empty line.
    async fn read_chunked(&mut self, body: &mut Body<'_>) -> Result<(), Failure> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.read) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.read.advance(len);
                        break size;
                    }
                    Ok(httparse::Status::Partial) => self.fill().await?.then_some(()).ok_or(Failure::Body)?,
                    Err(_) => return Err(Failure::Body),
                }
            };
            if size == 0 {
                return self.skip_trailers().await;
            }
            self.read_exactly(size, body).await?;
            self.expect_crlf().await?;
        }
    }

    async fn expect_crlf(&mut self) -> Result<(), Failure> {
        while self.read.len() < 2 {
            self.fill().await?.then_some(()).ok_or(Failure::Body)?;
        }
        if &self.read[..2] != b"\r\n" {
            return Err(Failure::Body);
        }
        self.read.advance(2);
        Ok(())
    }

    /// Trailer lines after the last chunk, up to and with the empty line.
    async fn skip_trailers(&mut self) -> Result<(), Failure> {
        loop {
            match self.read.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.read.advance(2);
                    return Ok(());
                }
                Some(end) => self.read.advance(end + 2),
                None if self.read.len() > MAX_HEAD => return Err(Failure::Body),
                None => self.fill().await?.then_some(()).ok_or(Failure::Body)?,
            }
        }
    }
}

/// Status, headers, framing and keep-alive of a parsed head.
fn head_of(response: &httparse::Response) -> Result<(u16, HeaderMap, Framing, bool), Failure> {
    let status = response.code.ok_or(Failure::Transport)?;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes it unless told.
    let mut keep_alive = response.version == Some(1);
    for header in response.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| Failure::Transport)?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| Failure::Transport)?;
        if name == http::header::CONTENT_LENGTH {
            let parsed = std::str::from_utf8(header.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            match (parsed, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                // Conflicting or unreadable lengths: the answer cannot be framed safely.
                _ => return Err(Failure::Transport),
            }
        } else if name == http::header::TRANSFER_ENCODING {
            chunked = value
                .as_bytes()
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| String::from_utf8_lossy(last).trim().eq_ignore_ascii_case("chunked"));
        } else if name == http::header::CONNECTION {
            let tokens = String::from_utf8_lossy(header.value).to_ascii_lowercase();
            if tokens.split(',').any(|t| t.trim() == "close") {
                keep_alive = false;
            } else if tokens.split(',').any(|t| t.trim() == "keep-alive") {
                keep_alive = true;
            }
        }
        headers.append(name, value);
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        Framing::UntilClose
    };
    Ok((status, headers, framing, keep_alive))
}

/// Bytes the answers being read at once may keep together (issue 32: memory was bounded
/// only by requests in flight × `max_body`, 982 MB on 50 MB answers). Shared by one
/// target's connections; an answer takes from it as it keeps bytes and gives them back
/// when it has been read (or dropped). When it runs out, an answer keeps what it got: it
/// is cut (`starved`) rather than waited for, which would add the wait to its latency.
#[derive(Debug)]
pub struct BodyBudget {
    free: AtomicUsize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget { free: AtomicUsize::new(bytes) }
    }

    /// Takes up to `want` bytes; how many it got.
    fn take(&self, want: usize) -> usize {
        let mut got = 0;
        let _ = self.free.fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
            got = free.min(want);
            Some(free - got)
        });
        got
    }

    fn give(&self, bytes: usize) {
        self.free.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Bytes not taken.
    #[cfg(test)]
    fn free(&self) -> usize {
        self.free.load(Ordering::Acquire)
    }
}

/// The kept part of a body: its first `max` bytes, without a copy when it arrived in one piece.
struct Body<'b> {
    max: usize,
    first: Option<Bytes>,
    rest: BytesMut,
    truncated: bool,
    budget: Option<&'b BodyBudget>,
    /// Bytes taken from `budget`, given back on drop.
    taken: usize,
    starved: bool,
}

impl<'b> Body<'b> {
    fn new(max: usize, budget: Option<&'b BodyBudget>) -> Body<'b> {
        Body { max: max.max(1), first: None, rest: BytesMut::new(), truncated: false, budget, taken: 0, starved: false }
    }

    fn push(&mut self, mut chunk: BytesMut) {
        if chunk.is_empty() || self.truncated {
            return; // drained, not kept
        }
        let held = self.first.as_ref().map_or(self.rest.len(), Bytes::len);
        if held + chunk.len() > self.max {
            self.truncated = true;
        }
        if let Some(budget) = self.budget {
            let want = chunk.len().min(self.max - held);
            let got = budget.take(want);
            self.taken += got;
            if got < want {
                self.truncated = true;
                self.starved = true;
                chunk.truncate(got);
                if got == 0 {
                    return;
                }
            }
        }
        if self.first.is_none() && self.rest.is_empty() && !self.truncated {
            self.first = Some(chunk.freeze());
            return;
        }
        if let Some(first) = self.first.take() {
            self.rest.extend_from_slice(&first);
        }
        let room = self.max - self.rest.len();
        self.rest.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// The kept bytes, whether the body was cut, and whether the budget cut it.
    fn finish(mut self) -> (Bytes, bool, bool) {
        let kept = self.first.take().unwrap_or_else(|| std::mem::take(&mut self.rest).freeze());
        (kept, self.truncated, self.starved)
    }
}

impl Drop for Body<'_> {
    fn drop(&mut self) {
        if let Some(budget) = self.budget {
            budget.give(self.taken);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use std::time::Instant;

    use super::*;

    /// A server that answers each request (read up to its blank line) with the next of
    /// `answers`, written in pieces of at most `piece` bytes, then closes.
    async fn server(answers: Vec<&'static [u8]>, piece: usize) -> (String, u16, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                let start = seen.len();
                let mut buf = [0u8; 4096];
                while !seen[start..].windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return seen;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                for part in answer.chunks(piece) {
                    socket.write_all(part).await.unwrap();
                    socket.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
            seen
        });
        ("127.0.0.1".into(), port, handle)
    }

    async fn exchange(c: &mut Connection, method: Method, max_body: usize) -> Result<(Answer, bool), Failure> {
        c.write_request(&method, "/x?y=1", b"h:1", &[], None).await.unwrap();
        c.read_answer(&method, max_body, None).await
    }

    /// The answer is timed when it arrived, not when the client read it, and by its last
    /// piece: the server sends the head, waits 60 ms, sends the body; the client reads
    /// 300 ms after writing (slack for a stalled machine).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_is_timed_by_the_kernel_arrival_of_its_last_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await.unwrap();
            socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
            socket.write_all(b"ok").await.unwrap();
            let sent_last = Instant::now();
            let _ = socket.read(&mut buf).await;
            sent_last
        });
        let mut c = Connection::open("127.0.0.1", port).await.unwrap();
        let written = Instant::now();
        c.write_request(&Method::GET, "/", b"h", &[], None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (answer, _) = c.read_answer(&Method::GET, 10, None).await.unwrap();
        let read = Instant::now();
        drop(c);
        let sent_last = server.await.unwrap();
        let at = answer.received.expect("loopback TCP gives receive timestamps");
        let received = crate::target::received_instant(at, Instant::now());
        assert_eq!(&answer.body[..], b"ok");
        assert!(received >= written + Duration::from_millis(55), "timed by the last piece: {:?}", received - written);
        // Within a few ms of the server's write, far from the client's read ~240 ms later.
        let after_send =
            received.saturating_duration_since(sent_last).max(sent_last.saturating_duration_since(received));
        assert!(after_send < Duration::from_millis(45), "{after_send:?} from the server's write");
        assert!(read - received >= Duration::from_millis(100), "read {:?} after arrival", read - received);
    }

    #[tokio::test]
    async fn frames_every_kind_of_body_even_in_one_byte_pieces() {
        for piece in [1, 7, 4096] {
            let (host, port, server) = server(
                vec![
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nLocation: /a/1\r\n\r\nhello",
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
                    b"HTTP/1.1 204 No Content\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                    b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n0123456789",
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
                ],
                piece,
            )
            .await;
            let mut c = Connection::open(&host, port).await.unwrap();
            let (a, keep) = exchange(&mut c, Method::GET, 100).await.unwrap();
            assert_eq!((a.status, &a.body[..], keep), (200, &b"hello"[..], true));
            assert_eq!(a.headers["location"], "/a/1");
            let (a, _) = exchange(&mut c, Method::GET, 100).await.unwrap();
            assert_eq!(&a.body[..], b"abcde", "chunked, with an extension and a trailer");
            let (a, _) = exchange(&mut c, Method::GET, 100).await.unwrap();
            assert_eq!((a.status, a.body.len()), (204, 0));
            let (a, keep) = exchange(&mut c, Method::HEAD, 100).await.unwrap();
            assert_eq!((a.status, a.body.len(), keep), (200, 0, true), "HEAD has no body whatever its length says");
            let (a, _) = exchange(&mut c, Method::GET, 4).await.unwrap();
            assert_eq!((&a.body[..], a.truncated), (&b"0123"[..], true), "kept up to max_body, the rest drained");
            let (a, keep) = exchange(&mut c, Method::GET, 100).await.unwrap();
            assert_eq!((&a.body[..], keep), (&b"to the end"[..], false));
            let seen = String::from_utf8(server.await.unwrap()).unwrap();
            assert!(seen.starts_with("GET /x?y=1 HTTP/1.1\r\nhost: h:1\r\n\r\n"), "{seen}");
            assert!(seen.contains("HEAD /x?y=1 HTTP/1.1\r\n"), "{seen}");
        }
    }

    #[tokio::test]
    async fn a_body_is_sent_with_its_length_and_a_json_type_unless_given() {
        let (host, port, server) = server(vec![b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"], 4096).await;
        let mut c = Connection::open(&host, port).await.unwrap();
        let headers = [(HeaderName::from_static("x-k"), HeaderValue::from_static("v"))];
        c.write_request(&Method::POST, "/c", b"h", &headers, Some(b"{\"a\":1}")).await.unwrap();
        let (a, _) = c.read_answer(&Method::POST, 10, None).await.unwrap();
        assert_eq!(a.status, 202);
        drop(c);
        let seen = String::from_utf8(server.await.unwrap()).unwrap();
        assert_eq!(
            seen,
            "POST /c HTTP/1.1\r\nx-k: v\r\nhost: h\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[tokio::test]
    async fn broken_answers_are_classified_not_hung_on() {
        let cases: [(&'static [u8], Failure); 4] = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", Failure::Body),
            (b"HTTP/1.1 200 OK\r\nContent-Le", Failure::Body),
            (b"garbage\r\n\r\n", Failure::Transport),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", Failure::Transport),
        ];
        for (answer, failure) in cases {
            let (host, port, _server) = server(vec![answer], 4096).await;
            let mut c = Connection::open(&host, port).await.unwrap();
            let got = exchange(&mut c, Method::GET, 100).await.err();
            assert_eq!(got, Some(failure), "{}", String::from_utf8_lossy(answer));
        }
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_not_reused() {
        let (host, port, server) = server(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], 4096).await;
        let mut c = Connection::open(&host, port).await.unwrap();
        let (_, keep) = exchange(&mut c, Method::GET, 10).await.unwrap();
        assert!(keep && c.is_reusable(), "open and idle");
        server.await.unwrap(); // the server closes after its one answer
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!c.is_reusable(), "closed while idle");
    }
    /// Issue 32: the answers being read at once share one budget; one that finds it spent
    /// keeps what it got and says so, and the bytes come back when an answer is read.
    #[test]
    fn issue32_answers_being_read_share_one_budget() {
        let budget = BodyBudget::new(100);
        let mut a = Body::new(80, Some(&budget));
        a.push(BytesMut::from(&[b'a'; 50][..]));
        a.push(BytesMut::from(&[b'a'; 50][..])); // over max_body: 80 kept
        let mut b = Body::new(80, Some(&budget));
        b.push(BytesMut::from(&[b'b'; 50][..]));
        assert_eq!(budget.free(), 0);
        let (kept_b, truncated_b, starved_b) = b.finish();
        assert_eq!((kept_b.len(), truncated_b, starved_b), (20, true, true));
        assert_eq!(budget.free(), 20, "b's bytes are back");
        let (kept_a, truncated_a, starved_a) = a.finish();
        assert_eq!((kept_a.len(), truncated_a, starved_a), (80, true, false));
        assert_eq!(budget.free(), 100);
        // A dropped (cancelled) read gives its bytes back too.
        let mut c = Body::new(1000, Some(&budget));
        c.push(BytesMut::from(&[b'c'; 60][..]));
        assert_eq!(budget.free(), 40);
        drop(c);
        assert_eq!(budget.free(), 100);
    }
}
