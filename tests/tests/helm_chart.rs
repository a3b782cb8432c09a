//! The Helm chart in `helm/switchboard`: `helm lint` and `helm template` with
//! the value sets in `tests/helm`, checking the rendered manifests (ports,
//! probes, where the access keys go, the headless upstream Service, the drain
//! timings, the Redis bus and where its password comes from, the Redis the
//! chart can deploy, TLS Secrets mounted whole and named in the environment)
//! and that the values schema refuses bad values (among them several
//! replicas without the bus, a client CA without upstream TLS); and the real
//! proxy started with the TOML file the chart's ConfigMap holds, with the
//! rendered bus setting against a real Redis, and with the rendered TLS
//! environment over files laid out as the Secret volumes. Needs no cluster;
//! the helm binary comes from `tests/helm/install.sh` (run by
//! `scripts/test.sh`).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_norway::Value;
use switchboard_tests::{AppServer, Proxy, Redis, http, signalr, workspace};

/// The key in `tests/helm/defaults.yaml` and `full.yaml`.
const TEST_KEY: &str = "helm-test-key-7f3a9c21d4e5b6a8";

fn helm() -> PathBuf {
    let helm = std::env::var_os("SWITCHBOARD_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace::root().join("tests/helm/node_modules/.bin/helm"));
    assert!(
        helm.is_file(),
        "{} is missing: run scripts/test.sh (or tests/helm/install.sh), which installs helm",
        helm.display()
    );
    helm
}

fn run_helm(args: &[&str]) -> Output {
    let root = workspace::root();
    // A private helm home so the test neither reads nor writes the user's.
    let home = std::env::temp_dir().join("switchboard-helm-home");
    Command::new(helm())
        .current_dir(&root)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm runs")
}

fn values_args(values: &[&str], set: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for v in values {
        args.push("--values".to_owned());
        args.push(format!("tests/helm/{v}"));
    }
    for s in set {
        args.push("--set".to_owned());
        args.push((*s).to_owned());
    }
    args
}

/// `helm template` output, or helm's stderr when it fails.
fn template(values: &[&str], set: &[&str]) -> Result<String, String> {
    let mut args = vec!["template", "sb", "helm/switchboard", "--namespace", "rt"];
    let extra = values_args(values, set);
    args.extend(extra.iter().map(String::as_str));
    let out = run_helm(&args);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("utf-8 manifests"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `helm lint --strict`; the combined output when it fails.
fn lint(values: &[&str]) -> Result<(), String> {
    lint_with(values, &[])
}

fn lint_with(values: &[&str], set: &[&str]) -> Result<(), String> {
    let mut args = vec!["lint", "--strict", "helm/switchboard"];
    let extra = values_args(values, set);
    args.extend(extra.iter().map(String::as_str));
    let out = run_helm(&args);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The rendered manifests, each parsed as YAML.
struct Manifests {
    text: String,
    docs: Vec<Value>,
}

impl Manifests {
    fn render(values: &[&str]) -> Self {
        Self::render_with(values, &[])
    }

    fn render_with(values: &[&str], set: &[&str]) -> Self {
        let text = template(values, set)
            .unwrap_or_else(|e| panic!("helm template {values:?} {set:?}: {e}"));
        let docs = serde_norway::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
            .filter(|v: &Value| !v.is_null())
            .collect();
        Self { text, docs }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    }

    /// The only resource of `kind`.
    fn one(&self, kind: &str) -> &Value {
        let all = self.of_kind(kind);
        assert_eq!(all.len(), 1, "expected one {kind}:\n{}", self.text);
        all[0]
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .into_iter()
            .find(|d| d["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {kind} {name}:\n{}", self.text))
    }

    /// The proxy's Deployment (the chart may deploy a Redis beside it).
    fn deployment(&self) -> &Value {
        self.named("Deployment", "sb-switchboard")
    }

    fn container(&self) -> &Value {
        let containers = self.deployment()["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .expect("containers");
        assert_eq!(containers.len(), 1);
        &containers[0]
    }

    /// The proxy's TOML file from the ConfigMap.
    fn config_file(&self) -> &str {
        self.one("ConfigMap")["data"]["switchboard.toml"]
            .as_str()
            .expect("switchboard.toml in the ConfigMap")
    }

    /// The proxy container's environment variable `name`.
    fn env(&self, name: &str) -> Option<&Value> {
        self.container()["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
    }

    /// The value of top-level `key` in the TOML file, without quotes.
    fn setting(&self, key: &str) -> String {
        let prefix = format!("{key} = ");
        self.config_file()
            .lines()
            .find_map(|l| l.trim().strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key} in:\n{}", self.config_file()))
            .trim_matches('"')
            .to_owned()
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("not an integer: {v:?}"))
}

/// Seconds in a duration the proxy parses (`5s`, `2m`, ...).
fn seconds(duration: &str) -> i64 {
    let split = duration
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(duration.len());
    let (n, unit) = duration.split_at(split);
    let n: i64 = n.parse().expect("a number");
    match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "ms" => n / 1000,
        other => panic!("unknown unit {other}"),
    }
}

/// The container port number with `name`.
fn port_named(container: &Value, name: &str) -> i64 {
    container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .map(|p| int(&p["containerPort"]))
        .unwrap_or_else(|| panic!("no port {name}"))
}

/// The Deployment's grace period exceeds what the pod spends draining: the
/// preStop sleep plus the proxy's own shutdown timeout from its config file.
fn assert_drain_fits(m: &Manifests) {
    let pod = &m.deployment()["spec"]["template"]["spec"];
    let grace = int(&pod["terminationGracePeriodSeconds"]);
    let shutdown = seconds(&m.setting("shutdown_timeout"));
    let pre_stop = &m.container()["lifecycle"]["preStop"];
    let sleep = match pre_stop["exec"]["command"].as_sequence() {
        Some(cmd) => {
            assert_eq!(cmd[0].as_str(), Some("sleep"), "{pre_stop:?}");
            cmd[1]
                .as_str()
                .expect("seconds")
                .parse::<i64>()
                .expect("a number")
        }
        None => int(&pre_stop["sleep"]["seconds"]),
    };
    assert!(
        sleep > 0,
        "a preStop sleep lets endpoints drop the pod first"
    );
    assert!(
        grace > shutdown + sleep,
        "terminationGracePeriodSeconds {grace} must exceed shutdown {shutdown}s + preStop {sleep}s"
    );
}

/// The raw key appears nowhere; its encoding only in the chart's Secret; the
/// proxy gets it from that Secret, not from a literal.
fn assert_key_only_in_secret(m: &Manifests, secret: &str, keys: &[&str]) {
    assert!(
        !m.text.contains(TEST_KEY),
        "the raw key leaked:\n{}",
        m.text
    );
    let joined = keys.join(",");
    let encoded = base64_encode(joined.as_bytes());
    for doc in &m.docs {
        let rendered = serde_norway::to_string(doc).unwrap();
        let is_secret = doc["kind"].as_str() == Some("Secret");
        assert_eq!(
            rendered.contains(&encoded),
            is_secret,
            "the encoded keys must be in the Secret and nowhere else:\n{rendered}"
        );
    }
    let s = m.named("Secret", secret);
    assert_eq!(s["data"]["access-keys"].as_str(), Some(encoded.as_str()));
    assert!(
        !m.config_file().contains("access_key"),
        "{}",
        m.config_file()
    );
    let env = m.container()["env"].as_sequence().expect("env");
    for var in env {
        let name = var["name"].as_str().unwrap_or_default();
        if name.contains("ACCESS_KEY") {
            assert!(var.get("value").is_none(), "{name} must not be a literal");
            assert_eq!(
                var["valueFrom"]["secretKeyRef"]["name"].as_str(),
                Some(secret)
            );
        }
    }
}

/// Standard base64 with padding, enough to find the Secret's encoded data.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_known_values() {
    assert_eq!(base64_encode(b"f"), "Zg==");
    assert_eq!(base64_encode(b"fo"), "Zm8=");
    assert_eq!(base64_encode(b"foo"), "Zm9v");
    assert_eq!(base64_encode(b"foobar!"), "Zm9vYmFyIQ==");
}

#[test]
fn default_values_render_a_secure_deployment() {
    lint(&["defaults.yaml"]).unwrap();
    let m = Manifests::render(&["defaults.yaml"]);

    let c = m.container();
    assert_eq!(port_named(c, "client"), 8080);
    assert_eq!(port_named(c, "upstream"), 7070);
    assert_eq!(port_named(c, "admin"), 9090);
    // The proxy listens where the container ports say.
    assert_eq!(m.setting("listen"), "0.0.0.0:8080");
    assert_eq!(m.setting("upstream_listen"), "0.0.0.0:7070");
    assert_eq!(m.setting("admin_listen"), "0.0.0.0:9090");
    assert_eq!(m.setting("log_format"), "text");
    assert_eq!(
        m.setting("public_url"),
        "http://sb-switchboard.rt.svc.cluster.local"
    );
    assert_eq!(
        c["args"].as_sequence().unwrap(),
        &vec![
            Value::from("--config"),
            Value::from("/etc/switchboard/switchboard.toml")
        ]
    );

    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("admin"), "{probe}");
    }

    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    let pod = &m.deployment()["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert!(int(&pod["securityContext"]["runAsUser"]) > 0);
    assert_eq!(int(&m.deployment()["spec"]["replicas"]), 1);
    assert_drain_fits(&m);

    let client = m.named("Service", "sb-switchboard");
    assert_eq!(client["spec"]["type"].as_str(), Some("ClusterIP"));
    let ports = client["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(
        ports.len(),
        1,
        "only the client port is on the client Service"
    );
    assert_eq!(int(&ports[0]["port"]), 80);
    assert_eq!(ports[0]["targetPort"].as_str(), Some("client"));

    let upstream = m.named("Service", "sb-switchboard-upstream");
    assert_eq!(upstream["spec"]["clusterIP"].as_str(), Some("None"));
    // App servers keep their links to a replica that is not ready.
    assert_eq!(
        upstream["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true)
    );
    let ports = upstream["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(int(&ports[0]["port"]), 7070);
    assert_eq!(ports[0]["targetPort"].as_str(), Some("upstream"));
    assert_eq!(upstream["spec"]["selector"], client["spec"]["selector"]);

    assert_key_only_in_secret(&m, "sb-switchboard", &[TEST_KEY]);
    // No TLS: plain HTTP on a Service port named so, no Secret volumes.
    assert_eq!(ports_named(client), ["http"]);
    assert!(secret_mounts(&m).is_empty());
    assert!(
        tls_env(&m).is_empty(),
        "{:?}",
        m.container()["env"].as_sequence()
    );
    // One replica on the local bus: nothing about Redis anywhere.
    assert!(m.env("SWITCHBOARD_BUS").is_none());
    assert!(!m.config_file().contains("cluster_name"));
    assert!(!m.text.contains("redis"), "{}", m.text);
    // Unset optional settings leave the proxy's own defaults.
    assert!(
        !m.config_file().contains("stateful_reconnect"),
        "{}",
        m.config_file()
    );
    for kind in [
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "NetworkPolicy",
    ] {
        assert!(m.of_kind(kind).is_empty(), "{kind} is off by default");
    }
}

#[test]
fn optional_resources_render_when_enabled() {
    lint(&["full.yaml"]).unwrap();
    let m = Manifests::render(&["full.yaml"]);
    let second = "helm-test-key-second-0b1c2d3e4f";
    assert_key_only_in_secret(&m, "sb-switchboard", &[TEST_KEY, second]);
    assert_eq!(m.setting("log_format"), "json");
    assert_eq!(m.setting("public_url"), "https://rt.example.com");
    assert!(
        m.config_file()
            .contains("[hub_transports]\n\"chat\" = \"websockets,longpolling\""),
        "{}",
        m.config_file()
    );
    assert_drain_fits(&m);
    let pod = &m.deployment()["spec"]["template"]["spec"];
    assert_eq!(int(&pod["terminationGracePeriodSeconds"]), 38);

    // The existing Redis: its password from the Secret, substituted by
    // Kubernetes into the URL; cluster name and timeout in the file.
    assert_eq!(
        secret_ref(
            m.env("SWITCHBOARD_REDIS_PASSWORD")
                .expect("the password variable")
        ),
        ("redis-auth", "redis-password")
    );
    assert_eq!(
        literal(m.env("SWITCHBOARD_BUS").expect("SWITCHBOARD_BUS")),
        "redis://switchboard:$(SWITCHBOARD_REDIS_PASSWORD)@redis.data.svc.cluster.local:6380/2"
    );
    assert_defined_before(&m, "SWITCHBOARD_REDIS_PASSWORD", "SWITCHBOARD_BUS");
    assert_eq!(m.setting("cluster_name"), "rt-blue");
    assert_eq!(m.setting("bus_timeout"), "2s");
    assert!(!m.config_file().contains("redis://"), "{}", m.config_file());
    assert!(m.of_kind("Deployment").len() == 1, "no Redis deployed");
    // The autoscaler owns the replica count.
    assert!(m.deployment()["spec"].get("replicas").is_none());

    let client = m.named("Service", "sb-switchboard");
    assert_eq!(client["spec"]["type"].as_str(), Some("LoadBalancer"));
    assert_eq!(
        client["spec"]["loadBalancerSourceRanges"][0].as_str(),
        Some("203.0.113.0/24")
    );

    let ingress = m.one("Ingress");
    let notes = &ingress["metadata"]["annotations"];
    for key in ["proxy-read-timeout", "proxy-send-timeout"] {
        let timeout: i64 = notes[format!("nginx.ingress.kubernetes.io/{key}").as_str()]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            timeout > seconds(&m.setting("long_poll_timeout")),
            "{key} {timeout}"
        );
    }
    assert_eq!(
        notes["nginx.ingress.kubernetes.io/proxy-buffering"].as_str(),
        Some("off")
    );
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"].as_str(), Some("sb-switchboard"));
    assert_eq!(
        ingress["spec"]["rules"][0]["host"].as_str(),
        Some("rt.example.com")
    );
    assert_eq!(
        ingress["spec"]["tls"][0]["secretName"].as_str(),
        Some("rt-tls")
    );

    let hpa = m.one("HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"].as_str(),
        Some("sb-switchboard")
    );
    assert_eq!(
        (
            int(&hpa["spec"]["minReplicas"]),
            int(&hpa["spec"]["maxReplicas"])
        ),
        (2, 6)
    );

    let pdb = m.one("PodDisruptionBudget");
    assert_eq!(int(&pdb["spec"]["maxUnavailable"]), 1);

    let policy = m.one("NetworkPolicy");
    let rules = policy["spec"]["ingress"].as_sequence().unwrap();
    let upstream_rules: Vec<_> = rules
        .iter()
        .filter(|r| {
            r["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|p| p["port"].as_str() == Some("upstream"))
        })
        .collect();
    assert_eq!(upstream_rules.len(), 1, "{rules:?}");
    let from = upstream_rules[0]["from"]
        .as_sequence()
        .expect("the upstream port has a from list");
    assert_eq!(from.len(), 1);
    assert_eq!(
        from[0]["podSelector"]["matchLabels"]["app"].as_str(),
        Some("chat-server")
    );
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        m.deployment()["spec"]["selector"]["matchLabels"]
    );

    let monitor = m.one("ServiceMonitor");
    assert_eq!(
        monitor["metadata"]["labels"]["release"].as_str(),
        Some("prometheus")
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"));
    assert_eq!(endpoint["port"].as_str(), Some("admin"));
    // Exactly one Service (the admin one) matches the monitor's selector.
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap();
    let matching: Vec<_> = m
        .of_kind("Service")
        .into_iter()
        .filter(|s| {
            selector
                .iter()
                .all(|(k, v)| &s["metadata"]["labels"][k.as_str().unwrap()] == v)
        })
        .collect();
    assert_eq!(matching.len(), 1);
    assert_eq!(int(&matching[0]["spec"]["ports"][0]["port"]), 9090);
}

/// `name` and `key` of an environment variable's `secretKeyRef`.
fn secret_ref(var: &Value) -> (&str, &str) {
    assert!(var.get("value").is_none(), "{var:?} must not be a literal");
    let r = &var["valueFrom"]["secretKeyRef"];
    (
        r["name"].as_str().expect("a Secret name"),
        r["key"].as_str().expect("a key"),
    )
}

/// An environment variable's literal value.
fn literal(var: &Value) -> &str {
    var["value"]
        .as_str()
        .unwrap_or_else(|| panic!("{var:?} has no literal value"))
}

/// Kubernetes substitutes `$(first)` into `second` only when `first` comes
/// earlier in the list.
fn assert_defined_before(m: &Manifests, first: &str, second: &str) {
    let names: Vec<&str> = m.container()["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let at = |n: &str| names.iter().position(|x| *x == n).expect(n);
    assert!(at(first) < at(second), "{names:?}");
}

/// Whether the `matchLabels`-style `selector` selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .expect("a label map")
        .iter()
        .all(|(k, v)| &labels[k.as_str().unwrap()] == v)
}

#[test]
fn a_redis_deployed_with_the_chart_joins_the_replicas() {
    lint(&["redis-deployed.yaml"]).unwrap();
    let m = Manifests::render(&["redis-deployed.yaml"]);
    assert_eq!(int(&m.deployment()["spec"]["replicas"]), 3);
    assert_eq!(
        literal(m.env("SWITCHBOARD_BUS").unwrap()),
        "redis://:$(SWITCHBOARD_REDIS_PASSWORD)@sb-switchboard-redis:6379"
    );
    assert_eq!(
        secret_ref(m.env("SWITCHBOARD_REDIS_PASSWORD").unwrap()),
        ("bus-redis", "password")
    );
    assert_defined_before(&m, "SWITCHBOARD_REDIS_PASSWORD", "SWITCHBOARD_BUS");
    // The cluster name defaults to the release's full name.
    assert_eq!(m.setting("cluster_name"), "sb-switchboard");
    assert_eq!(m.setting("bus_timeout"), "5s");

    let redis = m.named("Deployment", "sb-switchboard-redis");
    assert_eq!(int(&redis["spec"]["replicas"]), 1);
    assert_eq!(redis["spec"]["strategy"]["type"].as_str(), Some("Recreate"));
    let pod = &redis["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    assert!(
        c["image"].as_str().unwrap().starts_with("redis:"),
        "the official image: {c:?}"
    );
    // It requires the same password, from the same Secret.
    let command: Vec<&str> = c["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = command.iter().position(|a| *a == "--requirepass").unwrap();
    assert_eq!(command[at + 1], "$(REDIS_PASSWORD)");
    let password = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("REDIS_PASSWORD"))
        .unwrap();
    assert_eq!(secret_ref(password), ("bus-redis", "password"));
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );

    // Its Service selects the Redis pod and nothing of the proxy's; the
    // proxy's Services and Deployment never select the Redis pod.
    let redis_labels = &pod["metadata"]["labels"];
    let proxy_labels = &m.deployment()["spec"]["template"]["metadata"]["labels"];
    let service = m.named("Service", "sb-switchboard-redis");
    assert_eq!(int(&service["spec"]["ports"][0]["port"]), 6379);
    assert!(selects(&service["spec"]["selector"], redis_labels));
    assert!(!selects(&service["spec"]["selector"], proxy_labels));
    for name in ["sb-switchboard", "sb-switchboard-upstream"] {
        let selector = &m.named("Service", name)["spec"]["selector"];
        assert!(!selects(selector, redis_labels), "{name} selects Redis");
    }
    assert!(!selects(
        &m.deployment()["spec"]["selector"]["matchLabels"],
        redis_labels
    ));
    // Only the proxy's pods may reach it.
    let policy = m.named("NetworkPolicy", "sb-switchboard-redis");
    assert!(selects(
        &policy["spec"]["podSelector"]["matchLabels"],
        redis_labels
    ));
    let from = &policy["spec"]["ingress"][0]["from"];
    assert_eq!(from.as_sequence().unwrap().len(), 1);
    assert!(selects(
        &from[0]["podSelector"]["matchLabels"],
        proxy_labels
    ));
}

#[test]
fn a_redis_url_from_a_secret_is_referenced_not_rendered() {
    let m = Manifests::render_with(
        &["defaults.yaml"],
        &["replicaCount=2,bus.type=redis,bus.redis.urlSecret.name=bus-url"],
    );
    assert_eq!(
        secret_ref(m.env("SWITCHBOARD_BUS").unwrap()),
        ("bus-url", "url")
    );
    assert!(m.env("SWITCHBOARD_REDIS_PASSWORD").is_none());
    assert!(m.of_kind("Deployment").len() == 1, "no Redis deployed");

    // A plain URL without a password goes into the variable as it is.
    let m = Manifests::render_with(
        &["defaults.yaml"],
        &["bus.type=redis,bus.redis.url=redis://redis.data:6379/1"],
    );
    assert_eq!(
        literal(m.env("SWITCHBOARD_BUS").unwrap()),
        "redis://redis.data:6379/1"
    );

    // A Redis Cluster by two of its nodes, with the password from a Secret.
    let m = Manifests::render_with(
        &["defaults.yaml"],
        &[
            "bus.type=redis,bus.redis.url=redis+cluster://r-0.r:6379\\,r-1.r:6379,bus.redis.passwordSecret.name=redis-auth",
        ],
    );
    assert_eq!(
        literal(m.env("SWITCHBOARD_BUS").unwrap()),
        "redis+cluster://:$(SWITCHBOARD_REDIS_PASSWORD)@r-0.r:6379,r-1.r:6379"
    );
}

#[test]
fn bus_settings_the_chart_cannot_use_are_refused() {
    for (set, why) in [
        ("bus.type=redis", "needs a Redis"),
        (
            "bus.type=redis,bus.redis.host=a,bus.redis.deploy.enabled=true",
            "bus.redis.host, bus.redis.deploy.enabled",
        ),
        ("bus.redis.deploy.enabled=true", "set bus.type to redis"),
    ] {
        let err = template(&["defaults.yaml"], &[set]).expect_err(set);
        assert!(err.contains(why), "{set}: {err}");
    }
}

#[test]
fn existing_secret_is_referenced_and_none_created() {
    lint(&["existing-secret.yaml"]).unwrap();
    let m = Manifests::render_with(
        &["existing-secret.yaml"],
        &["config.statefulReconnect=false,config.statefulReconnectBuffer=5000"],
    );
    assert_eq!(m.setting("stateful_reconnect"), "false");
    assert_eq!(m.setting("stateful_reconnect_buffer"), "5000");
    assert!(
        m.of_kind("Secret").is_empty(),
        "no Secret when existingSecret is set"
    );
    let env = m.container()["env"].as_sequence().unwrap();
    let key = env
        .iter()
        .find(|v| v["name"].as_str() == Some("SWITCHBOARD_ACCESS_KEY"))
        .expect("SWITCHBOARD_ACCESS_KEY");
    let reference = &key["valueFrom"]["secretKeyRef"];
    assert_eq!(reference["name"].as_str(), Some("switchboard-keys"));
    assert_eq!(reference["key"].as_str(), Some("keys"));
    let client = m.named("Service", "sb-switchboard");
    assert_eq!(client["spec"]["type"].as_str(), Some("NodePort"));
    assert_eq!(int(&client["spec"]["ports"][0]["nodePort"]), 30080);
}

#[test]
fn invalid_values_fail_the_schema() {
    let err = template(&["invalid.yaml"], &[]).unwrap_err();
    assert!(err.contains("/replicaCount"), "{err}");
    assert!(err.contains("/service/type"), "{err}");
    let err = lint(&["invalid.yaml"]).unwrap_err();
    assert!(err.contains("/replicaCount"), "{err}");

    // The chart's own defaults carry no key: it must be given.
    let err = template(&[], &[]).unwrap_err();
    assert!(err.contains("/auth/accessKeys"), "{err}");

    for (set, path) in [
        ("ports.upstream=70000", "/ports/upstream"),
        ("tls.reloadInterval=0s", "/tls/reloadInterval"),
        ("tls.existingSecret=Client_TLS", "/tls/existingSecret"),
        ("upstreamTls.clientCaKey=a/b", "/upstreamTls/clientCaKey"),
        ("service.port=0", "/service/port"),
        ("config.logFormat=xml", "/config/logFormat"),
        ("auth.accessKeys={short}", "/auth/accessKeys/0"),
        ("config.clientTimeout=30 seconds", "/config/clientTimeout"),
        (
            "config.transports={websockets,pigeon}",
            "/config/transports/1",
        ),
        ("replicaCount=two", "/replicaCount"),
        ("unknownSetting=1", "unknownSetting"),
        // Several replicas need the bus.
        ("replicaCount=3", "/bus/type"),
        ("autoscaling.enabled=true", "/bus/type"),
        ("bus.type=kafka", "/bus/type"),
        // A password never goes into the values in plain text.
        (
            "bus.type=redis,bus.redis.url=redis://:hunter2@redis:6379",
            "/bus/redis/url",
        ),
        ("bus.clusterName=blue team", "/bus/clusterName"),
    ] {
        let err = template(&["defaults.yaml"], &[set]).expect_err(set);
        assert!(err.contains(path), "{set}: {err}");
    }
}

#[test]
fn a_grace_period_shorter_than_the_drain_is_refused() {
    let err = template(&["defaults.yaml"], &["terminationGracePeriodSeconds=10"]).unwrap_err();
    assert!(err.contains("terminationGracePeriodSeconds"), "{err}");
    let ok = template(&["defaults.yaml"], &["terminationGracePeriodSeconds=11"]);
    assert!(ok.is_ok(), "{ok:?}");
}

/// The rendered bus setting and config file bring a real proxy onto a real
/// Redis: it turns ready only once connected to the bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_joins_redis_with_the_rendered_bus_settings() {
    let redis = Redis::start().await;
    let port = redis.port().to_string();
    let m = Manifests::render_with(
        &["defaults.yaml"],
        &[&format!(
            "replicaCount=2,bus.type=redis,bus.clusterName=helm-live,bus.redis.host=127.0.0.1,bus.redis.port={port}"
        )],
    );
    let bus = literal(m.env("SWITCHBOARD_BUS").unwrap()).to_owned();
    assert_eq!(bus, format!("redis://127.0.0.1:{port}/0"));
    let path =
        std::env::temp_dir().join(format!("switchboard-helm-bus-{}.toml", std::process::id()));
    std::fs::write(&path, m.config_file()).unwrap();
    let proxy = Proxy::start_with(&["--config", path.to_str().unwrap(), "--bus", &bus]).await;
    std::fs::remove_file(&path).ok();
    let metrics = http::client()
        .get(format!("{}/metrics", proxy.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchboard_bus_connected") && l.ends_with(" 1")),
        "{metrics}"
    );
}

/// The proxy starts with the TOML file the ConfigMap holds (every key in it
/// is one the proxy knows), and its settings take effect: the per-hub
/// transport list reaches negotiate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_runs_with_the_rendered_config_file() {
    let m = Manifests::render_with(
        &["full.yaml"],
        &["config.hubTransports.testhub={longpolling}"],
    );
    let path = std::env::temp_dir().join(format!("switchboard-helm-{}.toml", std::process::id()));
    std::fs::write(&path, m.config_file()).unwrap();
    // The harness's flags (loopback ports, its key and URL) override the
    // file's listen addresses and public URL; everything else comes from it.
    let proxy = Proxy::start_with(&["--config", path.to_str().unwrap()]).await;
    let app = AppServer::testhub(&proxy, None).await;
    let http = http::client();
    let redirect = signalr::redirect_from_app(&http, &app.url(), "testhub", None)
        .await
        .unwrap();
    let negotiation =
        signalr::negotiate_at_proxy(&http, &redirect.url, Some(&redirect.access_token))
            .await
            .unwrap();
    std::fs::remove_file(&path).ok();
    let offered: Vec<_> = negotiation
        .available_transports
        .iter()
        .map(|t| t["transport"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(offered, ["LongPolling"]);
}

/// The client Service's port names.
fn ports_named(service: &Value) -> Vec<&str> {
    service["spec"]["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| p["name"].as_str().expect("a port name"))
        .collect()
}

/// The proxy container's TLS settings: `SWITCHBOARD_TLS_*` and
/// `SWITCHBOARD_UPSTREAM_*` variables, name and literal value.
fn tls_env(m: &Manifests) -> Vec<(&str, &str)> {
    m.container()["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .filter_map(|v| {
            let name = v["name"].as_str()?;
            (name.starts_with("SWITCHBOARD_TLS") || name.starts_with("SWITCHBOARD_UPSTREAM_"))
                .then(|| (name, literal(v)))
        })
        .collect()
}

/// The proxy container's mounts of Secret volumes: (mount path, Secret
/// name), after checking each mounts the whole Secret read-only. A `subPath`
/// mount would never see the Secret's updates, so renewed certificates
/// would not reach the proxy.
fn secret_mounts(m: &Manifests) -> Vec<(String, String)> {
    let volumes = m.deployment()["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes");
    m.container()["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .filter_map(|mount| {
            let name = mount["name"].as_str().expect("a volume name");
            let volume = volumes
                .iter()
                .find(|v| v["name"].as_str() == Some(name))
                .unwrap_or_else(|| panic!("no volume {name}"));
            let secret = volume.get("secret")?;
            assert!(mount.get("subPath").is_none(), "{mount:?} uses subPath");
            assert!(mount.get("subPathExpr").is_none(), "{mount:?}");
            assert!(
                secret.get("items").is_none(),
                "the whole Secret: {volume:?}"
            );
            assert_eq!(mount["readOnly"].as_bool(), Some(true), "{mount:?}");
            Some((
                mount["mountPath"].as_str().expect("a path").to_owned(),
                secret["secretName"].as_str().expect("a Secret").to_owned(),
            ))
        })
        .collect()
}

/// The Secret (and key in it) that `path` is read from, by way of the
/// mounts.
fn secret_file<'a>(mounts: &'a [(String, String)], path: &'a str) -> (&'a str, &'a str) {
    mounts
        .iter()
        .find_map(|(dir, secret)| {
            let key = path.strip_prefix(dir.as_str())?.strip_prefix('/')?;
            Some((secret.as_str(), key))
        })
        .unwrap_or_else(|| panic!("{path} is on no Secret volume: {mounts:?}"))
}

#[test]
fn tls_secrets_are_mounted_whole_and_named_in_the_environment() {
    lint(&["tls.yaml"]).unwrap();
    let m = Manifests::render(&["tls.yaml"]);
    let mounts = secret_mounts(&m);
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    let env = tls_env(&m);
    let file = |name: &str| {
        let path = env
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
            .1;
        secret_file(&mounts, path)
    };
    assert_eq!(file("SWITCHBOARD_TLS_CERT"), ("rt-client-tls", "tls.crt"));
    assert_eq!(file("SWITCHBOARD_TLS_KEY"), ("rt-client-tls", "tls.key"));
    assert_eq!(
        file("SWITCHBOARD_UPSTREAM_TLS_CERT"),
        ("rt-upstream-tls", "tls.crt")
    );
    assert_eq!(
        file("SWITCHBOARD_UPSTREAM_TLS_KEY"),
        ("rt-upstream-tls", "tls.key")
    );
    assert_eq!(
        file("SWITCHBOARD_UPSTREAM_CLIENT_CA"),
        ("rt-app-server-ca", "bundle.pem")
    );
    assert_eq!(
        literal(m.env("SWITCHBOARD_TLS_RELOAD_INTERVAL").unwrap()),
        "10s"
    );
    // Mounted beside the ConfigMap's directory, not inside it.
    for (dir, _) in &mounts {
        assert!(!dir.starts_with("/etc/switchboard/"), "{dir}");
    }

    // Neither certificates nor their paths go through a ConfigMap.
    for map in m.of_kind("ConfigMap") {
        let text = serde_norway::to_string(map).unwrap();
        for needle in ["BEGIN", "tls_", "client_ca", "/etc/switchboard-tls"] {
            assert!(!text.contains(needle), "{needle} in a ConfigMap:\n{text}");
        }
    }
    // The chart creates no Secret for them: they are the operator's.
    for secret in m.of_kind("Secret") {
        assert_eq!(secret["metadata"]["name"].as_str(), Some("sb-switchboard"));
    }

    // The probes stay on the admin port, over plain HTTP.
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &m.container()[probe]["httpGet"];
        assert_eq!(get["port"].as_str(), Some("admin"), "{probe}");
        assert!(
            get.get("scheme").is_none_or(|s| s.as_str() == Some("HTTP")),
            "{probe}: {get:?}"
        );
    }

    // Clients and the Ingress see https.
    assert_eq!(
        m.setting("public_url"),
        "https://sb-switchboard.rt.svc.cluster.local"
    );
    let client = m.named("Service", "sb-switchboard");
    assert_eq!(ports_named(client), ["https"]);
    assert_eq!(int(&client["spec"]["ports"][0]["port"]), 443);
    assert_eq!(
        client["spec"]["ports"][0]["appProtocol"].as_str(),
        Some("https")
    );
    let ingress = m.one("Ingress");
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"].as_str(),
        Some("HTTPS")
    );
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"]
            .as_str(),
        Some("https")
    );

    // An explicit port is kept, and named in the default public URL.
    let m = Manifests::render_with(&["tls.yaml"], &["service.port=8443"]);
    assert_eq!(
        m.setting("public_url"),
        "https://sb-switchboard.rt.svc.cluster.local:8443"
    );
}

#[test]
fn a_client_ca_in_the_upstream_secret_needs_no_volume_of_its_own() {
    let m = Manifests::render_with(
        &["tls.yaml"],
        &["upstreamTls.clientCaSecret=rt-upstream-tls,upstreamTls.clientCaKey=ca.crt"],
    );
    let mounts = secret_mounts(&m);
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    let ca = literal(m.env("SWITCHBOARD_UPSTREAM_CLIENT_CA").unwrap());
    assert_eq!(secret_file(&mounts, ca), ("rt-upstream-tls", "ca.crt"));

    // Upstream TLS alone: no client CA, and no client-port TLS either.
    let m = Manifests::render_with(
        &["defaults.yaml"],
        &["upstreamTls.existingSecret=rt-upstream-tls"],
    );
    let names: Vec<&str> = tls_env(&m).iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "SWITCHBOARD_UPSTREAM_TLS_CERT",
            "SWITCHBOARD_UPSTREAM_TLS_KEY",
            "SWITCHBOARD_TLS_RELOAD_INTERVAL"
        ]
    );
    assert_eq!(ports_named(m.named("Service", "sb-switchboard")), ["http"]);
}

#[test]
fn the_schema_refuses_a_client_ca_without_upstream_tls() {
    let err = template(&["defaults.yaml"], &["upstreamTls.clientCaSecret=rt-ca"]).unwrap_err();
    assert!(err.contains("/upstreamTls/existingSecret"), "{err}");
    // Client-port TLS does not stand in for it.
    let err = template(
        &["defaults.yaml"],
        &["tls.existingSecret=rt-tls,upstreamTls.clientCaSecret=rt-ca"],
    )
    .unwrap_err();
    assert!(err.contains("/upstreamTls/existingSecret"), "{err}");
    let err = lint_with(&["tls.yaml"], &["upstreamTls.existingSecret="]).unwrap_err();
    assert!(err.contains("/upstreamTls/existingSecret"), "{err}");
}

/// A throwaway CA for the live TLS test.
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        Self {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// A leaf for `name`: certificate PEM, key PEM, certificate DER.
    fn leaf(&self, name: &str, usage: rcgen::ExtendedKeyUsagePurpose) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    /// A TLS client trusting this CA, offering `alpn`, with `identity`
    /// (certificate PEM, key PEM) when given.
    fn connector(&self, alpn: &[u8], identity: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
    }
}

/// The certificate `addr` serves to a client of `connector` asking for
/// `name`.
async fn served_certificate(
    connector: &tokio_rustls::TlsConnector,
    addr: &str,
    name: &str,
) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Whether `addr` refuses an HTTP/2 connection from a client of
/// `connector`: with TLS 1.3 a refused client certificate surfaces after
/// the handshake, as an alert instead of the server's SETTINGS.
async fn h2_refused(connector: &tokio_rustls::TlsConnector, addr: &str, name: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let Ok(mut tls) = connector.connect(name, tcp).await else {
        return true;
    };
    // The client preface and an empty SETTINGS frame.
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    if tls.write_all(&hello).await.is_err() || tls.flush().await.is_err() {
        return true;
    }
    let mut frame = [0u8; 9];
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut frame))
        .await
        .expect("the upstream port answers or refuses within 10 s");
    match read {
        // A frame header: type 4 is SETTINGS.
        Ok(n) if n > 0 => {
            assert!(n < 4 || frame[3] == 4, "not SETTINGS: {frame:?}");
            false
        }
        _ => true,
    }
}

/// The rendered TLS environment, turned into the proxy's flags, over files
/// laid out as the Secret volumes would be: the proxy starts, serves each
/// Secret's certificate on its own port, and links only app servers with a
/// client certificate from the CA bundle's Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_serves_the_rendered_tls_secrets() {
    let m = Manifests::render(&["tls.yaml"]);
    let ca = TestCa::new();
    let client_host = "rt.example.com";
    let upstream_host = "sb-switchboard-upstream.rt.svc.cluster.local";
    let (client_pem, client_key, client_der) =
        ca.leaf(client_host, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let (upstream_pem, upstream_key, upstream_der) =
        ca.leaf(upstream_host, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let (app_pem, app_key, _) = ca.leaf("app.test", rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let ca_pem = ca.issuer.pem();
    let secrets: &[(&str, &str, &str)] = &[
        ("rt-client-tls", "tls.crt", &client_pem),
        ("rt-client-tls", "tls.key", &client_key),
        ("rt-upstream-tls", "tls.crt", &upstream_pem),
        ("rt-upstream-tls", "tls.key", &upstream_key),
        ("rt-app-server-ca", "bundle.pem", &ca_pem),
    ];

    // The pod's file system under a private root.
    let root = std::env::temp_dir().join(format!("switchboard-helm-tls-{}", std::process::id()));
    let mounts = secret_mounts(&m);
    for (dir, secret) in &mounts {
        let dir = root.join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        for (_, key, contents) in secrets.iter().filter(|(s, _, _)| s == secret) {
            std::fs::write(dir.join(key), contents).unwrap();
        }
    }
    let config = root.join("switchboard.toml");
    std::fs::write(&config, m.config_file()).unwrap();

    // SWITCHBOARD_UPSTREAM_TLS_CERT is --upstream-tls-cert, and so on.
    let mut args = vec!["--config".to_owned(), config.display().to_string()];
    for (name, value) in tls_env(&m) {
        let flag = name
            .strip_prefix("SWITCHBOARD_")
            .unwrap()
            .to_lowercase()
            .replace('_', "-");
        args.push(format!("--{flag}"));
        args.push(match value.strip_prefix('/') {
            Some(path) => root.join(path).display().to_string(),
            None => value.to_owned(),
        });
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = Proxy::start_with(&args).await;

    let client_addr = proxy.url().trim_start_matches("https://").to_owned();
    let served =
        served_certificate(&ca.connector(b"http/1.1", None), &client_addr, client_host).await;
    assert!(served == client_der, "the client port serves rt-client-tls");

    let upstream_addr = proxy
        .server_endpoint()
        .trim_start_matches("https://")
        .to_owned();
    let served = served_certificate(
        &ca.connector(b"h2", Some((&app_pem, &app_key))),
        &upstream_addr,
        upstream_host,
    )
    .await;
    assert!(
        served == upstream_der,
        "the upstream port serves rt-upstream-tls"
    );
    assert!(
        h2_refused(&ca.connector(b"h2", None), &upstream_addr, upstream_host).await,
        "an app server without a client certificate was let in"
    );
    assert!(
        !h2_refused(
            &ca.connector(b"h2", Some((&app_pem, &app_key))),
            &upstream_addr,
            upstream_host
        )
        .await,
        "the CA's app server was refused"
    );
    std::fs::remove_dir_all(&root).ok();
}
