//! One container: image, ports, env (literals, references, `env_from`), resources, lifecycle
//! hooks (command, HTTP or sleep), probes (exec, TCP, HTTP with headers, gRPC), security
//! context and mounts.

use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, Container as K8sContainer, ContainerPort,
    EnvFromSource, EnvVar as K8sEnvVar, EnvVarSource, ExecAction, GRPCAction, HTTPGetAction,
    HTTPHeader, Lifecycle, LifecycleHandler, ObjectFieldSelector, Probe as K8sProbe,
    ResourceFieldSelector, SecretEnvSource, SecretKeySelector, SleepAction, TCPSocketAction,
    VolumeDevice, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::{non_empty, pod, port_ref};
use crate::spec::{Container, EnvFrom, EnvSource, EnvValue, Hook, HttpGet, Probe, ProbeAction};

pub(super) fn container(c: &Container) -> K8sContainer {
    let lifecycle = (c.post_start.is_some() || c.pre_stop.is_some()).then(|| Lifecycle {
        post_start: c.post_start.as_ref().map(hook),
        pre_stop: c.pre_stop.as_ref().map(hook),
        ..Lifecycle::default()
    });
    K8sContainer {
        name: c.name.clone(),
        image: Some(c.image.clone()),
        image_pull_policy: c.pull.map(|p| p.as_str().to_string()),
        command: non_empty(c.command.clone()),
        args: non_empty(c.args.clone()),
        ports: non_empty(
            c.ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: i32::from(p.number),
                    // Explicit: containerPort+protocol is the list-map key under server-side apply.
                    protocol: Some(p.protocol.as_str().to_string()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        env: non_empty(c.env.iter().map(env_var).collect()),
        env_from: non_empty(c.env_from.iter().map(env_from).collect()),
        resources: pod::resources(c),
        lifecycle,
        liveness_probe: c.liveness.as_ref().map(probe),
        readiness_probe: c.readiness.as_ref().map(probe),
        startup_probe: c.startup.as_ref().map(probe),
        security_context: pod::container_security_context(c),
        volume_devices: non_empty(
            c.devices
                .iter()
                .map(|(name, path)| VolumeDevice {
                    name: name.clone(),
                    device_path: path.clone(),
                })
                .collect(),
        ),
        volume_mounts: non_empty(
            c.mounts
                .iter()
                .map(|m| VolumeMount {
                    name: m.volume.clone(),
                    mount_path: m.path.clone(),
                    sub_path: m.sub_path.clone(),
                    read_only: m.read_only.then_some(true),
                    ..VolumeMount::default()
                })
                .collect(),
        ),
        ..K8sContainer::default()
    }
}

fn env_var(e: &crate::spec::EnvVar) -> K8sEnvVar {
    let (value, value_from) = match &e.value {
        EnvValue::Literal(v) => (Some(v.clone()), None),
        EnvValue::Secret { name, key } => (
            None,
            Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: name.clone(),
                    key: key.clone(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        ),
        EnvValue::ConfigMap { name, key } => (
            None,
            Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: name.clone(),
                    key: key.clone(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        ),
        EnvValue::Resource { resource, divisor } => (
            None,
            Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    resource: resource.clone(),
                    divisor: divisor.as_ref().map(|q| K8sQuantity(q.text.clone())),
                    container_name: None,
                }),
                ..EnvVarSource::default()
            }),
        ),
        EnvValue::Field(path) => (
            None,
            Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.clone(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
        ),
    };
    K8sEnvVar {
        name: e.name.clone(),
        value,
        value_from,
    }
}

fn probe(p: &Probe) -> K8sProbe {
    let mut out = K8sProbe {
        initial_delay_seconds: p.delay_seconds,
        period_seconds: p.period_seconds,
        timeout_seconds: p.timeout_seconds,
        failure_threshold: p.failures,
        success_threshold: p.success,
        ..K8sProbe::default()
    };
    match &p.action {
        ProbeAction::Exec(cmd) => {
            out.exec = Some(ExecAction {
                command: Some(cmd.clone()),
            });
        }
        ProbeAction::Tcp(port) => {
            out.tcp_socket = Some(TCPSocketAction {
                port: port_ref(port),
                host: None,
            });
        }
        ProbeAction::Http(h) => {
            out.http_get = Some(http_get(h));
        }
        ProbeAction::Grpc { port, service } => {
            out.grpc = Some(GRPCAction {
                port: i32::from(*port),
                service: service.clone(),
            });
        }
    }
    out
}

fn http_get(h: &HttpGet) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(h.path.clone()),
        port: port_ref(&h.port),
        scheme: h.scheme.clone(),
        http_headers: non_empty(
            h.headers
                .iter()
                .map(|(name, value)| HTTPHeader {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        ),
        ..HTTPGetAction::default()
    }
}

fn hook(h: &Hook) -> LifecycleHandler {
    match h {
        Hook::Exec(cmd) => LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(cmd.clone()),
            }),
            ..LifecycleHandler::default()
        },
        Hook::Http(get) => LifecycleHandler {
            http_get: Some(http_get(get)),
            ..LifecycleHandler::default()
        },
        Hook::Sleep(seconds) => LifecycleHandler {
            sleep: Some(SleepAction { seconds: *seconds }),
            ..LifecycleHandler::default()
        },
    }
}

fn env_from(e: &EnvFrom) -> EnvFromSource {
    let (config_map_ref, secret_ref) = match e.source {
        EnvSource::ConfigMap => (
            Some(ConfigMapEnvSource {
                name: e.name.clone(),
                optional: None,
            }),
            None,
        ),
        EnvSource::Secret => (
            None,
            Some(SecretEnvSource {
                name: e.name.clone(),
                optional: None,
            }),
        ),
    };
    EnvFromSource {
        config_map_ref,
        secret_ref,
        prefix: e.prefix.clone(),
    }
}
