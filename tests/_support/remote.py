"""What a client of the STS or of a service sees when it is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wstrust_wsgi import RemoteFault


def refused(code: str, call: Callable[[], object]) -> RemoteFault:
    """The RemoteFault ``call`` raises, after checking that its local code is ``code``."""
    with pytest.raises(RemoteFault) as caught:
        call()
    assert caught.value.local_code == code, caught.value
    return caught.value
