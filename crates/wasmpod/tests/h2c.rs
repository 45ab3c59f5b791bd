//! HTTP/2 over cleartext (h2c), which the README's flags table promises on the `--listen`
//! address beside HTTP/1.1: a client that speaks HTTP/2 with prior knowledge (hyper's client, no
//! upgrade from HTTP/1.1, as gRPC clients and Knative's queue-proxy do) gets its answer over HTTP/2
//! from the real server and real guests.

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{module, start_with_config};
use wasmpod_guests as guests;

/// One HTTP/2 connection with prior knowledge: several requests on it, each answered over HTTP/2
/// with the guest's status and body; the WAGI guest is told `SERVER_PROTOCOL=HTTP/2.0`.
#[tokio::test]
async fn h2c_with_prior_knowledge_is_served_over_http2() {
    let config = [module("/hello", guests::HELLO, ""), module("/env/...", guests::ENV, "")].concat();
    let (_dir, server) = start_with_config(&config);
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);

    let mut answers = Vec::new();
    for path in ["/hello", "/env/x?q=1", "/no-such-route"] {
        let request = http::Request::get(format!("http://{}{path}", server.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.expect("an HTTP/2 response");
        assert_eq!(response.version(), http::Version::HTTP_2, "{path}");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        answers.push((status, String::from_utf8_lossy(&body).into_owned()));
    }
    assert_eq!(answers[0], (200, "hello world\n".to_owned()));
    let env = &answers[1].1;
    assert_eq!(answers[1].0, 200, "{env}");
    assert!(env.lines().any(|l| l == "SERVER_PROTOCOL=HTTP/2.0"), "{env}");
    assert!(env.lines().any(|l| l == "QUERY_STRING=q=1"), "{env}");
    assert_eq!(answers[2].0, 404);

    // The same listener still speaks HTTP/1.1.
    let r = server.get("/hello").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
}
