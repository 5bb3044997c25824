#!/usr/bin/env python3
"""Write N distinct device identity certificates as COPY text: i<TAB>\\x<DER hex>.

An EC P-256 CA key signs every certificate; each certificate has its own
serial number and CN, so every device gets a distinct certificate (the
extension binds one certificate to one device).  The subject key is one
RSA-2048 key shared by all, so that the certificates have the size of a
typical SCEP-issued device identity (about 500 bytes, DER) while generation stays
fast (an EC signature each).  The
extension does not verify signatures without trust anchors; the certificates
are valid anyway.  Usage: gen_certs.py N OUT
"""
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

n, out = int(sys.argv[1]), sys.argv[2]
key = ec.generate_private_key(ec.SECP256R1())
pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mdm_user bench device CA")])
start = datetime.datetime(2024, 1, 1)
end = datetime.datetime(2034, 1, 1)
with open(out + ".tmp", "w") as f:
    for i in range(n):
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench device %d" % i)]))
                .issuer_name(issuer).public_key(pub).serial_number(i + 1)
                .not_valid_before(start).not_valid_after(end)
                .sign(key, hashes.SHA256()))
        f.write("%d\t\\\\x%s\n" % (i, cert.public_bytes(serialization.Encoding.DER).hex()))
os.replace(out + ".tmp", out)
