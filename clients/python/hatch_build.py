"""Put the generated ``digits.v1`` stubs into the sdist and the wheel without copying them.

The stubs live once, in the repo's ``digits/v1`` (made by ``make protos`` and checked for
freshness by tests/unit/test_protos.py). Built from the repo, this hook force-includes that
folder as ``digits/v1``; built from an sdist (which this hook filled the same way), it takes the
sdist's own ``digits/v1``. Either way the package ships exactly the checked stubs, and nothing
under clients/python is a second hand-kept copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

STUBS = "digits/v1"


class StubsHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        for candidate in (root.parent.parent / STUBS, root / STUBS):  # the repo, then an sdist
            if (candidate / "recognizer_pb2.py").is_file():
                break
        else:
            raise RuntimeError(f"no generated stubs: run `make protos` in the repo (looked for {STUBS})")
        for path in sorted(candidate.iterdir()):
            # The modules and their type hints; never caches.
            if path.suffix in {".py", ".pyi"}:
                build_data["force_include"][str(path)] = f"{STUBS}/{path.name}"
        # PEP 561: type checkers read the .pyi hints of an installed package that says so. The
        # marker is clients/python/py.typed (an sdist already has it in digits/v1).
        marker = next(p for p in (candidate / "py.typed", root / "py.typed") if p.is_file())
        build_data["force_include"][str(marker)] = f"{STUBS}/py.typed"
