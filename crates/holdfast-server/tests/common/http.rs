//! Plain HTTP: one `GET` per connection, with hyper's connection-level
//! HTTP/1.1 client.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::within;

/// `GET path` over a fresh TCP connection (HTTP/1.1, `Connection: close`);
/// returns the status code and the body (decoded from its transfer
/// encoding; invalid UTF-8 replaced).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    within("an HTTP response", async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("an HTTP/1.1 connection");
        // The connection is driven beside the exchange; it ends with the
        // response (`Connection: close`).
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = Request::get(path)
            .header(HOST, addr.to_string())
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let response = sender
            .send_request(request)
            .await
            .expect("an HTTP response");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the response body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
    .await
}
