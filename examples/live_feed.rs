//! A live feed over Server-Sent Events: `GET /feed` streams a `WATCH` of the newest posts to
//! the browser (`EventSource('/feed')`), one SSE frame per change, using
//! `Watch::into_stream` and `WatchEvent::to_sse`. A writer task adds a post every second so
//! there is something to see.
//!
//!     cargo run --example live_feed            # then: curl -N http://127.0.0.1:3000/feed
//!     KVM_LIVE_FEED_SELFTEST=1 cargo run --example live_feed   # CI: serve, read, check, exit
//!
//! The handler is the few lines in `feed`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use kvm::Database;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /feed`: the 5 newest posts now, then every change of that list, as SSE.
async fn feed(State(db): State<Database>) -> Response {
    let watch = match db.watch("WATCH SELECT id, title FROM posts ORDER BY id DESC LIMIT 5", ()) {
        Ok(w) => w,
        Err(e) => {
            return Response::builder()
                .status(500)
                .body(Body::from(e.to_string()))
                .unwrap_or_default()
        }
    };
    let frames = watch.into_stream().map(|event| {
        Ok::<_, Infallible>(match event {
            Ok(e) => e.to_sse(),
            Err(e) => format!("event: error\ndata: {e}\n\n"),
        })
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(frames))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Database::memory()?;
    db.execute("DEFINE MODEL posts (id INT PRIMARY KEY, title STRING NOT NULL)", ())?;
    db.execute("INSERT INTO posts [{id: 1, title: 'hello'}, {id: 2, title: 'world'}]", ())?;
    let app = Router::new().route("/feed", get(feed)).with_state(db.clone());
    let selftest = std::env::var_os("KVM_LIVE_FEED_SELFTEST").is_some();
    let listener =
        tokio::net::TcpListener::bind(if selftest { "127.0.0.1:0" } else { "127.0.0.1:3000" })
            .await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    if !selftest {
        println!("serving http://{addr}/feed — try: curl -N http://{addr}/feed");
        for id in 3.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            db.execute("INSERT INTO posts {id: $1, title: $2}", (id, format!("post {id}")))?;
        }
        return Ok(());
    }

    // Self-test: a raw HTTP client reads the initial frames, a post is added, its `insert`
    // frame must arrive.
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(b"GET /feed HTTP/1.1\r\nhost: localhost\r\n\r\n").await?;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut inserted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("event: insert") {
        if !inserted && seen.contains("event: ready") {
            db.execute("INSERT INTO posts {id: 3, title: 'live'}", ())?;
            inserted = true;
        }
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    print!("{seen}");
    let ok = seen.contains("text/event-stream")
        && seen.contains("event: initial")
        && seen.contains("event: insert")
        && seen.contains("\"title\":\"live\"");
    if !ok {
        return Err("the SSE feed did not deliver the initial posts and the new one".into());
    }
    println!("\nlive_feed self-test: ok");
    Ok(())
}
