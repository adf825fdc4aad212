# SPDX-License-Identifier: MIT
"""doc/openapi.yaml (shipped as /usr/share/notifyq/openapi.yaml) against the
implementation: the route table in src/admin/server.c, and the running http
child, which must serve every documented operation (no 404 "no such route",
no 405) and refuse what is not documented."""
import re

import yaml

from conftest import REPO
from test_admin_http import ADMIN, Q, start

SPEC = REPO / "doc" / "openapi.yaml"
SERVER_C = REPO / "src" / "admin" / "server.c"


def documented():
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"].startswith("3.")
    ops = set()
    for path, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "delete", "patch"):
                ops.add((method.upper(), path))
    return spec, ops


def implemented():
    """(METHOD, /path/{q}/...) from the route table: "{}" is {q} then {id}."""
    ops = set()
    for method, pattern in re.findall(r'\{ "(GET|POST|PUT|DELETE|PATCH)", "(/[^"]*)"',
                                      SERVER_C.read_text()):
        names = iter(["{q}", "{id}"])
        ops.add((method, re.sub(r"\{\}", lambda m: next(names), pattern)))
    return ops


def test_the_spec_lists_exactly_the_routes_of_the_table():
    spec, doc = documented()
    impl = implemented()
    assert len(impl) >= 13
    assert doc == impl, {"undocumented": sorted(impl - doc), "not served": sorted(doc - impl)}


def test_every_operation_declares_its_errors_and_auth():
    spec, ops = documented()
    for method, path in ops:
        op = spec["paths"][path][method.lower()]
        codes = set(op["responses"])
        if path.startswith("/api/v1/"):
            assert "401" in codes and "429" in codes, (method, path)
            assert op.get("security") is None  # the global bearer requirement
            if method != "GET":
                assert "403" in codes, (method, path)
        if "{q}" in path:
            assert "404" in codes, (method, path)
        if "requestBody" in op:
            assert {"400", "413"} <= codes, (method, path)
    for path in ("/health", "/health/live"):
        assert spec["paths"][path]["get"]["security"] == []


def test_the_daemon_serves_what_the_spec_says(daemon_factory, redis_server):
    spec, ops = documented()
    d, api = start(daemon_factory, redis_server, {Q: 1})
    for method, path in sorted(ops):
        url = path.replace("{q}", Q).replace("{id}", "no-such-job")
        op = spec["paths"][path][method.lower()]
        st, _, body = api.call(method, url, body={} if method == "POST" else None, token=ADMIN)
        assert str(st) in op["responses"], (method, path, st, body)
        assert st not in (405,) and not (st == 404 and body.get("error") == "no such route"), \
            (method, path, st, body)
    # And nothing else: an undocumented method on a documented path is 405.
    st, hdrs, body = api.call("PATCH", "/api/v1/queues/%s" % Q, token=ADMIN)
    assert st == 405 and "PATCH" not in body["error"].split("allowed:")[1]
