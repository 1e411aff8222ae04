//! Where a request comes from: the socket's address, or, from a reverse proxy the operator
//! trusts (`--trust-proxy CIDR`), the client address it put in `X-Forwarded-For`/`X-Real-IP`.

use std::net::IpAddr;

use axum::http::HeaderMap;

pub use crate::cidr::Cidr;

/// The client's address: the socket's, unless the socket is a trusted proxy that said whom it
/// forwards (the last `X-Forwarded-For` entry, which that proxy appended, else `X-Real-IP`).
pub fn client_ip(socket: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if !trusted.iter().any(|cidr| cidr.contains(socket)) {
        return socket;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-forwarded-for")
        .and_then(|v| v.rsplit(',').next())
        .or_else(|| header("x-real-ip"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_count_from_trusted_proxies_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().unwrap(),
        );
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
        let trusted = ["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
    }
}
