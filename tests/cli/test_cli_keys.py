"""``wstrust-wsgi keys``: add-next, promote, retire, and rollover --auto deciding from the keys' dates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _support import KeyFiles
from wstrust_wsgi.cli import main
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.sql.keyring import SigningKeys
from wstrust_wsgi.sts.keyring import RegistryKeys


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("WSTRUST_KEY_PASSPHRASE", "WSTRUST_KEY_PASSPHRASE_FILE", "WSTRUST_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    address = f"sqlite://{tmp_path}/registry.db"
    with Registry.open(address) as registry:
        registry.init_schema(issuer="https://sts.example/sts")
    (tmp_path / "pass").write_text("s3cret passphrase\n")
    monkeypatch.setenv("WSTRUST_KEY_PASSPHRASE_FILE", str(tmp_path / "pass"))
    return address


def keys(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--registry", url, "keys", *args])
    out, err = capsys.readouterr()
    return code, out, err


def states(url: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, out, _ = keys(url, capsys, "list", "--json")
    assert code == 0
    return [k["state"] for k in json.loads(out)]


def test_manual_rollover(url: str, capsys: pytest.CaptureFixture[str], sts_keys: KeyFiles) -> None:
    assert keys(url, capsys, "add-next", "--key", str(sts_keys.key), "--cert", str(sts_keys.cert))[0] == 0
    assert keys(url, capsys, "promote")[0] == 0
    code, out, _ = keys(url, capsys, "add-next", "--generate", "--days", "30")
    assert code == 0 and "Added next key" in out
    assert states(url, capsys) == ["next", "primary"]
    assert keys(url, capsys, "promote")[0] == 0
    assert states(url, capsys) == ["primary", "previous"]
    code, out, _ = keys(url, capsys, "retire")
    assert code == 0 and "Retired" in out and states(url, capsys) == ["primary"]
    with Registry.open(url) as registry:
        current = RegistryKeys(registry, passphrase=b"s3cret passphrase").signing_keys()
    assert current.primary.certificate != sts_keys.load().certificate and len(current.published) == 1


def test_refusals_are_one_line(url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = keys(url, capsys, "promote")
    assert (code, out) == (1, "") and err.startswith("wstrust-wsgi keys promote: there is no next key")
    assert keys(url, capsys, "add-next")[0] == 2  # neither --generate nor --key/--cert
    monkeypatch.delenv("WSTRUST_KEY_PASSPHRASE_FILE")
    code, _, err = keys(url, capsys, "add-next", "--generate")
    assert code == 2 and "no passphrase" in err and "never on the command line" in err
    code, _, err = keys(url, capsys, "add-next", "--generate", "--passphrase-file", "s3cret")  # a file, not a secret
    assert code == 2 and "passphrase file s3cret: cannot be read" in err


def test_rollover_auto_is_idempotent_and_has_a_dry_run(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = keys(url, capsys, "rollover", "--auto", "--dry-run")
    assert code == 0 and out.startswith("Would add next key") and states(url, capsys) == []
    assert keys(url, capsys, "rollover", "--auto")[1].startswith("Did add next key")
    assert keys(url, capsys, "rollover", "--auto")[1].strip() == "Nothing is due."  # published 0 days ago
    code, out, _ = keys(url, capsys, "rollover", "--auto", "--promote-after", "0")
    assert out.startswith("Did promote") and states(url, capsys) == ["primary"]
    # the new primary expires in a year: nothing to add unless told to look further ahead
    assert keys(url, capsys, "rollover", "--auto")[1].strip() == "Nothing is due."
    keys(url, capsys, "rollover", "--auto", "--generate-before", "400")
    keys(url, capsys, "rollover", "--auto", "--promote-after", "0")
    assert states(url, capsys) == ["primary", "previous"]
    code, out, _ = keys(url, capsys, "rollover", "--auto", "--dry-run", "--retire-after", "0")
    assert out.startswith("Would retire") and states(url, capsys) == ["primary", "previous"]
    # by default the previous key stays for the longest token lifetime plus the skew (5 + 5 minutes here)
    assert keys(url, capsys, "rollover", "--auto")[1].strip() == "Nothing is due."
    keys(url, capsys, "rollover", "--auto", "--retire-after", "0")
    assert states(url, capsys) == ["primary"]
    with Registry.open(url) as registry:
        assert len(SigningKeys(registry).list()) == 1
