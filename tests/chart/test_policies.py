"""Our own policies, checked over what the chart renders (default values and every ci/ set).

Each test reads the rendered objects, so a template change that breaks a rule fails here before
any cluster sees it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest
import yaml

from services.gateway.config import Config as GatewayConfig
from services.recognizer.config import Config as RecognizerConfig
from services.recorder.config import Config as RecorderConfig
from tests.chart.conftest import PROFILES, by_kind, one, pod_specs, profile_id, render
from tests.helpers import ROOT

SERVICES = {"gateway": GatewayConfig, "recognizer": RecognizerConfig, "recorder": RecorderConfig}


@pytest.fixture(scope="module", params=PROFILES, ids=profile_id)
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_pod_runs_with_least_privilege(objects: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(objects):
        assert spec["automountServiceAccountToken"] is False, name
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["runAsUser"] > 0, name
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in _containers(spec):
            security = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in security["capabilities"], where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            assert "ephemeral-storage" in resources["limits"], where


def test_writable_paths_are_emptydirs_or_the_data_volume(objects: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(objects):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in _containers(spec):
            for mount in container.get("volumeMounts", []):
                volume = volumes.get(mount["name"])
                if volume is None:  # a volumeClaimTemplate: Cassandra's data
                    assert mount["mountPath"] == "/var/lib/cassandra", name
                    continue
                assert "emptyDir" in volume or "configMap" in volume, f"{name}: {mount['name']}"
                if "emptyDir" in volume:
                    assert volume["emptyDir"].get("sizeLimit"), f"{name}: {mount['name']} has no sizeLimit"


def test_grpc_services_use_native_grpc_probes_with_real_health_states(objects: list[dict[str, Any]]) -> None:
    for component in ("recognizer", "recorder"):
        deployment = one(objects, "Deployment", f"digits-{component}")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        port = container["ports"][0]["containerPort"]
        assert container["ports"][0]["name"] == "grpc"
        # Readiness asks the overall health (NOT_SERVING while the model loads or Cassandra is
        # away, and from the moment the service drains); liveness only whether the process answers.
        assert container["readinessProbe"]["grpc"] == {"port": port}
        assert container["startupProbe"]["grpc"] == {"port": port}
        assert container["livenessProbe"]["grpc"] == {"port": port, "service": "liveness"}


def test_every_stopping_service_drains(objects: list[dict[str, Any]]) -> None:
    for component in SERVICES:
        deployment = one(objects, "Deployment", f"digits-{component}")
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        delay = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = {e["name"]: e.get("value") for e in container["env"]}[f"{component.upper()}_GRACE_SECONDS"]
        assert 0 < delay < spec["terminationGracePeriodSeconds"]
        assert float(grace) + delay <= spec["terminationGracePeriodSeconds"]
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_gateway_readiness_does_not_depend_on_its_dependencies(objects: list[dict[str, Any]]) -> None:
    container = one(objects, "Deployment", "digits-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["timeoutSeconds"] <= 1


def test_environment_and_ports_are_the_ones_the_services_read(
    objects: list[dict[str, Any]], default_objects: list[dict[str, Any]]
) -> None:
    """One source of truth: every variable the chart sets is a field of the service's config,
    and every port it names is the port the service listens on."""
    for component, config_class in SERVICES.items():
        prefix = f"{component.upper()}_"
        fields = {f"{prefix}{f.name.upper()}" for f in dataclasses.fields(config_class)}
        container = one(objects, "Deployment", f"digits-{component}")["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        unknown = set(env) - fields
        assert not unknown, f"{component} is given variables it does not read: {unknown}"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        serving = "http" if component == "gateway" else "grpc"
        assert env[f"{prefix}PORT"]["value"] == str(ports[serving])
        assert env[f"{prefix}METRICS_PORT"]["value"] == str(ports["metrics"])
    # With the default values, the chart's ports are the services' own defaults.
    for component, config_class in SERVICES.items():
        config = config_class()
        container = one(default_objects, "Deployment", f"digits-{component}")["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == config.metrics_port
        assert ports["http" if component == "gateway" else "grpc"] == config.port


def test_migration_job_reads_only_recorder_settings(objects: list[dict[str, Any]]) -> None:
    job = one(objects, "Job", "digits-migrate")
    container = job["spec"]["template"]["spec"]["containers"][0]
    fields = {f"RECORDER_{f.name.upper()}" for f in dataclasses.fields(RecorderConfig)}
    assert {e["name"] for e in container["env"]} <= fields
    assert container["command"] == ["python", "-m", "services.recorder.migrate"]
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert hooks == ["post-install", "post-upgrade"]


def _env(workload: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in workload["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}


def _service_port(objects: list[dict[str, Any]], host: str, port: str) -> tuple[dict[str, Any], int]:
    """The Service a `name.namespace.svc.cluster.local` host names, and the port number given."""
    name, namespace, *_ = host.split(".")
    assert namespace == "digits" and host.endswith(".svc.cluster.local"), host
    return one(objects, "Service", name), int(port)


def test_service_addresses_point_at_the_charts_services(objects: list[dict[str, Any]]) -> None:
    gateway = _env(one(objects, "Deployment", "digits-gateway"))
    for variable, component in (("GATEWAY_RECOGNIZER_ADDRESS", "recognizer"), ("GATEWAY_RECORDER_ADDRESS", "recorder")):
        target = gateway[variable]
        assert target.startswith("dns:///"), "round_robin needs every address of the name"
        service, port = _service_port(objects, *target.removeprefix("dns:///").split(":"))
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == component
        assert port in {p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"}
    # Per-call balancing over recognizer pods needs DNS to answer with the pods themselves.
    assert one(objects, "Service", "digits-recognizer")["spec"]["clusterIP"] == "None"
    for workload in (one(objects, "Deployment", "digits-recorder"), one(objects, "Job", "digits-migrate")):
        env = _env(workload)
        service, port = _service_port(objects, env["RECORDER_CASSANDRA_HOSTS"], env["RECORDER_CASSANDRA_PORT"])
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == "cassandra"
        assert port in {p["port"] for p in service["spec"]["ports"]}
        rackdc = one(objects, "ConfigMap", "digits-cassandra")["data"]["cassandra-rackdc.properties"]
        assert f"dc={env['RECORDER_LOCAL_DATACENTER']}" in rackdc.splitlines()


def test_passwords_keys_and_tokens_come_only_from_secrets(objects: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(objects):
        for container in _containers(spec):
            for variable in container.get("env", []):
                secret = ("PASSWORD" in variable["name"] or variable["name"].endswith(("_TOKEN_KEY", "_ADMIN_TOKEN")))
                if secret:
                    assert "value" not in variable, f"{name}: {variable['name']} is a literal"
                    assert "secretKeyRef" in variable["valueFrom"], name


def test_the_admin_token_is_generated_or_taken_from_the_operators_secret() -> None:
    generated = render()
    secret = one(generated, "Secret", "digits-recorder")
    assert len(base64.b64decode(secret["data"]["admin-token"])) >= 32
    ref = _env_refs(one(generated, "Deployment", "digits-recorder"))["RECORDER_ADMIN_TOKEN"]
    assert ref == {"name": "digits-recorder", "key": "admin-token"}
    own = render(None, "recorder.auth.existingSecret=ops-tokens", "recorder.auth.existingSecretKey=digits-admin")
    assert "admin-token" not in one(own, "Secret", "digits-recorder")["data"]
    ref = _env_refs(one(own, "Deployment", "digits-recorder"))["RECORDER_ADMIN_TOKEN"]
    assert ref == {"name": "ops-tokens", "key": "digits-admin"}


def _env_refs(workload: dict[str, Any]) -> dict[str, dict[str, str]]:
    container = workload["spec"]["template"]["spec"]["containers"][0]
    return {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"] if "secretKeyRef" in v.get("valueFrom", {})}


def test_model_version_label_is_the_committed_models() -> None:
    version = json.loads((ROOT / "services/recognizer/model/model.json").read_text())["version"]
    deployment = one(render(), "Deployment", "digits-recognizer")
    assert deployment["spec"]["template"]["metadata"]["labels"]["digits/model-version"] == version


def test_services_select_their_pods_and_name_real_ports(objects: list[dict[str, Any]]) -> None:
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for service in by_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        matches = [w for w in workloads if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matches) == 1, f"{service['metadata']['name']} selects {len(matches)} workloads"
        port_names = {p["name"] for c in matches[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]


def test_deployments_spread_over_zones_and_nodes(objects: list[dict[str, Any]]) -> None:
    for deployment in by_kind(objects, "Deployment"):
        keys = {c["topologyKey"] for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_each_service_has_a_pdb_and_the_scalable_ones_an_hpa(default_objects: list[dict[str, Any]]) -> None:
    pdbs = {p["metadata"]["name"]: p for p in by_kind(default_objects, "PodDisruptionBudget")}
    assert set(pdbs) == {"digits-gateway", "digits-recognizer", "digits-recorder", "digits-cassandra"}
    assert pdbs["digits-cassandra"]["spec"]["maxUnavailable"] == 1
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind(default_objects, "HorizontalPodAutoscaler")}
    assert hpas == {"digits-gateway", "digits-recognizer"}
    for deployment in by_kind(default_objects, "Deployment"):
        # A Deployment under an HPA leaves `replicas` to it, so an upgrade does not reset the scale.
        assert ("replicas" in deployment["spec"]) == (deployment["metadata"]["name"] not in hpas)


# ---- Cassandra


def _cassandra(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "StatefulSet", "digits-cassandra")


def _cassandra_yaml(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(one(objects, "ConfigMap", "digits-cassandra")["data"]["cassandra.yaml"])


def test_cassandra_defaults_three_nodes_one_per_machine(default_objects: list[dict[str, Any]]) -> None:
    statefulset = _cassandra(default_objects)
    assert statefulset["spec"]["replicas"] == 3
    anti = statefulset["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "cassandra"
    assert statefulset["spec"]["podManagementPolicy"] == "OrderedReady"


def test_small_profile_prefers_rather_than_requires_separate_nodes() -> None:
    small = render(next(p for p in PROFILES if p and p.stem == "values-kind-small"))
    anti = _cassandra(small)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert _cassandra(small)["spec"]["replicas"] == 1


def test_cassandra_seeds_are_stable_pod_names_that_resolve_before_ready(objects: list[dict[str, Any]]) -> None:
    config = _cassandra_yaml(objects)
    seeds = config["seed_provider"][0]["parameters"][0]["seeds"].split(",")
    replicas = _cassandra(objects)["spec"]["replicas"]
    assert 1 <= len(seeds) <= replicas
    for i, seed in enumerate(seeds):
        assert seed == f"digits-cassandra-{i}.digits-cassandra-headless.digits.svc.cluster.local:7000"
    headless = one(objects, "Service", "digits-cassandra-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert _cassandra(objects)["spec"]["serviceName"] == "digits-cassandra-headless"
    # The init container waits until the names it needs resolve: no "no seeds" start.
    prepare = _cassandra(objects)["spec"]["template"]["spec"]["initContainers"][0]
    assert "getent hosts" in prepare["command"][-1]


def test_cassandra_acknowledges_only_what_is_on_disk(objects: list[dict[str, Any]]) -> None:
    config = _cassandra_yaml(objects)
    assert config["commitlog_sync"] in ("group", "batch")
    assert config["authenticator"] == "PasswordAuthenticator"
    assert config["authorizer"] == "CassandraAuthorizer"


def test_cassandra_probes_drain_and_heap(objects: list[dict[str, Any]]) -> None:
    spec = _cassandra(objects)["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert "UN" in container["readinessProbe"]["exec"]["command"][-1]
    assert "${POD_IP}" in container["readinessProbe"]["exec"]["command"][-1]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["nodetool", "drain"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    limit = container["resources"]["limits"]["memory"]
    mib = int(limit[:-2]) * (1024 if limit.endswith("Gi") else 1)
    heap = int(env["MAX_HEAP_SIZE"].removesuffix("M"))
    assert heap == min(mib // 2, 8192)
    assert container["command"] == ["cassandra", "-f"]  # not the entrypoint that rewrites the config
    assert "@sha256:" in container["image"]


def test_replication_factor_never_exceeds_the_ring(objects: list[dict[str, Any]]) -> None:
    job = one(objects, "Job", "digits-migrate")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert int(env["RECORDER_REPLICATION_FACTOR"]) <= _cassandra(objects)["spec"]["replicas"]
    assert int(env["RECORDER_AUTH_REPLICATION_FACTOR"]) == _cassandra(objects)["spec"]["replicas"]


# ---- NetworkPolicies

# The whole allowed graph: (from, to, port). "ingress", "prometheus" and "dns" are peers outside
# the release; everything else is a component of it.
EXPECTED_GRAPH = {
    ("ingress", "gateway", 8080),
    ("gateway", "recognizer", 50051),
    ("gateway", "recorder", 50052),
    ("recorder", "cassandra", 9042),
    ("migrate", "cassandra", 9042),
    ("cassandra", "cassandra", 7000),
    ("prometheus", "gateway", 9100),
    ("prometheus", "recognizer", 9101),
    ("prometheus", "recorder", 9102),
    *{(c, "dns", 53) for c in ("gateway", "recognizer", "recorder", "migrate", "cassandra")},
}
COMPONENTS = ("gateway", "recognizer", "recorder", "migrate", "cassandra")


def _peer(rule_peer: dict[str, Any], values_ingress_ns: str, values_prometheus_ns: str) -> set[str]:
    namespace = rule_peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
    if namespace == values_ingress_ns:
        return {"ingress"}
    if namespace == values_prometheus_ns:
        return {"prometheus"}
    if namespace == "kube-system":
        return {"dns"}
    labels = rule_peer["podSelector"]["matchLabels"]
    assert labels["app.kubernetes.io/instance"] == "digits"
    return {labels["app.kubernetes.io/component"]}


def _selected(policy: dict[str, Any]) -> set[str]:
    labels = policy["spec"]["podSelector"]["matchLabels"]
    if "app.kubernetes.io/component" in labels:
        return {labels["app.kubernetes.io/component"]}
    assert labels == {"app.kubernetes.io/name": "digits", "app.kubernetes.io/instance": "digits"}
    return set(COMPONENTS)  # the release-wide default-deny policy


def allowed_graph(objects: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """What the policies let through, as Kubernetes evaluates them: a connection between two of
    our pods needs an egress rule of the source and an ingress rule of the destination; from or
    to an outside peer, only our side's rule. Every pod must be selected by some policy of each
    type, or it would be open."""
    ingress: set[tuple[str, str, int]] = set()
    egress: set[tuple[str, str, int]] = set()
    isolated_in: set[str] = set()
    isolated_out: set[str] = set()
    for policy in by_kind(objects, "NetworkPolicy"):
        selected = _selected(policy)
        types = policy["spec"]["policyTypes"]
        if "Ingress" in types:
            isolated_in |= selected
        if "Egress" in types:
            isolated_out |= selected
        for rule in policy["spec"].get("ingress", []):
            sources = set().union(*(_peer(p, "ingress-nginx", "monitoring") for p in rule["from"]))
            for port in rule["ports"]:
                ingress |= {(s, d, port["port"]) for s in sources for d in selected}
        for rule in policy["spec"].get("egress", []):
            targets = set().union(*(_peer(p, "ingress-nginx", "monitoring") for p in rule["to"]))
            for port in rule["ports"]:
                egress |= {(s, t, port["port"]) for s in selected for t in targets}
    assert isolated_in == isolated_out == set(COMPONENTS), "a pod without a policy is open"
    inside = set(COMPONENTS)
    return {
        *{(s, d, p) for (s, d, p) in ingress if s not in inside},
        *{(s, d, p) for (s, d, p) in egress if d not in inside},
        *({e for e in ingress if e[0] in inside} & {e for e in egress if e[1] in inside}),
    }


def test_network_policies_allow_exactly_the_documented_graph(default_objects: list[dict[str, Any]]) -> None:
    assert allowed_graph(default_objects) == EXPECTED_GRAPH


def test_the_graph_check_notices_an_extra_path(default_objects: list[dict[str, Any]]) -> None:
    """The check above is not vacuous: widen one policy and it differs."""
    widened = json.loads(json.dumps(default_objects))
    recognizer = one(widened, "NetworkPolicy", "digits-recognizer")
    recognizer["spec"]["egress"] = [
        {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "digits", "app.kubernetes.io/instance": "digits", "app.kubernetes.io/component": "cassandra"}}}],  # fmt: skip
         "ports": [{"protocol": "TCP", "port": 9042}]}
    ]
    cassandra = one(widened, "NetworkPolicy", "digits-cassandra")
    cassandra["spec"]["ingress"].append(
        {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "digits", "app.kubernetes.io/instance": "digits", "app.kubernetes.io/component": "recognizer"}}}],  # fmt: skip
         "ports": [{"protocol": "TCP", "port": 9042}]}
    )
    assert allowed_graph(widened) - EXPECTED_GRAPH == {("recognizer", "cassandra", 9042)}


def test_values_yaml_documents_every_parameter() -> None:
    """Bitnami style: every leaf of values.yaml has a `## @param` line (the README's table)."""
    text = (ROOT / "charts/digits/values.yaml").read_text()
    documented = {line.split()[2] for line in text.splitlines() if line.strip().startswith("## @param")}
    values = yaml.safe_load(text)

    def leaves(node: Any, path: str = "") -> set[str]:
        if isinstance(node, dict) and node and not path.endswith(("resources", "SecurityContext", "annotations", "Selector", "labels")):
            return set().union(*(leaves(v, f"{path}.{k}" if path else k) for k, v in node.items()))
        return {path}

    undocumented = {leaf for leaf in leaves(values) if not any(leaf == d or leaf.startswith(d + ".") for d in documented)}
    assert not undocumented, undocumented
