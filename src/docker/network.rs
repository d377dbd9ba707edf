//! Docker networks (what zun's kuryr driver asks of docker-py) and the one container
//! create bollard cannot express for old engines.
//!
//! Every name or id that goes into a URL path is percent-escaped here, whatever the
//! caller validated: a network name is a path segment, never a path.
use super::{DockerClient, DockerError, DockerErrorKind};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest,
};
use bollard::query_parameters as qp;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use std::collections::HashMap;

/// Everything but `-`, `_`, `~` and alphanumerics is escaped (dots too: no `..` segment).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// One path segment, escaped.
pub fn escape_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A subnet of the IPAM configuration (`Subnet`, `Gateway`).
#[derive(Debug, Clone, PartialEq)]
pub struct IpamPool {
    pub subnet: String,
    pub gateway: Option<String>,
}

/// `POST /networks/create` as zun's `KuryrNetwork.create_network` calls it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkSpec {
    pub name: String,
    pub driver: String,
    pub enable_ipv6: bool,
    pub options: HashMap<String, String>,
    pub ipam_driver: String,
    pub ipam_options: HashMap<String, String>,
    pub ipam_config: Vec<IpamPool>,
}

/// A Docker network, reduced to what the domain reads.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSummary {
    pub id: String,
    pub name: String,
    pub driver: String,
}

impl DockerClient {
    /// `POST /networks/create`: returns the network id.
    pub async fn network_create(&self, spec: &NetworkSpec) -> Result<String, DockerError> {
        let req = format!("POST /networks/create name={}", escape_segment(&spec.name));
        let body = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some(spec.driver.clone()),
            enable_ipv6: Some(spec.enable_ipv6),
            options: Some(spec.options.clone()),
            ipam: Some(Ipam {
                driver: Some(spec.ipam_driver.clone()),
                options: Some(spec.ipam_options.clone()),
                config: Some(
                    spec.ipam_config
                        .iter()
                        .map(|p| IpamConfig { subnet: Some(p.subnet.clone()), gateway: p.gateway.clone(), ..Default::default() })
                        .collect(),
                ),
            }),
            ..Default::default()
        };
        let r = self.timed(&req, self.docker.create_network(body)).await?;
        Ok(r.id)
    }

    /// `GET /networks/{name}` as Docker's JSON; `None` when there is none.
    pub async fn network_inspect(&self, name: &str) -> Result<Option<Value>, DockerError> {
        let seg = escape_segment(name);
        let req = format!("GET /networks/{seg}");
        match self.timed(&req, self.docker.inspect_network(&seg, None::<qp::InspectNetworkOptions>)).await {
            Ok(n) => super::to_value(&n, &req).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /networks?filters={"name":[name]}` keeping exact name matches (Docker's name
    /// filter matches substrings), as docker-py's `networks(names=[...])` is used by zun.
    pub async fn networks_named(&self, name: &str) -> Result<Vec<NetworkSummary>, DockerError> {
        let req = "GET /networks?filters=name";
        let opts = qp::ListNetworksOptions { filters: Some(HashMap::from([("name".to_string(), vec![name.to_string()])])) };
        let list = self.timed(req, self.docker.list_networks(Some(opts))).await?;
        Ok(list
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .map(|n| NetworkSummary {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                driver: n.driver.unwrap_or_default(),
            })
            .collect())
    }

    /// `POST /networks/{name}/connect` with the addresses pinned (`IPAMConfig`).
    pub async fn network_connect(&self, network: &str, container: &str, ipv4: Option<&str>, ipv6: Option<&str>) -> Result<(), DockerError> {
        let seg = escape_segment(network);
        let req = format!("POST /networks/{seg}/connect");
        let ipam = (ipv4.is_some() || ipv6.is_some()).then(|| EndpointIpamConfig {
            ipv4_address: ipv4.map(str::to_string),
            ipv6_address: ipv6.map(str::to_string),
            ..Default::default()
        });
        let body = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(EndpointSettings { ipam_config: ipam, ..Default::default() }),
        };
        self.timed(&req, self.docker.connect_network(&seg, body)).await
    }

    /// `POST /networks/{name}/disconnect`.
    pub async fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<(), DockerError> {
        let seg = escape_segment(network);
        let req = format!("POST /networks/{seg}/disconnect");
        let body = NetworkDisconnectRequest { container: container.to_string(), force: Some(force) };
        self.timed(&req, self.docker.disconnect_network(&seg, body)).await
    }

    /// `DELETE /networks/{name}`. A 404 counts as success.
    pub async fn network_remove(&self, name: &str) -> Result<(), DockerError> {
        let seg = escape_segment(name);
        let req = format!("DELETE /networks/{seg}");
        match self.timed(&req, self.docker.remove_network(&seg)).await {
            Err(e) if e.is_not_found() => Ok(()),
            r => r,
        }
    }

    /// `POST /containers/create?name=` with a top-level `MacAddress`, which engines before
    /// API 1.44 read (docker-py's `mac_address`, what zun sends) and bollard's 1.53 model no
    /// longer has. The endpoint's own `MacAddress` is set as well for newer engines.
    pub async fn create_with_mac(&self, name: &str, body: ContainerCreateBody, mac: &str) -> Result<String, DockerError> {
        let req = format!("POST /containers/create?name={name}");
        let mut json = serde_json::to_value(&body).map_err(|e| DockerError::new(DockerErrorKind::Decode, e.to_string(), &req))?;
        if let Some(o) = json.as_object_mut() {
            o.insert("MacAddress".into(), Value::String(mac.to_string()));
        }
        let path = format!("/v{}/containers/create?name={}", self.api_version(), utf8_percent_encode(name, SEGMENT));
        let (status, bytes) = tokio::time::timeout(self.timeout, self.raw_post(&path, json.to_string()))
            .await
            .map_err(|_| DockerError::new(DockerErrorKind::Timeout, "no answer in time", &req))?
            .map_err(|m| DockerError::new(DockerErrorKind::Transport, m, &req))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let msg = v.get("message").and_then(Value::as_str).map(str::to_string);
            return Err(DockerError::api(status, msg.unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()), req));
        }
        match v.get("Id").and_then(Value::as_str) {
            Some(id) => Ok(id.to_string()),
            None => Err(DockerError::new(DockerErrorKind::Decode, "the answer has no Id", req)),
        }
    }

    /// One HTTP/1.1 POST with a JSON body over the configured endpoint (unix socket or TCP).
    async fn raw_post(&self, path: &str, body: String) -> Result<(u16, Bytes), String> {
        let url = self.api_url.trim();
        let request = hyper::Request::post(path)
            .header("Host", "docker")
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let socket = url.strip_prefix("unix://").or_else(|| url.starts_with('/').then_some(url));
        let resp = if let Some(path) = socket {
            let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| e.to_string())?;
            send(stream, request).await?
        } else {
            let hostport = url.trim_start_matches("tcp://").trim_start_matches("http://").trim_end_matches('/');
            let stream = tokio::net::TcpStream::connect(hostport).await.map_err(|e| e.to_string())?;
            send(stream, request).await?
        };
        Ok(resp)
    }
}

async fn send<S>(stream: S, request: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    driver.abort();
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(escape_segment("5f1c-ab_c"), "5f1c-ab_c");
        assert_eq!(escape_segment(".."), "%2E%2E");
        assert_eq!(escape_segment("../containers/x"), "%2E%2E%2Fcontainers%2Fx");
        assert_eq!(escape_segment("a?b#c d"), "a%3Fb%23c%20d");
    }
}
