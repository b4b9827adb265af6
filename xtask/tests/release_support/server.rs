//! A small HTTP/1.1 server for tests, on 127.0.0.1 and a free port, that
//! answers each request with what a handler says: a file, a redirect
//! (GitHub answers every release asset with one, to another host), or
//! something hostile (a body far larger than promised, a trickle of one
//! byte at a time). One thread per connection; every answer closes it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the server sends back.
pub enum Reply {
    /// 200 with this body and a Content-Length.
    Body(Vec<u8>),
    /// A redirect (302) to this location.
    Redirect(String),
    /// 404.
    NotFound,
    /// 200, no Content-Length, `len` bytes of `byte` (written in 1 MiB pieces).
    Flood { byte: u8, len: u64 },
    /// 200, no Content-Length, `byte` once per `every`, forever (until the
    /// client goes away).
    Trickle { byte: u8, every: Duration },
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves `handler(path)` (the request target, query included).
    pub fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let stopping = stopping.clone();
                std::thread::spawn(move || {
                    let _ = answer(stream, &*handler, &stopping);
                });
            }
        });
        Server { port, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Files of `dir`, by the last component of the request path.
    pub fn files(dir: &std::path::Path) -> Server {
        let dir = dir.to_path_buf();
        Server::start(move |target| {
            let path = target.split('?').next().unwrap_or("");
            let name = path.rsplit('/').next().unwrap_or("");
            match std::fs::read(dir.join(name)) {
                Ok(bytes) if !name.is_empty() => Reply::Body(bytes),
                _ => Reply::NotFound,
            }
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(stream: TcpStream, handler: &Handler, stop: &AtomicBool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut out = stream;
    match handler(&target) {
        Reply::Body(body) => {
            write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
            out.write_all(&body)?;
        }
        Reply::Redirect(location) => {
            write!(out, "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        }
        Reply::NotFound => {
            write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        }
        Reply::Flood { byte, len } => {
            write!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            let chunk = vec![byte; 1 << 20];
            let mut left = len;
            while left > 0 && !stop.load(Ordering::SeqCst) {
                let n = left.min(chunk.len() as u64) as usize;
                out.write_all(&chunk[..n])?;
                left -= n as u64;
            }
        }
        Reply::Trickle { byte, every } => {
            write!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            out.flush()?;
            while !stop.load(Ordering::SeqCst) {
                out.write_all(&[byte])?;
                out.flush()?;
                std::thread::sleep(every);
            }
        }
    }
    out.flush()
}
