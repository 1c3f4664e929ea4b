"""``python -m wstrust_wsgi`` is the ``wstrust-wsgi`` command."""

from .cli import main

raise SystemExit(main())
