//! TLS end to end, with certificates made here: a relay serving HTTPS from PEM files, an app
//! server reaching it at an `https` endpoint (wss server connections), the Rust client
//! negotiating at the app server and following it to the relay over wss, a self-hosted app
//! served over HTTPS, and the refusals: an untrusted certificate, plain HTTP to a TLS port,
//! files that are not a certificate and a key.

use std::path::PathBuf;
use std::time::Duration;

use switchboard::client::{ClientOptions, HubConnection};
use switchboard::service::ServiceOptions;
use switchboard::{HubError, Switchboard};
use switchboard_service::{Config, Relay};

const KEY: &str = "a-relay-access-key-for-tls-tests-0123456789";
const WAIT: Duration = Duration::from_secs(10);

struct Echo;

#[switchboard::hub("/echo")]
impl Echo {
    async fn echo(&self, text: String) -> Result<String, HubError> {
        Ok(text)
    }
}

/// A certificate authority and a certificate for 127.0.0.1 and localhost it signed, written
/// to PEM files in a fresh directory.
struct Certificates {
    dir: PathBuf,
    ca: String,
}

impl Certificates {
    fn make(name: &str) -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("Switchboard test CA {name}"));
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let certificate = params.signed_by(&key, &ca).unwrap();
        let dir = std::env::temp_dir().join(format!("switchboard-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), certificate.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Certificates { dir, ca: ca.pem() }
    }

    fn cert(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn tls_relay(certificates: &Certificates) -> Relay {
    let mut config = Config::new(KEY).listen("127.0.0.1:0");
    config.tls_cert = Some(certificates.cert());
    config.tls_key = Some(certificates.key());
    Relay::bind(config).await.expect("the relay starts with TLS")
}

/// Serves `app` over plain HTTP on loopback; its base URL.
async fn serve_plain(app: &Switchboard) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(switchboard::serve(listener, app.router()).into_future());
    url
}

async fn echo_through(url: &str) -> Result<String, String> {
    let connection = HubConnection::new(url, ClientOptions::default()).map_err(|e| e.to_string())?;
    tokio::time::timeout(WAIT, connection.start())
        .await
        .map_err(|_| "start timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let echoed = connection
        .invoke::<String>("Echo", ("over tls",))
        .await
        .map_err(|e| e.to_string());
    connection.stop().await;
    echoed
}

use std::future::IntoFuture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_relay_app_server_and_rust_client_over_https_and_wss() {
    let certificates = Certificates::make("relay");
    switchboard::tls::add_trusted_roots(certificates.ca.as_bytes()).unwrap();
    let relay = tls_relay(&certificates).await;
    assert!(relay.url().starts_with("https://127.0.0.1:"), "{}", relay.url());
    assert!(relay.connection_string().starts_with("Endpoint=https://"));

    // The app server's server connections go to wss://…/server.
    let app = Switchboard::builder()
        .with_service(ServiceOptions {
            connection_string: Some(relay.connection_string()),
            initial_hub_server_connection_count: 2,
            ..ServiceOptions::default()
        })
        .mount(Echo)
        .build()
        .unwrap();
    let running = app.start().unwrap();
    tokio::time::timeout(WAIT, running.connected())
        .await
        .expect("the server connections come up over TLS");
    let deadline = std::time::Instant::now() + WAIT;
    while relay.server_connection_count("echo") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both server connections come up over TLS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let base = serve_plain(&app).await;

    // The client negotiates at the app server, which sends it to https://…/client.
    assert_eq!(echo_through(&format!("{base}/echo")).await.unwrap(), "over tls");
    assert_eq!(relay.client_count("echo"), 0, "the client has left");

    // Plain HTTP to the TLS port gets nowhere.
    let plain = relay.url().replacen("https://", "http://", 1);
    let refused = reqwest_free_get(&plain).await;
    assert!(refused.is_err() || !refused.unwrap().starts_with("HTTP/1.1 200"));
    running.shutdown().await;
}

/// `GET /api/health` over plain TCP: the status line, or why there was none.
async fn reqwest_free_get(base: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_self_hosted_https_and_an_untrusted_certificate_is_refused() {
    let trusted = Certificates::make("trusted");
    let untrusted = Certificates::make("untrusted");
    switchboard::tls::add_trusted_roots(trusted.ca.as_bytes()).unwrap();
    let app = Switchboard::builder().mount(Echo).build().unwrap();
    let serve_tls = |certificates: &Certificates| {
        let config = switchboard::tls::server_config(
            certificates.dir.join("cert.pem").as_path(),
            certificates.dir.join("key.pem").as_path(),
        )
        .unwrap();
        let router = app.router();
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("https://{}", listener.local_addr().unwrap());
            tokio::spawn(switchboard::serve(listener, router).tls(config).into_future());
            url
        }
    };
    let good = serve_tls(&trusted).await;
    assert_eq!(echo_through(&format!("{good}/echo")).await.unwrap(), "over tls");
    // The WebSocket URL form, straight to the hub without negotiate, works too.
    let wss = good.replacen("https://", "wss://", 1);
    let options = ClientOptions {
        skip_negotiation: true,
        ..ClientOptions::default()
    };
    let direct = HubConnection::new(&format!("{wss}/echo"), options).unwrap();
    tokio::time::timeout(WAIT, direct.start()).await.unwrap().unwrap();
    assert_eq!(direct.invoke::<String>("Echo", ("direct",)).await.unwrap(), "direct");
    direct.stop().await;

    // A certificate no trusted root vouches for: negotiate fails with the TLS error.
    let bad = serve_tls(&untrusted).await;
    let error = echo_through(&format!("{bad}/echo")).await.unwrap_err();
    assert!(error.contains("certificate"), "{error}");
}

#[tokio::test]
async fn tls_files_that_are_not_a_certificate_and_a_key_are_refused_by_name() {
    let certificates = Certificates::make("files");
    let garbage = certificates.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let start = |cert: String, key: String| async move {
        let mut config = Config::new(KEY).listen("127.0.0.1:0");
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
        Relay::bind(config).await.map(drop).map_err(|e| e.to_string())
    };
    let error = start(garbage.display().to_string(), certificates.key())
        .await
        .unwrap_err();
    assert!(error.contains("garbage.pem holds no PEM certificate"), "{error}");
    let error = start(certificates.cert(), garbage.display().to_string())
        .await
        .unwrap_err();
    assert!(error.contains("garbage.pem holds no usable PEM private key"), "{error}");
    let error = start(certificates.cert(), "/nonexistent/key.pem".to_owned())
        .await
        .unwrap_err();
    assert!(error.contains("/nonexistent/key.pem"), "{error}");
    // The key's PEM text never appears in an error.
    let key_text = std::fs::read_to_string(certificates.key()).unwrap();
    let other = Certificates::make("other");
    let error = start(other.cert(), certificates.key()).await.unwrap_err();
    assert!(error.contains("do not go together"), "{error}");
    assert!(!error.contains(key_text.lines().nth(1).unwrap()), "{error}");
    // One of the two alone.
    let mut config = Config::new(KEY).listen("127.0.0.1:0");
    config.tls_cert = Some(certificates.cert());
    let error = Relay::bind(config).await.map(drop).unwrap_err().to_string();
    assert!(error.contains("TLS needs both"), "{error}");
}
