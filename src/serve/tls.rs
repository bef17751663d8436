//! HTTPS for `silo serve --tls-cert/--tls-key` (rustls): a listener whose handshakes run in tasks of their
//! own with a time limit, so a client that connects and never finishes its handshake holds up no one else
//! (the accept loop never waits on them; beyond a cap per address and in all, new connections are closed).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The longest a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Handshakes running at once, in all and from one address: beyond them a new connection is closed at once
/// (the accept loop itself never waits, so stalled handshakes cannot hold up other clients).
const MAX_HANDSHAKES: usize = 4096;
const MAX_PER_ADDRESS: usize = 256;
/// Finished handshakes not yet taken by the server.
const READY: usize = 64;

pub struct TlsListener {
    local: std::io::Result<SocketAddr>,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

/// Handshakes in progress, per client address.
#[derive(Default)]
struct Pending {
    total: usize,
    by_address: std::collections::HashMap<std::net::IpAddr, usize>,
}

impl Pending {
    fn admit(&mut self, ip: std::net::IpAddr) -> bool {
        let mine = self.by_address.entry(ip).or_default();
        if self.total >= MAX_HANDSHAKES || *mine >= MAX_PER_ADDRESS {
            return false;
        }
        *mine += 1;
        self.total += 1;
        true
    }

    fn done(&mut self, ip: std::net::IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&ip);
            }
        }
    }
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        let local = listener.local_addr();
        let (tx, ready) = tokio::sync::mpsc::channel(READY);
        let pending = std::sync::Arc::new(std::sync::Mutex::new(Pending::default()));
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!("silo serve: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if !pending.lock().unwrap_or_else(|p| p.into_inner()).admit(peer.ip()) {
                    tracing::debug!("silo serve: too many TLS handshakes in progress; closing {peer}");
                    continue;
                }
                let (acceptor, tx, pending) = (acceptor.clone(), tx.clone(), pending.clone());
                tokio::spawn(async move {
                    let shaken = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await;
                    pending.lock().unwrap_or_else(|p| p.into_inner()).done(peer.ip());
                    match shaken {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("silo serve: TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("silo serve: TLS handshake with {peer} took too long"),
                    }
                });
            }
        });
        TlsListener { local, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task ended (it does not, but the server must then stop taking connections).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// A server configuration from PEM files: the certificate chain and its private key.
pub fn acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("--tls-cert {}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    Ok(TlsAcceptor::from(std::sync::Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_handshake_slot() {
        let mut p = Pending::default();
        let (a, b): (std::net::IpAddr, std::net::IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..MAX_PER_ADDRESS {
            assert!(p.admit(a));
        }
        assert!(!p.admit(a), "the address is at its cap");
        assert!(p.admit(b), "another address is not");
        p.done(a);
        assert!(p.admit(a), "a slot freed");
        assert_eq!(p.total, MAX_PER_ADDRESS + 1);
    }
}
