#!/bin/sh
# Writes files for sql/40_profiles.sql to $1, as base64 one-liners: the
# signer certificate of profiles/08 (PEM), a tampered copy of 08, a profile
# with variables signed by a throwaway key, and another CA certificate.  Silent.
set -e
dir=$1
v=test/vectors/profiles
mkdir -p "$dir"
openssl pkcs7 -inform DER -in $v/08-user-scoped-certificate.signed.mobileconfig -print_certs 2>/dev/null \
    | sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' > "$dir/signer.pem"
# flip one byte inside the signed content (the plist text)
python3 - "$v/08-user-scoped-certificate.signed.mobileconfig" "$dir/tampered.der" <<'PY'
import sys
data = bytearray(open(sys.argv[1], 'rb').read())
i = data.index(b'com.example.user-cert')
data[i] ^= 0x20
open(sys.argv[2], 'wb').write(bytes(data))
PY
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout "$dir/k.pem" -out "$dir/c.pem" \
    -subj "/CN=Throwaway Signer" >/dev/null 2>&1
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout "$dir/ca.key" -out "$dir/other-ca.pem" \
    -subj "/CN=Some Other CA" >/dev/null 2>&1
sed 's/<string>victor.p12<\/string>/<string>${MDM_USER_SHORT_NAME}.p12<\/string>/' \
    $v/01-user-scoped-certificate.mobileconfig > "$dir/vars.mobileconfig"
openssl cms -sign -nodetach -binary -outform DER -in "$dir/vars.mobileconfig" -signer "$dir/c.pem" \
    -inkey "$dir/k.pem" -out "$dir/vars-signed.der" >/dev/null 2>&1
for f in tampered.der vars-signed.der; do base64 -w0 "$dir/$f" > "$dir/$f.b64"; done
