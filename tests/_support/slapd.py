"""A throwaway OpenLDAP ``slapd`` for tests, on free loopback ports.

:class:`Slapd` writes a ``cn=config`` LDIF (mdb backend; schemas core, cosine,
inetorgperson and nis from ``/etc/ldap/schema``), turns it into a ``slapd.d``
directory with ``slapadd -n0``, loads the seed entries with ``slapadd -n1``,
then runs, in the foreground so the test owns the process::

    slapd -h "ldap://127.0.0.1:PORT/ ldaps://127.0.0.1:TLS_PORT/" -F slapd.d -d stats

TLS (ldaps:// and StartTLS) uses a certificate for 127.0.0.1 and localhost
issued by a throwaway CA (:attr:`Slapd.ca_file`). The ``stats`` lines (one per
connection and operation: ACCEPT, BIND dn=..., SRCH filter=...) go to
``slapd.log``, so a test can see what reached the directory
(:meth:`Slapd.log_mark`, :meth:`Slapd.log_since`). :meth:`Slapd.start` waits
until a bind as the root DN succeeds; :meth:`Slapd.stop` ends slapd (SIGTERM,
then SIGKILL). Stop and start again for an outage on the same ports.

The seeded directory (:func:`seed_ldif`)::

    dc=example,dc=org
      ou=people      uid=admin, uid=alice, uid=bob,  inetOrgPerson with mail, displayName,
                     uid=star*                       userPassword (SSHA of PASSWORDS[uid])
      ou=services    cn=sts-reader                   the search account (READER_DN, READER_PASSWORD)
      ou=groups      cn=sts-admins (admin), cn=staff (alice, bob)   groupOfNames

Access: passwords only for binding; authenticated users read everything;
anonymous users read nothing. Like Active Directory, this directory accepts an
*unauthenticated* bind (a DN with an empty password, RFC 4513 section 5.1.2;
``olcAllows: bind_anon_dn``), so a store that sent one would let anybody in.

A missing ``slapd`` is an error (:class:`SlapdError`), not a skip: the LDAP
tests are worth nothing if they silently do not run.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import subprocess
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .net import free_port

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=manager,{SUFFIX}"
ROOT_PASSWORD = "manager-secret"
READER_DN = f"cn=sts-reader,ou=services,{SUFFIX}"
READER_PASSWORD = "reader-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
#: uid -> password of the seeded people. ``star*`` is a real uid holding a
#: filter metacharacter, for the injection tests.
PASSWORDS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw", "star*": "star-pw"}
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


class SlapdError(RuntimeError):
    """slapd or its tools are missing, or slapd did not start or stop in time."""


def _tool(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise SlapdError(f"{name} is not installed (Debian packages slapd and ldap-utils; .ci/run installs them)")


def config_ldif(workdir: Path) -> str:
    """The cn=config tree: one mdb database for :data:`SUFFIX`, the four schemas."""
    includes = "\n".join(f"include: file://{SCHEMA_DIR / name}.ldif" for name in SCHEMAS)
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {workdir}/slapd.pid
olcArgsFile: {workdir}/slapd.args
olcTLSCACertificateFile: {workdir}/ca.crt
olcTLSCertificateFile: {workdir}/server.crt
olcTLSCertificateKeyFile: {workdir}/server.key
olcAllows: bind_anon_dn

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: 50

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ROOT_DN}
olcRootPW: {ROOT_PASSWORD}
olcDbDirectory: {workdir}/data
olcDbMaxSize: 16777216
olcDbIndex: objectClass eq
olcDbIndex: uid,mail eq
olcDbIndex: member eq
olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none
"""


def write_certificates(workdir: Path, *, names: tuple[str, ...] = ("localhost", "127.0.0.1"), stem: str = "server") -> None:
    """A throwaway CA (``ca.crt``, reused if present) and a server certificate for ``names``.

    Writes ``{stem}.crt`` and ``{stem}.key``. The CA key is kept (``ca.key``) so
    a second certificate, for other names, can be issued by the same CA.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wstrust-wsgi test LDAP CA")])
    if (workdir / "ca.key").exists():
        ca_key = serialization.load_pem_private_key((workdir / "ca.key").read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (workdir / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (workdir / "ca.key").write_bytes(ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(IPv4Address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (workdir / f"{stem}.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (workdir / f"{stem}.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _hash(password: str) -> str:
    result = subprocess.run([_tool("slappasswd"), "-s", password], capture_output=True, text=True,
                            timeout=10, check=True)
    return result.stdout.strip()


def seed_ldif() -> str:
    """The entries of the seeded directory (see the module docstring)."""
    people = []
    for uid, password in PASSWORDS.items():
        people.append(f"""\
dn: uid={uid},{PEOPLE}
objectClass: inetOrgPerson
uid: {uid}
cn: {uid.title()}
sn: {uid.title()}
displayName: {uid.title()} Example
mail: {uid.rstrip('*')}@example.org
userPassword: {_hash(password)}
""")
    return "\n".join([
        f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: ou=services,{SUFFIX}
objectClass: organizationalUnit
ou: services

dn: {GROUPS}
objectClass: organizationalUnit
ou: groups

dn: {READER_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: sts-reader
userPassword: {_hash(READER_PASSWORD)}

dn: cn=sts-admins,{GROUPS}
objectClass: groupOfNames
cn: sts-admins
member: uid=admin,{PEOPLE}

dn: cn=staff,{GROUPS}
objectClass: groupOfNames
cn: staff
member: uid=alice,{PEOPLE}
member: uid=bob,{PEOPLE}
""",
        *people,
    ])


class Slapd:
    """One throwaway slapd; use as a context manager or call start/stop.

    :param workdir: where slapd.d, the database and the log go (a new temp
        directory when None; removed by :meth:`cleanup` only if created here).
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self._slapd = _tool("slapd")
        self._slapadd = _tool("slapadd")
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="slapd-")) if workdir is None else workdir
        self.port = free_port()
        self.tls_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._configured = False

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """The CA that issued the server certificate (trust it to validate the directory)."""
        return self.workdir / "ca.crt"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def configure(self) -> None:
        """Build slapd.d and the database, once."""
        if self._configured:
            return
        confdir, datadir = self.workdir / "slapd.d", self.workdir / "data"
        confdir.mkdir(parents=True, exist_ok=True)
        datadir.mkdir(parents=True, exist_ok=True)
        write_certificates(self.workdir)
        (self.workdir / "config.ldif").write_text(config_ldif(self.workdir))
        (self.workdir / "seed.ldif").write_text(seed_ldif())
        for number, ldif in (("0", "config.ldif"), ("1", "seed.ldif")):
            result = subprocess.run(
                [self._slapadd, "-n", number, "-F", str(confdir), "-l", str(self.workdir / ldif)],
                capture_output=True, text=True, timeout=30,
            )
            if result.returncode != 0:
                raise SlapdError(f"slapadd -n{number} failed: {result.stdout}{result.stderr}")
        self._configured = True

    def start(self) -> None:
        """Run slapd on :attr:`port` and :attr:`tls_port` and wait (at most 15 s) until a root bind succeeds."""
        self.configure()
        if self.running:
            return
        log = (self.workdir / "slapd.log").open("ab")
        # A huge open-file limit makes slapd allocate tables to match; 1024 is plenty here.
        listen = f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"
        command = f"ulimit -n 1024 2>/dev/null; exec {self._slapd} -h '{listen}' -F '{self.workdir / 'slapd.d'}' -d stats"
        with log:
            self._process = subprocess.Popen(["sh", "-c", command], stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SlapdError(f"slapd exited with {self._process.returncode}: {self.log_text()}")
            if self.answers():
                return
            time.sleep(0.05)
        self.stop()
        raise SlapdError(f"slapd did not answer on {self.url} within {_START_TIMEOUT:.0f} s: {self.log_text()}")

    def answers(self) -> bool:
        """True when a simple bind as the root DN succeeds (1 s timeouts)."""
        import ldap3

        server = ldap3.Server("127.0.0.1", port=self.port, get_info=ldap3.NONE, connect_timeout=1)
        connection = ldap3.Connection(server, ROOT_DN, ROOT_PASSWORD, receive_timeout=1, raise_exceptions=False)
        try:
            return bool(connection.bind())
        except ldap3.core.exceptions.LDAPException:
            return False
        finally:
            connection.unbind()
            if connection.socket is not None:  # ldap3 keeps the socket of a failed open
                connection.socket.close()

    def stop(self) -> None:
        """End slapd (SIGTERM, then SIGKILL after 10 s) and wait for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)

    def log_text(self) -> str:
        """The end of slapd's log, for error messages."""
        return self.log_since(0)[-4000:]

    def log_mark(self) -> int:
        """A position in slapd's log; :meth:`log_since` returns what came after it."""
        path = self.workdir / "slapd.log"
        return path.stat().st_size if path.exists() else 0

    def log_since(self, mark: int) -> str:
        path = self.workdir / "slapd.log"
        if not path.exists():
            return ""
        with path.open("rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Slapd:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()
