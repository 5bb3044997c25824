#!/bin/sh
# Writes device identity material for sql/50_security.sql to $1: self-signed
# certificates for the seed's Mac and the second Mac (PEM, and DER as
# base64), a CA with a certificate it issued, and Mdm-Signature headers
# (base64 CMS, detached) over two check-in vectors.  Silent.
set -e
dir=$1
v=test/vectors
mkdir -p "$dir"
self() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -keyout "$dir/$1.key" -out "$dir/$1.crt" \
        -subj "/CN=$2" >/dev/null 2>&1
    openssl x509 -in "$dir/$1.crt" -outform DER | base64 -w0 > "$dir/$1.der.b64"
}
self mac "980E3D0B-5A28-537C-B7CB-7AFD15AFB933"
self mac2 "5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B"
self mac-new "980E3D0B-5A28-537C-B7CB-7AFD15AFB933 after a wipe"
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -subj "/CN=Device Identity CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout "$dir/issued.key" -out "$dir/issued.csr" \
    -subj "/CN=980E3D0B-5A28-537C-B7CB-7AFD15AFB933 issued" >/dev/null 2>&1
openssl x509 -req -in "$dir/issued.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -out "$dir/issued.crt" >/dev/null 2>&1
sign() {
    openssl cms -sign -binary -outform DER -in "$v/$2" -signer "$dir/$1.crt" -inkey "$dir/$1.key" \
        -out "$dir/sig.der" >/dev/null 2>&1
    base64 -w0 "$dir/sig.der" > "$dir/$3"
}
sign mac checkin/02-tokenupdate-device.plist sig-tokenupdate.b64
sign mac connect/02-idle-user-seed.plist sig-idle-user.b64
sign mac2 checkin/02-tokenupdate-device.plist sig-tokenupdate-mac2.b64
