//! Raw values of the set's Services beyond ports and type: the traffic policy and session
//! affinity of the access Service, spelled as Kubernetes spells them (like `type`).

use serde::Deserialize;

/// externalTrafficPolicy of a NodePort or LoadBalancer Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum TrafficPolicy {
    Cluster,
    Local,
}

impl TrafficPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        }
    }
}

/// sessionAffinity: `"ClientIP"` keeps a client on one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum SessionAffinity {
    None,
    ClientIP,
}

impl SessionAffinity {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionAffinity::None => "None",
            SessionAffinity::ClientIP => "ClientIP",
        }
    }
}
