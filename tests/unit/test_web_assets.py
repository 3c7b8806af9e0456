"""The web page and /docs are served from the gateway's own files: no CDN, every asset the page
names exists, vendored assets carry their licence, and caching suits each kind of file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import STATIC, SWAGGER_UI, create_app
from services.gateway.config import Config


@pytest.fixture(scope="module")
def client():
    app = create_app(Config(recognizer_address="127.0.0.1:9", recorder_address="127.0.0.1:9"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def local_assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


def test_the_page_names_only_local_assets_and_they_exist(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text)
    assets = local_assets(page.text)
    assert "/static/app.css" in assets and "/static/js/main.js" in assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_every_module_import_resolves():
    for module in (STATIC / "js").glob("*.js"):
        for name in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert (STATIC / "js" / name).is_file(), f"{module.name} imports {name}"


def test_docs_use_the_vendored_swagger_ui(client):
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text and "fastapi.tiangolo.com" not in docs.text
    assets = local_assets(docs.text)
    assert {f"{SWAGGER_UI}/swagger-ui-bundle.js", f"{SWAGGER_UI}/swagger-ui.css"} <= set(assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert '"validatorUrl": null' in docs.text  # no call to validator.swagger.io
    assert client.get("/redoc").status_code == 404


def test_caching(client):
    vendored = client.get(f"{SWAGGER_UI}/swagger-ui.css")
    assert vendored.headers["cache-control"] == "public, max-age=31536000, immutable"
    own = client.get("/static/js/main.js")
    assert own.headers["cache-control"] == "no-cache"
    assert own.headers["content-type"].startswith("text/javascript")
    again = client.get("/static/js/main.js", headers={"If-None-Match": own.headers["etag"]})
    assert again.status_code == 304
    missing = client.get("/static/nothing.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_vendored_packages_carry_their_licence_and_are_described():
    vendor = STATIC / "vendor"
    readme = (vendor / "README.md").read_text()
    folders = [p for p in vendor.iterdir() if p.is_dir()]
    assert folders
    for folder in folders:
        assert any(f.name.upper().startswith("LICENSE") for f in folder.iterdir()), folder.name
        assert f"`{folder.name}/`" in readme, folder.name


def test_no_asset_loads_from_the_network():
    for path in Path(STATIC).rglob("*"):
        if path.suffix in (".html", ".css") or (path.suffix == ".js" and "vendor" not in path.parts):
            text = path.read_text()
            assert not re.search(
                r"""(?:src|href|url\(|import[^;]*from)\s*=?\s*["']?(?:https?:)?//""", text
            ), path
