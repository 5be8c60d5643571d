//! Raw values of the set and its Services beyond the console form: `replicas` as a count or
//! `"external"`, and the traffic policy and session affinity of the access Service, spelled as
//! Kubernetes spells them (like `type`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

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

/// `replicas = 3`, or `replicas = "external"` (an autoscaler or an operator owns the count).
/// Any other string is kept, for validation to name.
#[derive(Debug)]
pub enum RawReplicas {
    Count(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawReplicas {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawReplicas;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of pods, or \"external\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawReplicas, E> {
                Ok(RawReplicas::Count(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawReplicas, E> {
                match i64::try_from(v) {
                    Ok(n) => Ok(RawReplicas::Count(n)),
                    // Said as an out-of-range value, which the parser reports as such.
                    Err(_) => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawReplicas, E> {
                Ok(RawReplicas::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
