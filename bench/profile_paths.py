"""Where the middleware's time goes, step by step, on the first-seen and the reused-token paths.

::

    .venv/bin/python bench/profile_paths.py            # pinned to CPU 0, 3,000 requests per path

Each step of ``RelyingPartyMiddleware`` is timed in sequence, as a request
runs it (so caches are as cold as on the request path, unlike a step timed
alone in a loop), with ``time.perf_counter_ns`` around it; the figures are
means in microseconds, and they carry the timer's own cost (~0.1 us a step).
The steps call the middleware's private methods in the order ``_check``
calls them, on the same request body as ``bench.py``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench  # noqa: E402
from wstrust_wsgi import _wsgi, _xml, saml  # noqa: E402
from wstrust_wsgi.saml import verify as saml_verify  # noqa: E402


def first_seen(ctx: dict, n: int) -> dict[str, float]:
    body, headers = ctx["service"]
    middleware = bench.make_protected(bench.ok_app, verified_cache_size=0)
    make = bench.environ_for(body, headers, bench.SERVICE_PATH)
    content_type, policy = headers["Content-Type"], middleware.policy
    steps = ["read body", "cut the token out + parse it alone", "parse + check the rest of the envelope",
             "signature shape", "signature (schema, 2 c14n, digest, RSA)", "claims and time window"]
    total = dict.fromkeys(steps, 0)
    clock = time.perf_counter_ns
    for _ in range(n):
        environ = make()
        t0 = clock()
        body_read = _wsgi.read_environ_body(environ, _xml.DEFAULT_MAX_BYTES)
        now = middleware._clock()
        t1 = clock()
        splice = middleware._fast.seen.cut(body_read, _xml.DEFAULT_MAX_DEPTH)
        t2 = clock()
        assert splice is not None and splice.alone is not None
        assert middleware._fast.cut_security(splice, content_type, now) is not None
        t3 = clock()
        assertion_id, parts = saml_verify._signature_shape(splice.alone, saml.SAML2, policy)
        t4 = clock()
        signed, _cert = saml_verify._verify_signature_and_cert(splice.alone, saml.SAML2, policy, now, parts)
        t5 = clock()
        saml_verify._read_claims(signed, saml.SAML2, policy, now, assertion_id, splice.wire)
        t6 = clock()
        for step, (a, b) in zip(steps, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]):
            total[step] += b - a
    return {step: ns / n / 1000 for step, ns in total.items()}


def reused(ctx: dict, n: int) -> dict[str, float]:
    body, headers = ctx["service"]
    middleware = bench.make_protected(bench.ok_app)
    make = bench.environ_for(body, headers, bench.SERVICE_PATH)
    bench.call(middleware, make)()  # remembered from now on
    content_type, policy = headers["Content-Type"], middleware.policy
    assert middleware._verified is not None
    steps = ["read body", "find the remembered bytes, cut them out", "parse + check the rest of the envelope",
             "cache entry: certificate, time window, audience"]
    total = dict.fromkeys(steps, 0)
    clock = time.perf_counter_ns
    for _ in range(n):
        environ = make()
        t0 = clock()
        body_read = _wsgi.read_environ_body(environ, _xml.DEFAULT_MAX_BYTES)
        now = middleware._clock()
        t1 = clock()
        splice = middleware._fast.seen.splice(body_read)
        t2 = clock()
        assert splice is not None and middleware._fast.cut_security(splice, content_type, now) is not None
        t3 = clock()
        assert middleware._verified.get(splice.key, policy, now) is not None
        t4 = clock()
        for step, (a, b) in zip(steps, [(t0, t1), (t1, t2), (t2, t3), (t3, t4)]):
            total[step] += b - a
    return {step: ns / n / 1000 for step, ns in total.items()}


def main() -> None:
    logging.getLogger("wstrust_wsgi").setLevel(logging.WARNING)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    ctx = bench.setup()
    n = 3000
    for title, path in (("first-seen token (bench target 3)", first_seen), ("reused token (bench target 4)", reused)):
        path(ctx, 200)  # warm up
        figures = path(ctx, n)
        print(f"\n{title}: {sum(figures.values()):.1f} us in these steps (mean of {n})")
        for step, us in figures.items():
            print(f"  {step:52s} {us:7.1f} us")
    print(f"\n(sha256 of the token, for scale: {timed(lambda: hashlib.sha256(ctx['token']).digest()):.1f} us)")


def timed(fn: object, n: int = 3000) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return (time.perf_counter_ns() - start) / n / 1000


if __name__ == "__main__":
    main()
