"""Java 17, Maven, and Cassandra's runtime classpath resolved from Maven Central.

Cassandra's server jar and every jar it needs are on Maven Central, and this machine reaches
only package registries, so ``mvn dependency:copy-dependencies`` on ``pom.xml`` (next to this
file) stands in for a Cassandra tarball.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from scripts import apt
from scripts.cassandra.common import CASSANDRA_VERSION, CassandraError, say

RESOURCES = Path(__file__).resolve().parent
POM = RESOURCES / "pom.xml"
DEFAULT_CACHE_DIR = RESOURCES.parent.parent / ".cache" / "cassandra" / CASSANDRA_VERSION
# Cassandra 5.0 runs on Java 11 or 17 only (it installs a SecurityManager, which newer JDKs
# refuse), and `java` on PATH here is a newer Temurin: name Debian's JDK 17 explicitly.
DEFAULT_JAVA = Path(os.environ.get("CASSANDRA_JAVA", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"))


def _apt_install(package: str) -> None:
    try:
        apt.install(package, say=say)
    except apt.AptError as exc:
        raise CassandraError(str(exc)) from None


def ensure_java(java: Path) -> Path:
    if not java.is_file():
        _apt_install("openjdk-17-jre-headless")
    if not java.is_file():
        raise CassandraError(f"{java} not found (set CASSANDRA_JAVA to a Java 17 `java`)")
    return java


def _ensure_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        _apt_install("maven")
        mvn = shutil.which("mvn")
    if mvn is None:
        raise CassandraError("mvn not found even after installing maven")
    return mvn


def install(cache_dir: Path = DEFAULT_CACHE_DIR, say: Callable[[str], None] = say) -> Path:
    """Resolve Cassandra's runtime classpath from Maven Central into ``<cache_dir>/lib``.

    Idempotent and instant once done: a stamp file records the version and the pom it was
    resolved from, so a changed pom re-resolves and an interrupted run never counts as done
    (jars go to ``lib.partial`` and are renamed into place only after Maven succeeded).
    A lock file serialises concurrent callers (say ``make run`` and a test run).
    Returns the lib directory.
    """
    lib = cache_dir / "lib"
    stamp = cache_dir / "installed.json"
    wanted = {
        "version": CASSANDRA_VERSION,
        "pom_sha256": hashlib.sha256(POM.read_bytes()).hexdigest(),
    }

    def installed() -> bool:
        try:
            return (
                json.loads(stamp.read_text()) == wanted
                and (lib / f"cassandra-all-{CASSANDRA_VERSION}.jar").is_file()
            )
        except (OSError, ValueError):
            return False

    if installed():
        return lib
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed():
            _resolve(lib, stamp, wanted, say)
    return lib


def _resolve(lib: Path, stamp: Path, wanted: dict[str, str], say: Callable[[str], None]) -> None:
    mvn = _ensure_mvn()
    partial = lib.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    say(f"resolving org.apache.cassandra:cassandra-all:{CASSANDRA_VERSION} with Maven into {lib}")
    started = time.monotonic()
    cmd = [
        mvn,
        "--batch-mode",
        "--quiet",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        f"-Dcassandra.version={CASSANDRA_VERSION}",
        f"-DoutputDirectory={partial}",
        "dependency:copy-dependencies",
    ]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if result.returncode != 0:
        raise CassandraError(f"`{' '.join(cmd)}` failed:\n{result.stdout[-4000:]}")
    for required in (f"cassandra-all-{CASSANDRA_VERSION}.jar", "jamm-*.jar"):
        if not list(partial.glob(required)):
            raise CassandraError(f"Maven finished but {required} is not in {partial}")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    stamp.write_text(json.dumps(wanted) + "\n")
    jars = len(list(lib.glob("*.jar")))
    say(f"installed {jars} jars in {time.monotonic() - started:.1f}s")
