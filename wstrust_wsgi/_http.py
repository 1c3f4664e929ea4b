"""Former home of the WSGI plumbing, now :mod:`wstrust_wsgi._wsgi`; kept for the imports of deploy, demos and bench."""

from __future__ import annotations

from ._wsgi import mount, plain, read_body, read_environ_body, soap_response

__all__ = ["mount", "plain", "read_body", "read_environ_body", "soap_response"]
