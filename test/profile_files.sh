#!/bin/sh
# Writes files for sql/40_profiles.sql to $1, as base64 one-liners: the
# signer certificate of profiles/08 (PEM), a tampered copy of 08, a profile
# with variables signed by a throwaway key, another CA certificate, and a
# profile signed with a TLS server certificate (extendedKeyUsage serverAuth,
# as many consoles sign) issued by a CA of its own.  Silent.
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
# a TLS server certificate from a CA, signing a copy of profiles/04
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' \
    > "$dir/tls-ca.ext"
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:mdm.example.com\n' \
    > "$dir/tls-server.ext"
openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/tls-ca.key" -out "$dir/tls-ca.csr" \
    -subj "/CN=Example TLS CA" >/dev/null 2>&1
openssl x509 -req -in "$dir/tls-ca.csr" -signkey "$dir/tls-ca.key" -days 30 -set_serial 1 \
    -extfile "$dir/tls-ca.ext" -out "$dir/tls-ca.pem" >/dev/null 2>&1
openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/tls-server.key" -out "$dir/tls-server.csr" \
    -subj "/CN=mdm.example.com" >/dev/null 2>&1
openssl x509 -req -in "$dir/tls-server.csr" -CA "$dir/tls-ca.pem" -CAkey "$dir/tls-ca.key" -days 30 \
    -set_serial 2 -extfile "$dir/tls-server.ext" -out "$dir/tls-server.pem" >/dev/null 2>&1
sed 's/<string>com.example.dock<\/string>/<string>com.example.tls-signed-dock<\/string>/' \
    $v/04-no-payloadscope-dock.mobileconfig > "$dir/tls-signed.mobileconfig"
openssl cms -sign -nodetach -binary -outform DER -in "$dir/tls-signed.mobileconfig" \
    -signer "$dir/tls-server.pem" -inkey "$dir/tls-server.key" -out "$dir/tls-signed.der" >/dev/null 2>&1
for f in tampered.der vars-signed.der tls-signed.der; do base64 -w0 "$dir/$f" > "$dir/$f.b64"; done
