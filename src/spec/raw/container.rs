//! Raw types of the container fields beyond the console form: `env_from`, gRPC probes, and
//! lifecycle hooks given as a command, an HTTP request or a sleep.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use super::RawHttpGet;

/// One `env_from` source: `{ config_map = "app" }` or `{ secret = "db", prefix = "DB_" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvFrom {
    pub config_map: Option<Spanned<String>>,
    pub secret: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
}

/// `grpc = 9090` or `grpc = { port = 9090, service = "liveness" }`.
#[derive(Debug)]
pub struct RawGrpc {
    pub port: Option<Spanned<i64>>,
    pub service: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpcTable {
    port: Option<Spanned<i64>>,
    service: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawGrpc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawGrpc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number, or a table { port = 9090, service = \"name\" }")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawGrpc, E> {
                Ok(RawGrpc {
                    // The outer Spanned carries the position; the validator uses that.
                    port: Some(Spanned::new(0..0, v)),
                    service: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawGrpc, A::Error> {
                let t = RawGrpcTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawGrpc {
                    port: t.port,
                    service: t.service,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A lifecycle hook: `["sh", "-c", "..."]` (a command), or a table with exactly one of
/// `exec = [...]`, `http = { path, port, scheme, headers }`, `sleep = "5s"`.
#[derive(Debug)]
pub struct RawHook {
    pub exec: Option<Spanned<Vec<String>>>,
    pub http: Option<Spanned<RawHttpGet>>,
    pub sleep: Option<Spanned<String>>,
    /// Given as a bare array: the outer span is the command's.
    pub bare: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHookTable {
    exec: Option<Spanned<Vec<String>>>,
    http: Option<Spanned<RawHttpGet>>,
    sleep: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawHook {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHook;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command such as [\"sh\", \"-c\", \"...\"], or a table { exec = [...] }, { http = { path = \"/stop\", port = 8080 } } or { sleep = \"5s\" }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawHook, A::Error> {
                let cmd = Vec::<String>::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(RawHook {
                    exec: Some(Spanned::new(0..0, cmd)),
                    http: None,
                    sleep: None,
                    bare: true,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHook, A::Error> {
                let t = RawHookTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawHook {
                    exec: t.exec,
                    http: t.http,
                    sleep: t.sleep,
                    bare: false,
                })
            }
        }
        d.deserialize_any(V)
    }
}
