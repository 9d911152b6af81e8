"""How the service serves the web page and the offline /docs assets (in-process, fast)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.apps import app_client, settings_with

STATIC = Path(__file__).resolve().parents[1] / "service" / "web" / "static"


def referenced_paths() -> set[str]:
    """Every file the page loads: the links of index.html and the imports of its modules."""
    html = (STATIC / "index.html").read_text()
    paths = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', html))
    for module in (STATIC / "js").glob("*.js"):
        for target in re.findall(r'from "\./([^"]+)"', module.read_text()):
            paths.add(f"/static/js/{target}")
    return paths


async def test_the_page_and_every_file_it_loads_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "/static/js/app.js" in page.text
    paths = referenced_paths()
    assert {"/static/js/app.js", "/static/js/api.js", "/static/style.css"} <= paths
    for path in sorted(paths):
        asset = await client.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["cache-control"] == "no-cache", path
    module = await client.get("/static/js/app.js")
    assert module.headers["content-type"].startswith("text/javascript")


async def test_a_missing_asset_is_a_problem_404(client: httpx.AsyncClient) -> None:
    for path in ("/static/nope.js", "/static/swagger-ui/nope.js", "/static/../pyproject.toml"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


async def test_docs_load_swagger_ui_from_the_service(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert urls and all(url.startswith("/static/swagger-ui/") for url in urls), urls
    for url in urls:
        assert (await client.get(url)).status_code == 200, url


async def test_with_api_keys_the_page_loads_and_the_api_asks_for_a_key(data_dir: Path) -> None:
    async with app_client(settings_with(data_dir, api_keys="secret")) as client:
        for path in ("/", "/static/js/app.js", "/static/swagger-ui/swagger-ui-bundle.js"):
            assert (await client.get(path)).status_code == 200, path
        for path in ("/jobs", "/docs", "/openapi.json"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Bearer")
        authorized = await client.get("/docs", headers={"Authorization": "Bearer secret"})
        assert authorized.status_code == 200
