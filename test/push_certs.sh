#!/bin/sh
# Writes test APNs push certificates to $1 for sql/30_push.sql: an MDM topic
# (mdm.crt/.key), its renewal (mdm2.*), another key (other.key) and a
# certificate whose UID is not an MDM topic (nonmdm.*), and one for a second
# topic (nocert.*).  Silent.
set -e
dir=$1
mkdir -p "$dir"
topic=com.apple.mgmt.External.8f2d1c7a-3b4e-4f5a-9c6d-7e8f9a0b1c2d
mk() {
    openssl req -x509 -newkey rsa:2048 -nodes -days "$3" -keyout "$dir/$1.key" -out "$dir/$1.crt" \
        -subj "/UID=$2/CN=APSP:test/C=US" >/dev/null 2>&1
}
mk mdm "$topic" 365
mk mdm2 "$topic" 730
mk nonmdm com.example.push 365
mk nocert com.apple.mgmt.External.no-cert-yet 365
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/other.key" >/dev/null 2>&1
