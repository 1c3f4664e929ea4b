"""The registry: users, roles, relying parties and STS settings in SQLite or PostgreSQL.

(Interface fixed; implementation in progress.) One schema and one code path
for both databases; the differences (parameter style, connection set-up) live
in a small dialect value. The registry is a UserStore, a RelyingPartyStore and
a SettingsStore for TokenService.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ..stores import Principal, RelyingParty, StsSettings
from ..wssecurity import UsernameToken


@dataclass(frozen=True)
class UserInfo:
    """A user as listed by the registry (never the password or its hash)."""

    name: str
    roles: tuple[str, ...]
    claims: Mapping[str, tuple[str, ...]]
    digest_secret: bool


class Registry:
    """Open with :meth:`open` (``sqlite:///path.db`` or ``postgresql://...``)."""

    @classmethod
    def open(cls, url: str) -> Registry:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def init_schema(self, *, issuer: str | None = None) -> None:
        """Create or upgrade the schema; create role 'admin' and default settings (issuer)."""
        raise NotImplementedError

    # roles
    def add_role(self, name: str) -> None: raise NotImplementedError
    def remove_role(self, name: str) -> None: raise NotImplementedError
    def list_roles(self) -> list[str]: raise NotImplementedError

    # users
    def add_user(self, name: str, password: str, *, roles: Sequence[str] = (),
                 claims: Mapping[str, Sequence[str]] | None = None, digest_secret: bool = False) -> None:
        raise NotImplementedError
    def set_password(self, name: str, password: str, *, digest_secret: bool | None = None) -> None:
        raise NotImplementedError
    def remove_user(self, name: str) -> None: raise NotImplementedError
    def get_user(self, name: str) -> UserInfo | None: raise NotImplementedError
    def list_users(self) -> list[UserInfo]: raise NotImplementedError
    def grant_role(self, name: str, role: str) -> None: raise NotImplementedError
    def revoke_role(self, name: str, role: str) -> None: raise NotImplementedError
    def set_claim(self, name: str, claim: str, values: Sequence[str]) -> None: raise NotImplementedError
    def unset_claim(self, name: str, claim: str) -> None: raise NotImplementedError

    # relying parties
    def add_relying_party(self, party: RelyingParty) -> None: raise NotImplementedError
    def remove_relying_party(self, address: str) -> None: raise NotImplementedError
    def list_relying_parties(self) -> list[RelyingParty]: raise NotImplementedError
    def get(self, address: str) -> RelyingParty | None: raise NotImplementedError

    # settings
    def get_settings(self) -> StsSettings: raise NotImplementedError
    def update_settings(self, *, issuer: str | None = None, allowed_roles: Sequence[str] | None = None,
                        default_lifetime: timedelta | None = None, clock_skew: timedelta | None = None,
                        signature_algorithm: str | None = None, allow_plaintext_http: bool | None = None) -> StsSettings:
        raise NotImplementedError

    # UserStore
    def authenticate(self, token: UsernameToken) -> Principal | None: raise NotImplementedError
