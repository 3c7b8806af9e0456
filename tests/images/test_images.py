"""The three images, built by `make images` (podman, from the Dockerfiles), run as Kubernetes
would run them: their own non-root uid, a read-only root filesystem with /tmp as the only
writable path, no capabilities. Together they answer a real upload, against a real Cassandra.

Run by `make test-images` (after the build); excluded from `make test`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from scripts.devstack import free_port
from scripts.images import SERVICES, image_name, podman, size_bytes
from scripts.waiting import grpc_serving, http_ok, wait_until
from tests.conftest import TEST_CASSANDRA_HOST
from tests.helpers import ROOT, TEST_ADMIN_TOKEN

pytestmark = pytest.mark.images


class Container:
    def __init__(self, service: str, env: dict[str, str]) -> None:
        self.service = service
        self.name = f"digits-test-{service}-{free_port()}"
        args = [
            "run", "--detach", "--name", self.name,
            # Loopback is shared with the host, so the tests reach the ports directly.
            "--network=host",
            "--read-only", "--tmpfs", "/tmp:rw,size=64m",
            "--cap-drop=ALL", "--security-opt=no-new-privileges",
        ]  # fmt: skip
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        podman(*args, image_name(service))

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=False)

    def remove(self) -> None:
        podman("rm", "--force", "--time", "5", self.name, check=False)


def _wait_grpc_serving(address: str, container: Container, timeout: float = 120) -> None:
    with grpc_serving(address) as serving:
        try:
            wait_until(serving, timeout, container.service)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}:\n{container.logs()[-3000:]}") from None


@pytest.fixture(scope="module")
def containers(cassandra) -> Iterator[dict[str, tuple[Container, int]]]:
    ports = {name: free_port() for name in ("recognizer", "recorder", "gateway", "m1", "m2", "m3")}
    started: dict[str, tuple[Container, int]] = {}
    try:
        started["recognizer"] = (Container("recognizer", {
            "RECOGNIZER_HOST": "127.0.0.1", "RECOGNIZER_PORT": str(ports["recognizer"]),
            "RECOGNIZER_METRICS_PORT": str(ports["m1"]),
        }), ports["recognizer"])  # fmt: skip
        started["recorder"] = (Container("recorder", {
            "RECORDER_HOST": "127.0.0.1", "RECORDER_PORT": str(ports["recorder"]),
            "RECORDER_METRICS_PORT": str(ports["m2"]),
            "RECORDER_CASSANDRA_HOSTS": TEST_CASSANDRA_HOST, "RECORDER_KEYSPACE": "digits_images",
            "RECORDER_REPLICATION_FACTOR": "1", "RECORDER_WRITE_CONSISTENCY": "ONE", "RECORDER_READ_CONSISTENCY": "ONE",
            "RECORDER_ADMIN_TOKEN": TEST_ADMIN_TOKEN,
        }), ports["recorder"])  # fmt: skip
        started["gateway"] = (Container("gateway", {
            "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(ports["gateway"]),
            "GATEWAY_METRICS_PORT": str(ports["m3"]),
            "GATEWAY_RECOGNIZER_ADDRESS": f"dns:///localhost:{ports['recognizer']}",
            "GATEWAY_RECORDER_ADDRESS": f"127.0.0.1:{ports['recorder']}",
        }), ports["gateway"])  # fmt: skip
        yield started
    finally:
        for container, _ in started.values():
            container.remove()


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_is_clean(service: str) -> None:
    from scripts.kube import tools

    result = subprocess.run(
        [str(tools.require("hadolint")), str(ROOT / "services" / service / "Dockerfile")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_recognizer_and_recorder_answer_grpc_health(containers) -> None:  # type: ignore[no-untyped-def]
    for service in ("recognizer", "recorder"):
        container, port = containers[service]
        _wait_grpc_serving(f"127.0.0.1:{port}", container)


def test_gateway_answers_healthz_and_a_real_upload(containers) -> None:  # type: ignore[no-untyped-def]
    for service in ("recognizer", "recorder"):
        container, port = containers[service]
        _wait_grpc_serving(f"127.0.0.1:{port}", container)
    gateway, port = containers["gateway"]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ok(f"{url}/healthz"), 60, "gateway")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}:\n{gateway.logs()[-3000:]}") from None
    reply = httpx.post(f"{url}/v1/recognitions", files={"image": ("seven.png", (ROOT / "tests/data/seven.png").read_bytes(), "image/png")}, timeout=30)  # fmt: skip
    assert reply.status_code == 201, reply.text
    assert reply.json()["digit"] == 7
    record_url = f"{url}/v1/recognitions/{reply.json()['id']}"
    assert httpx.get(record_url, timeout=10).status_code == 401  # reading back takes a token
    stored = httpx.get(record_url, headers={"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}, timeout=10)
    assert stored.status_code == 200 and stored.json()["digit"] == 7


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_its_non_root_uid_on_a_read_only_root(containers, service: str) -> None:  # type: ignore[no-untyped-def]
    container, _ = containers[service]
    config = json.loads(podman("image", "inspect", image_name(service)).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    ids = container.exec("python", "-c", "import os; print(os.getuid(), os.getgid())")
    assert ids.stdout.split() == ["10001", "10001"], ids.stderr
    write = container.exec("python", "-c", "open('/app/probe', 'w')")
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    assert container.exec("python", "-c", "open('/tmp/probe', 'w')").returncode == 0


@pytest.mark.parametrize("service", ("gateway", "recorder", "recognizer"))
def test_no_image_carries_tensorflow(service: str) -> None:
    # The recognizer serves the model with LiteRT; TensorFlow is for training only.
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('tensorflow') is None else 1)"
    result = podman("run", "--rm", "--network=none", "--entrypoint", "python", image_name(service), "-c", probe, check=False)
    assert result.returncode == 0, f"{service} image holds TensorFlow"


def test_the_recognizer_carries_the_committed_model() -> None:
    version = json.loads((ROOT / "services/recognizer/model/model.json").read_text())["version"]
    read = "import json; print(json.load(open('/app/services/recognizer/model/model.json'))['version'])"
    out = podman("run", "--rm", "--network=none", "--entrypoint", "python", image_name("recognizer"), "-c", read)
    assert out.stdout.strip() == version


def test_image_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    sizes = {service: size_bytes(service) for service in SERVICES}
    with capsys.disabled():
        print("\nimage sizes: " + ", ".join(f"{s} {b / 1e6:.0f} MB" for s, b in sizes.items()))
    assert sizes["recognizer"] > sizes["gateway"]  # TensorFlow
    assert sizes["gateway"] < 400e6 and sizes["recorder"] < 400e6
