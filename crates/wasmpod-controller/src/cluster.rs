//! The three Kubernetes calls the controller makes: get the Deployment, list its pods, patch its
//! `scale` subresource. Nothing else touches the API, which is what the RBAC in the README grants.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::Selector;
use kube::{Api, Client};

use crate::ControllerError;

/// The field manager the controller's scale patches carry: `kubectl get deploy -o yaml
/// --show-managed-fields` shows who set the replicas.
pub const FIELD_MANAGER: &str = "wasmpod-autoscale";

/// The pod port the controller scrapes `/metrics` on by default: the container port named
/// `http` (a name, so that the Deployment alone decides the number).
pub const DEFAULT_POD_PORT: &str = "http";

/// Which port of a pod serves wasmpod's `/metrics`: a number, or the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodPort {
    /// A port number.
    Number(u16),
    /// The name of a container port in the pod spec.
    Name(String),
}

impl FromStr for PodPort {
    type Err = std::convert::Infallible;

    /// Digits are a number, anything else a port name.
    fn from_str(text: &str) -> Result<PodPort, Self::Err> {
        Ok(match text.parse() {
            Ok(number) => PodPort::Number(number),
            Err(_) => PodPort::Name(text.to_owned()),
        })
    }
}

/// What the controller reads from the Deployment.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentState {
    pub(crate) selector: Selector,
    /// `spec.replicas` (Kubernetes' default of 1 when unset).
    pub(crate) replicas: u32,
    pub(crate) annotations: BTreeMap<String, String>,
}

/// A ready pod: its name and where its `/metrics` is (or why that cannot be known).
#[derive(Debug, Clone)]
pub(crate) struct ReadyPod {
    pub(crate) name: String,
    pub(crate) address: Result<SocketAddr, String>,
}

/// The API handles for one Deployment.
pub(crate) struct Cluster {
    deployments: Api<Deployment>,
    pods: Api<Pod>,
    name: String,
    /// `namespace/name`, for messages.
    target: String,
}

impl Cluster {
    pub(crate) fn new(client: Client, namespace: &str, name: &str) -> Cluster {
        Cluster {
            deployments: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
            name: name.to_owned(),
            target: format!("{namespace}/{name}"),
        }
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// `GET /apis/apps/v1/namespaces/<ns>/deployments/<name>`.
    pub(crate) async fn deployment(&self) -> Result<DeploymentState, ControllerError> {
        let deployment = self.deployments.get(&self.name).await.map_err(|source| ControllerError::Api {
            action: "get deployment",
            target: self.target.clone(),
            source,
        })?;
        let spec = deployment.spec.unwrap_or_default();
        let selector_error =
            |reason: String| ControllerError::Selector { target: self.target.clone(), reason };
        let selector = Selector::try_from(spec.selector).map_err(|e| selector_error(e.0))?;
        if selector.selects_all() {
            return Err(selector_error("its selector selects every pod in the namespace".to_owned()));
        }
        Ok(DeploymentState {
            selector,
            replicas: spec.replicas.map_or(1, |replicas| u32::try_from(replicas).unwrap_or(0)),
            annotations: deployment.metadata.annotations.unwrap_or_default(),
        })
    }

    /// `GET /api/v1/namespaces/<ns>/pods?labelSelector=...`, keeping the ready pods.
    pub(crate) async fn ready_pods(
        &self,
        selector: &Selector,
        port: &PodPort,
    ) -> Result<Vec<ReadyPod>, ControllerError> {
        let pods = self.pods.list(&ListParams::default().labels_from(selector)).await.map_err(|source| {
            ControllerError::Api { action: "list pods", target: self.target.clone(), source }
        })?;
        Ok(pods.items.iter().filter_map(|pod| ready_pod(pod, port)).collect())
    }

    /// `PATCH /apis/apps/v1/namespaces/<ns>/deployments/<name>/scale` with a JSON merge patch of
    /// `spec.replicas`: the scale subresource, so the controller needs no right to the rest of the
    /// Deployment.
    pub(crate) async fn scale(&self, replicas: u32) -> Result<(), ControllerError> {
        let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } }));
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
        self.deployments.patch_scale(&self.name, &params, &patch).await.map_err(|source| {
            ControllerError::Api { action: "patch scale", target: self.target.clone(), source }
        })?;
        Ok(())
    }
}

/// A pod counts as ready, as for a Service's endpoints, when it is running, not being deleted, has
/// an IP and its `Ready` condition is true.
fn ready_pod(pod: &Pod, port: &PodPort) -> Option<ReadyPod> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ready = status.phase.as_deref() == Some("Running")
        && status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let address = pod_address(pod, status.pod_ip.as_deref(), port);
    Some(ReadyPod { name, address })
}

fn pod_address(pod: &Pod, ip: Option<&str>, port: &PodPort) -> Result<SocketAddr, String> {
    let ip: IpAddr = ip.ok_or("no pod IP")?.parse().map_err(|e| format!("pod IP: {e}"))?;
    let number = match port {
        PodPort::Number(number) => *number,
        PodPort::Name(name) => pod
            .spec
            .iter()
            .flat_map(|spec| &spec.containers)
            .flat_map(|container| container.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("no container port named {name:?} (set --pod-port)"))?,
    };
    Ok(SocketAddr::new(ip, number))
}
