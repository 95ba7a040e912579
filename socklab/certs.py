"""Certificates for TLS on loopback, made offline at run time (lesson 14).

A TLS server needs a certificate, and a client trusts it only if a certificate
authority (CA) it trusts has signed it.  A real CA will not sign a name such as
``localhost``, and a lesson may not fetch anything from the internet anyway.  So
socklab plays the CA itself, with trustme (a small library made for tests):

    >>> from socklab import certs
    >>> ca = certs.LocalCA()                  # a new CA: key and certificate
    >>> server = ca.issue("localhost")        # localhost, 127.0.0.1 and ::1
    >>> ca.cert_file, server.cert_file, server.key_file   # PEM files
    >>> print(certs.describe(server.cert_file))           # subject, issuer, SAN ...

How it is built, and why:

* **Files, not objects.**  Python's ``ssl`` module and OpenSSL in C both load
  certificates from PEM files (``load_cert_chain``, ``load_verify_locations``,
  ``SSL_CTX_use_certificate_chain_file`` ...), so every certificate and key is
  written as a PEM file, and the same files serve both languages.
* **A private folder.**  The files go to a folder of their own (mode 0700, inside
  socklab.c's build folder, which is removed when the Python process ends).  A
  private key is a secret even when it is a toy: nobody else on the machine may
  read it.
* **Stable names, fresh keys.**  Keys and signatures are new every time, but
  everything a lesson prints is not: the names are fixed (organisation "socklab",
  no random serial in a name) and the validity runs from 2000-01-01 to
  3000-01-01 (trustme's defaults).  describe() prints only such fields.
* **Nothing to install by hand.**  trustme builds certificates with the
  ``cryptography`` package, which pip installs with it (pyproject.toml).
"""

import dataclasses
import pathlib
import tempfile

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import c

__all__ = ["LocalCA", "ServerCert", "describe", "DEFAULT_HOSTS"]

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
ORGANIZATION = "socklab"


@dataclasses.dataclass(frozen=True)
class ServerCert:
    """A server's certificate and private key, as PEM files."""

    name: str
    hosts: tuple
    cert_file: pathlib.Path  # the certificate the server sends (a chain of one)
    key_file: pathlib.Path   # the private key: the server's secret

    def __repr__(self):  # no path of the machine in a notebook's output
        return f"<ServerCert {self.name!r} for {', '.join(self.hosts)}>"


class LocalCA:
    """A certificate authority of our own, living in a private folder.

    ``cert_file`` is the CA's certificate: what a client loads to trust the
    servers this CA certifies (``load_verify_locations(cafile)``).
    """

    def __init__(self, name="socklab local CA"):
        self.name = name
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix="certs-", dir=c.build_dir()))
        self._ca = trustme.CA(organization_name=ORGANIZATION,
                              organization_unit_name=name)
        self.cert_file = self.folder / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.cert_file))

    def issue(self, *hosts, name=None):
        """A server certificate for ``hosts`` (default: localhost, 127.0.0.1, ::1)."""
        hosts = tuple(hosts) or DEFAULT_HOSTS
        name = name or hosts[0]
        leaf = self._ca.issue_cert(*hosts, organization_name=ORGANIZATION,
                                   organization_unit_name=f"server {name}")
        cert_file = self.folder / f"{_file_name(name)}.pem"
        key_file = self.folder / f"{_file_name(name)}.key"
        cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key_file.touch(mode=0o600)  # private before the secret is in it
        leaf.private_key_pem.write_to_path(str(key_file))
        return ServerCert(name, hosts, cert_file, key_file)

    def __repr__(self):
        return f"<LocalCA {self.name!r}>"


def _file_name(name):
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _key_kind(key):
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"elliptic curve {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bits"
    return type(key).__name__


def describe(cert_file):
    """The first certificate of a PEM file in a few lines: its stable fields only."""
    cert = x509.load_pem_x509_certificates(pathlib.Path(cert_file).read_bytes())[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(value) for value in san.get_values_for_type(x509.DNSName)]
        names += [str(value) for value in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    lines = [
        f"subject:    {cert.subject.rfc4514_string()}",
        f"issuer:     {cert.issuer.rfc4514_string()}",
        f"names:      {', '.join(names) or '(none)'}",
        f"valid from: {cert.not_valid_before_utc:%Y-%m-%d}",
        f"valid to:   {cert.not_valid_after_utc:%Y-%m-%d}",
        f"is a CA:    {'yes' if is_ca else 'no'}",
        f"key:        {_key_kind(cert.public_key())}",
    ]
    return "\n".join(lines)
