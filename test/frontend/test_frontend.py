#!/usr/bin/env python3
"""mdm-frontend over real HTTP on 127.0.0.1, against the throwaway cluster.

Run by test/frontend/run.sh inside pg_virtualenv (PGHOST, PGPORT, PGUSER,
PGPASSWORD of a superuser are set).  Usage: test_frontend.py MDM_FRONTEND_BINARY

Covers: every check-in and command report vector through /mdm and /checkin,
with what was stored checked in the database; a status for each SQLSTATE
class of docs/front-end.md; identity by TLS client certificate and by
header (and the header ignored without --cert-header); Basic auth; every
admin reply validated against NanoMDM's OpenAPI schemas; a database restart
under load; SIGTERM draining; start-up failures; /healthz, /metrics,
/version, /mdm/enroll, 404, 405, 413.
"""
import base64
import hashlib
import http.client
import json
import os
import plistlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, '..', 'vectors')
BIN = sys.argv[1]
DB = 'mdm_frontend_test'
WORK = tempfile.mkdtemp(prefix='mdm-frontend-test-')
CHECKIN_TYPE = 'application/x-apple-aspen-mdm-checkin'
API_KEY = 'test-api-key'
TOPIC = 'com.apple.mgmt.External.8f2d1c7a-3b4e-4f5a-9c6d-7e8f9a0b1c2d'
MAC = '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
MAC_USER = MAC + ':23B1AB9F-5A19-4919-8610-0A74091497E1'

passed = 0
failed = []


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failed.append(what)
        print('FAIL:', what, flush=True)
    return cond


T0 = time.time()


def section(title):
    print('-- %5.1fs %s' % (time.time() - T0, title), flush=True)


def psql(sql, db=DB):
    r = subprocess.run(['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('psql failed: %s\n%s' % (sql, r.stderr))
    return r.stdout.strip()


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def dsn(user):
    return 'host=%s port=%s dbname=%s user=%s password=secret' % (
        os.environ.get('PGHOST', 'localhost'), os.environ['PGPORT'], DB, user)


class Frontend:
    """One mdm-frontend process on a free loopback port."""

    def __init__(self, *args, tls=False, wait=True):
        self.port = free_port()
        self.tls = tls
        self.log = open(os.path.join(WORK, 'frontend-%d.log' % self.port), 'w+')
        # --no-push: no pushes to Apple's gateway from the tests (test/push/ tests the sender)
        self.proc = subprocess.Popen([BIN, '--listen', '127.0.0.1:%d' % self.port, '--no-push'] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            deadline = time.time() + 15
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError('mdm-frontend exited: ' + self.logtext())
                try:
                    socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError('mdm-frontend did not start')

    def logtext(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def conn(self, cert=None, timeout=30):
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if cert:
                ctx.load_cert_chain(cert + '.crt', cert + '.key')
            return http.client.HTTPSConnection('127.0.0.1', self.port, context=ctx, timeout=timeout)
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, cert=None, conn=None):
        c = conn or self.conn(cert)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, r.getheader('Content-Type'), data, r

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


# ---- certificates -------------------------------------------------------

def make_cert(name, cn):
    path = os.path.join(WORK, name)
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                    '-nodes', '-days', '30',
                    '-keyout', path + '.key', '-out', path + '.crt', '-subj', '/CN=' + cn],
                   check=True, capture_output=True)
    return path


_device_certs = {}


def device_cert(device_id):
    if device_id not in _device_certs:
        _device_certs[device_id] = make_cert('dev-%d' % len(_device_certs), device_id)
    return _device_certs[device_id]


def pem(path):
    with open(path + '.crt') as f:
        return f.read()


def der(path):
    return ssl.PEM_cert_to_DER_cert(pem(path))


def header_for(path):
    """nginx's $ssl_client_escaped_cert: the PEM, URL-escaped."""
    return urllib.parse.quote(pem(path), safe='')


def vector(name):
    with open(os.path.join(VECTORS, name), 'rb') as f:
        return f.read()


def message_ids(body):
    """(device ID, enrollment ID) of a vector."""
    m = plistlib.loads(body)
    dev = m.get('UDID') or m.get('EnrollmentID')
    user = m.get('UserID') or m.get('EnrollmentUserID')
    if user == 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF':
        user = m.get('UserShortName')
    return dev, (dev + ':' + user) if user else dev


# ---- OpenAPI schemas ----------------------------------------------------

with open(os.path.join(HERE, 'nanomdm-openapi.yaml')) as f:
    OPENAPI = yaml.safe_load(f)


def resolve(node):
    while isinstance(node, dict) and '$ref' in node:
        ref = node['$ref']
        assert ref.startswith('#/'), ref
        node = OPENAPI
        for part in ref[2:].split('/'):
            node = node[part]
    return node


def schema_for(path_key, method, status):
    op = OPENAPI['paths'][path_key][method]
    resp = op['responses'].get(str(status))
    if resp is None:
        return None
    resp = resolve(resp)
    content = resp.get('content', {}).get('application/json')
    return resolve(content['schema']) if content else None


ERROR_SCHEMA = OPENAPI['components']['schemas']['ErrorResponse']
PER_ID_SCHEMA = OPENAPI['components']['schemas']['APIResult']['properties']['status']['properties']['$id']


def validate_admin(path_key, method, status, ctype, body, what):
    """A reply is valid when its JSON matches the schema the OpenAPI file
    gives for its status, or ErrorResponse for a status it does not list."""
    if not check(ctype == 'application/json', what + ': JSON content type (%s)' % ctype):
        return None
    doc = json.loads(body)
    schema = schema_for(path_key, method, status) or ERROR_SCHEMA
    try:
        jsonschema.validate(doc, schema)
        # APIResult's per-ID objects are described under the key "$id"
        for v in (doc.get('status') or {}).values() if isinstance(doc.get('status'), dict) else []:
            jsonschema.validate(v, PER_ID_SCHEMA)
        check(True, what)
    except jsonschema.ValidationError as e:
        check(False, '%s: reply does not match the OpenAPI schema: %s' % (what, e.message))
    return doc


def command_plist(request_type, command_uuid=None, binary=False, **fields):
    cmd = {'RequestType': request_type}
    cmd.update(fields)
    d = {'Command': cmd, 'CommandUUID': command_uuid or str(uuid.uuid4()).upper()}
    return plistlib.dumps(d, fmt=plistlib.FMT_BINARY if binary else plistlib.FMT_XML)


def basic(user='nanomdm', key=API_KEY):
    return {'Authorization': 'Basic ' + base64.b64encode(('%s:%s' % (user, key)).encode()).decode()}


# ---- set-up -------------------------------------------------------------

def setup_database():
    psql('DROP DATABASE IF EXISTS %s' % DB, db='postgres')
    psql('CREATE DATABASE %s' % DB, db='postgres')
    psql('CREATE EXTENSION mdm_user CASCADE')
    for role, grant in (('fe_web', 'mdm_frontend'), ('fe_admin', 'mdm_admin'), ('fe_nobody', None)):
        psql("DO $$BEGIN CREATE ROLE %s LOGIN PASSWORD 'secret'; EXCEPTION WHEN duplicate_object THEN END$$"
             % role)
        if grant:
            psql('GRANT %s TO %s' % (grant, role))
    psql('GRANT CONNECT ON DATABASE %s TO fe_web, fe_admin, fe_nobody' % DB)


def test_startup_failures():
    section('start-up failures: one clear line, exit status 1')
    cases = [
        (['--dsn', 'host=127.0.0.1 port=%d dbname=x user=x connect_timeout=2' % free_port()],
         'cannot connect to the database'),
        (['--dsn', dsn('fe_nobody')], 'lacks the privileges of mdm_frontend'),
        (['--dsn', dsn('fe_web'), '--api-key', 'k'], 'lacks the privileges of mdm_admin'),
        (['--dsn', dsn('fe_web').replace('dbname=' + DB, 'dbname=postgres')], 'is not installed'),
        (['--bogus'], 'unknown or incomplete option'),
        ([], '--dsn is required'),
    ]
    psql("GRANT CONNECT ON DATABASE postgres TO fe_web", db='postgres')
    for args, text in cases:
        r = subprocess.run([BIN, '--listen', '127.0.0.1:%d' % free_port()] + args,
                           capture_output=True, text=True, timeout=30)
        lines = r.stderr.strip().splitlines()
        check(r.returncode != 0 and len(lines) == 1 and text in lines[0],
              'start-up with %s: one line with "%s" (got rc %d: %r)' % (args[:1], text, r.returncode, r.stderr))
    r = subprocess.run([BIN, '--version'], capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.startswith('mdm-frontend '), '--version')
    r = subprocess.run([BIN, '--help'], capture_output=True, text=True)
    check(r.returncode == 0 and '--cert-header' in r.stdout and 'MDM_FRONTEND_' in r.stdout, '--help')


# ---- device endpoints -----------------------------------------------------

def send_checkin(fe, name, via, identity='header', extra_headers=None):
    body = vector(name)
    dev, _ = message_ids(body)
    cert = device_cert(dev)
    headers = {'Content-Type': CHECKIN_TYPE}
    if identity == 'header':
        headers['X-Client-Cert'] = header_for(cert)
    headers.update(extra_headers or {})
    status, ctype, data, _ = fe.request('PUT', via, body, headers,
                                        cert=cert if identity == 'tls' else None)
    return body, dev, status, ctype, data


def test_checkins(fe):
    section('every check-in vector through /checkin and /mdm, stored as sent')
    names = sorted(n for n in os.listdir(os.path.join(VECTORS, 'checkin')) if n != '11-checkout.plist')
    # the binary twins after their XML forms: the same message again
    names = [n for n in names if n.endswith('.plist')] + [n for n in names if n.endswith('.bplist')]
    first_id = int(psql("SELECT coalesce(max(id), 0) FROM mdm.checkin_messages"))
    sent = []
    for i, n in enumerate(names):
        via = '/checkin' if i % 2 == 0 else '/mdm'
        body, dev, status, ctype, data = send_checkin(fe, 'checkin/' + n, via)
        sent.append((n, via, dev, body, status))
        check(status in (200, 410, 404) and (ctype is None) == (len(data) == 0),
              '%s: status %d, content type %s with %d bytes' % (n, status, ctype, len(data)))
        if n.startswith('07-getbootstraptoken'):
            token = psql("SELECT encode(bootstrap_token, 'base64') FROM mdm.device_secrets "
                         "WHERE device_id = '%s'" % dev)
            check(plistlib.loads(data)['BootstrapToken'] == base64.b64decode(token),
                  'GetBootstrapToken: the stored token comes back')
    # what was stored, in the order sent: the body byte for byte, the reply
    # status, the certificate from the header
    rows = [r.split('|') for r in psql(
        "SELECT device_id, translate(encode(body, 'base64'), E'\\n', ''), reply_status, "
        "encode(identity_cert_sha256, 'hex') FROM mdm.checkin_messages WHERE id > %d ORDER BY id"
        % first_id).splitlines()]
    check(len(rows) == len(sent), 'one stored check-in per request (%d, %d)' % (len(rows), len(sent)))
    for (n, via, dev, body, status), row in zip(sent, rows):
        check(row[0] == dev and base64.b64decode(row[1]) == body and int(row[2]) == status and
              row[3] == hashlib.sha256(der(device_cert(dev))).hexdigest(),
              '%s via %s: stored byte for byte with reply status %d and the header certificate'
              % (n, via, status))
    check(psql("SELECT string_agg(id, ',' ORDER BY id) FROM mdm.nano_enrollments") ==
          ','.join(sorted(psql("SELECT string_agg(id, ',') FROM mdm.nano_enrollments").split(','))) and
          int(psql("SELECT count(*) FROM mdm.nano_enrollments")) >= 8,
          'every TokenUpdate made its enrollment')
    # each request's log line names its enrollment: the database returns the
    # ID with the reply (mdm.message_enrollment_id), the front end reads no plist
    log = wait_log(fe, 'id=' + message_ids(sent[-1][3])[1])
    for n, via, dev, body, status in sent:
        enrollment = message_ids(body)[1]
        check(re.search(r'^mdm-frontend info: PUT %s %d [0-9.]+ ms id=%s$'
                        % (re.escape(via), status, re.escape(enrollment)), log, re.M),
              '%s via %s: the log line names enrollment %s' % (n, via, enrollment))


def wait_log(fe, text):
    """The front end's log once it holds text (a line is written after its reply)."""
    for _ in range(50):
        log = fe.logtext()
        if text in log:
            break
        time.sleep(0.05)
    return log


def drain(fe, idle, headers):
    """Polls with an Idle message and acknowledges until the queue is empty."""
    msg = plistlib.loads(idle)
    for _ in range(100):
        status, _, data, _ = fe.request('PUT', '/mdm', idle, headers)
        if status != 200 or not data:
            return
        cu = plistlib.loads(data)['CommandUUID']
        ack = plistlib.dumps({k: v for k, v in msg.items() if k != 'Status'} |
                             {'Status': 'Acknowledged', 'CommandUUID': cu})
        fe.request('PUT', '/mdm', ack, headers)


def test_reports(fe):
    section('every command report vector through /mdm, stored')
    cases = {
        '03-acknowledged-installprofile-user.plist': ('ProfileList', {}),
        '04-notnow-device.plist': ('ProfileList', {}),
        '05-error-device.plist': ('ProfileList', {}),
        '06-commandformaterror-device.plist': ('ProfileList', {}),
        '07-acknowledged-deviceinformation.plist': ('DeviceInformation', {'Queries': ['OSVersion']}),
    }
    for n in sorted(os.listdir(os.path.join(VECTORS, 'connect'))):
        body = vector('connect/' + n)
        msg = plistlib.loads(body)
        dev, enrollment = message_ids(body)
        headers = {'X-Client-Cert': header_for(device_cert(dev)),
                   'Content-Type': 'application/x-apple-aspen-mdm'}
        if msg['Status'] == 'Idle':
            drain(fe, body, headers)
            # a command waits: the poll gets it, byte for byte as stored
            cu = str(uuid.uuid4()).upper()
            s, _, _, _ = fe.request('PUT', '/v1/enqueue/%s?nopush=1' % enrollment,
                                    command_plist('ProfileList', cu), basic())
            status, ctype, data, _ = fe.request('PUT', '/mdm', body, headers)
            stored = psql("SELECT encode(plist, 'base64') FROM mdm.nano_commands WHERE command_uuid = '%s'" % cu)
            check(s == 200 and status == 200 and ctype == 'application/xml' and
                  data == base64.b64decode(stored),
                  '%s: the poll of %s gets the queued command as stored (%d %d %s %r)'
                  % (n, enrollment, s, status, ctype, data[:300]))
            # acknowledge it so the queue is empty for the next poll
            ack = plistlib.dumps({k: v for k, v in msg.items() if k != 'Status'} |
                                 {'Status': 'Acknowledged', 'CommandUUID': cu})
            status, _, _, _ = fe.request('PUT', '/mdm', ack, headers)
            check(status == 200 and psql("SELECT status FROM mdm.nano_command_results WHERE command_uuid = '%s'"
                                         % cu) == 'Acknowledged', '%s: acknowledged' % n)
            continue
        rtype, fields = cases[n]
        cu = msg['CommandUUID']
        s, _, _, _ = fe.request('PUT', '/v1/enqueue/%s?nopush=1' % enrollment,
                                command_plist(rtype, cu, **fields), basic())
        status, ctype, data, _ = fe.request('PUT', '/mdm', body, headers)
        row = psql("SELECT status FROM mdm.nano_command_results WHERE id = '%s' AND command_uuid = '%s'"
                   % (enrollment, cu))
        check(s == 200 and status == 200 and row == msg['Status'],
              '%s: report stored as %s (enqueue %d, report %d, stored %r)' % (n, msg['Status'], s, status, row))
        log = wait_log(fe, 'id=' + enrollment)
        check(re.search(r'^mdm-frontend info: PUT /mdm 200 [0-9.]+ ms id=%s$' % re.escape(enrollment), log, re.M),
              '%s: the log line of the report names enrollment %s' % (n, enrollment))


def headers_only_status(fe, length):
    """Sends only the headers of a PUT /mdm with a Content-Length; the status."""
    s = socket.create_connection(('127.0.0.1', fe.port), timeout=10)
    s.sendall(b'PUT /mdm HTTP/1.1\r\nHost: x\r\nContent-Type: ' + CHECKIN_TYPE.encode() +
              b'\r\nContent-Length: %d\r\n\r\n' % length)
    first = s.recv(200)
    s.close()
    return int(first.split()[1]) if first.startswith(b'HTTP/1.1 ') else -1


def chunked_put(fe, chunks):
    """PUT /mdm of chunks x 64 kB, chunked: (status or None, connection closed after)."""
    c = fe.conn()
    c.putrequest('PUT', '/mdm')
    c.putheader('Content-Type', CHECKIN_TYPE)
    c.putheader('Transfer-Encoding', 'chunked')
    c.endheaders()
    raw = c.sock.dup()  # still open here when http.client closes its own
    try:
        for _ in range(chunks):
            chunk = b'x' * 65536
            c.send(b'%x\r\n%s\r\n' % (len(chunk), chunk))
        c.send(b'0\r\n\r\n')
        r = c.getresponse()
        r.read()
    except (OSError, http.client.HTTPException):
        c.close()
        raw.close()
        return None, True
    c.close()
    try:
        raw.settimeout(5)
        closed = raw.recv(1) == b''
    except OSError:
        closed = True
    raw.close()
    return r.status, closed


def test_bad_input(fe):
    section('hostile and malformed input: 400 or 413, nothing stored')
    before = psql("SELECT count(*) FROM mdm.checkin_messages")
    cert = header_for(device_cert(MAC))
    for n in sorted(os.listdir(os.path.join(VECTORS, 'bad'))):
        body = vector('bad/' + n)
        expect = 413 if len(body) > 1024 * 1024 else 400
        if expect == 413:
            # the reply comes after the headers: the body is never read
            status = headers_only_status(fe, len(body))
        else:
            status, _, _, _ = fe.request('PUT', '/mdm', body, {'Content-Type': CHECKIN_TYPE, 'X-Client-Cert': cert})
        check(status == expect, 'bad/%s (%d bytes): %d (expected %d)' % (n, len(body), status, expect))
    for n in sorted(os.listdir(os.path.join(VECTORS, 'own'))):
        body = vector('own/' + n)
        status, _, _, _ = fe.request('PUT', '/mdm', body, {'Content-Type': CHECKIN_TYPE, 'X-Client-Cert': cert})
        check(status == 400, 'own/%s as a check-in: %d' % (n, status))
    check(psql("SELECT count(*) FROM mdm.checkin_messages") == before, 'nothing stored by bad input')

    check(headers_only_status(fe, 50000000) == 413, '413 answered from Content-Length alone')
    # a chunked body that grows past the limit: 413 at its end, then the
    # connection is closed; one that goes on past twice the limit is cut off
    status, closed = chunked_put(fe, 24)
    check(status == 413 and closed, 'chunked body of 1.5 MB: 413 and the connection closed (got %s, %s)'
          % (status, closed))
    check(psql("SELECT count(*) FROM mdm.checkin_messages") == before, 'nothing stored from it')
    status, closed = chunked_put(fe, 40)
    check(status is None and closed, 'chunked body of 2.6 MB: the connection is closed, the rest not read')
    tu = vector('checkin/02-tokenupdate-device.plist')
    c = fe.conn()
    c.request('PUT', '/mdm', iter([tu[:300], tu[300:]]),  # an iterable: sent chunked
              {'Content-Type': CHECKIN_TYPE, 'X-Client-Cert': cert})
    status = c.getresponse().status
    c.close()
    check(status == 200, 'a chunked body under the limit is served (got %d)' % status)
    # headers: an 11 kB Mdm-Signature fits the 16 kB connection buffer (and is
    # refused by the database as a signature); 20 kB of headers do not
    sig = base64.b64encode(os.urandom(8 * 1024)).decode()
    status, _, _, _ = fe.request('PUT', '/mdm', vector('connect/01-idle-device.plist'), {'Mdm-Signature': sig})
    check(status == 403, 'an 11 kB Mdm-Signature header reaches the database: 403 (got %d)' % status)
    try:
        status = fe.request('PUT', '/mdm', vector('connect/01-idle-device.plist'),
                            {'Mdm-Signature': sig + sig})[0]
    except (OSError, http.client.HTTPException):
        status = -1
    check(status in (413, 431, -1), '22 kB of headers refused (got %d)' % status)
    check(fe.request('GET', '/healthz')[0] == 200, 'and the front end goes on')


def test_sqlstates(fe):
    section('SQLSTATE -> HTTP status (docs/front-end.md)')
    cert = header_for(device_cert(MAC))
    h = {'Content-Type': CHECKIN_TYPE, 'X-Client-Cert': cert}
    cases = [
        ('22P03 not a plist', vector('bad/03-not-a-plist.txt'), h, 400),
        ('0A000 UTF-16 plist', '<?xml version="1.0" encoding="UTF-16"?><plist><dict/></plist>'.encode('utf-16'), h, 400),
        ('54000 too deep', vector('bad/19-deep-nesting-xml.plist'), h, 400),
        ('22023 valid plist, not a message', vector('bad/05-no-messagetype.plist'), h, 400),
        ('28000 no identity', vector('checkin/02-tokenupdate-device.plist'), {'Content-Type': CHECKIN_TYPE}, 403),
        ('28000 another certificate', vector('checkin/02-tokenupdate-device.plist'),
         {'Content-Type': CHECKIN_TYPE, 'X-Client-Cert': header_for(device_cert('someone else'))}, 403),
    ]
    for what, body, headers, expect in cases:
        status, _, _, _ = fe.request('PUT', '/mdm', body, headers)
        check(status == expect, '%s: %d (expected %d)' % (what, status, expect))
    # settings of the front end's role (superuser-only, so set by ALTER ROLE):
    # 42883, a DeclarativeManagement handler setting naming a missing
    # function; 42704, a message of an unknown device (reachable with
    # mdm.require_identity off: an unknown device has no bound identity)
    psql("ALTER ROLE fe_web IN DATABASE %s SET mdm.declarative_management_handler = 'public.no_such_handler'" % DB)
    psql("ALTER ROLE fe_web IN DATABASE %s SET mdm.require_identity = off" % DB)
    fe2 = Frontend('--dsn', dsn('fe_web'), '--cert-header', 'X-Client-Cert')
    status, _, _, _ = fe2.request('PUT', '/checkin', vector('checkin/08-declarativemanagement-tokens.plist'), h)
    check(status == 500, '42883 handler function missing: 500 (got %d)' % status)
    status, _, _, _ = fe2.request('PUT', '/checkin', vector('checkin/02-tokenupdate-device.plist').replace(
        MAC.encode(), b'00000000-0000-0000-0000-00000000AAAA'), {'Content-Type': CHECKIN_TYPE})
    check(status == 400, '42704 message of an unknown device: 400 (got %d)' % status)
    check(fe2.stop() == 0, 'exit 0')
    psql("ALTER ROLE fe_web IN DATABASE %s RESET ALL" % DB)
    # 42501: the role lost its privileges while running
    psql("REVOKE mdm_frontend FROM fe_web")
    status, _, _, _ = fe.request('PUT', '/mdm', vector('connect/01-idle-device.plist'), {'X-Client-Cert': cert})
    check(status == 500, '42501 privilege revoked: 500 (got %d)' % status)
    psql("GRANT mdm_frontend TO fe_web")
    status, _, _, _ = fe.request('PUT', '/mdm', vector('connect/01-idle-device.plist'), {'X-Client-Cert': cert})
    check(status == 200, 'privilege granted again: 200 (got %d)' % status)
    # admin side: 23505 -> 409, 42704 -> 404, 22023 -> 400 (the rest below)
    cu = str(uuid.uuid4())
    s1, _, _, _ = fe.request('PUT', '/v1/enqueue/' + MAC, command_plist('ProfileList', cu), basic())
    s2, ct, body, _ = fe.request('PUT', '/v1/enqueue/' + MAC, command_plist('ProfileList', cu), basic())
    check(s1 == 200 and s2 == 409, '23505 CommandUUID taken: 409 (got %d, %d)' % (s1, s2))
    validate_admin('/v1/enqueue/{id*}', 'put', s2, ct, body, 'enqueue 409 reply')


def test_identity(fe_header, fe_plain):
    section('identity: header only with --cert-header; TLS client certificates')
    body = vector('connect/01-idle-device.plist')
    cert = header_for(device_cert(MAC))
    status, _, _, _ = fe_header.request('PUT', '/mdm', body, {'X-Client-Cert': cert})
    check(status == 200, 'certificate from the header: 200 (got %d)' % status)
    status, _, _, _ = fe_plain.request('PUT', '/mdm', body, {'X-Client-Cert': cert})
    check(status == 403, 'header ignored without --cert-header: 403 (got %d)' % status)
    status, _, _, _ = fe_header.request('PUT', '/mdm', body, {'X-Client-Cert': ''})
    check(status == 403, 'empty header: no identity, 403 (got %d)' % status)
    # the header's PEM reaches the database as the DER it encodes; what is
    # not a certificate is still refused there, and a chain is read as the
    # database reads PEM: its first certificate
    tu = vector('checkin/02-tokenupdate-device.plist')
    status, _, _, _ = fe_header.request('PUT', '/checkin', tu, {'Content-Type': CHECKIN_TYPE, 'X-Client-Cert': cert})
    stored = psql("SELECT encode(identity_cert_sha256, 'hex') FROM mdm.checkin_messages "
                  "ORDER BY received_at DESC, id DESC LIMIT 1")
    check(status == 200 and stored == hashlib.sha256(der(device_cert(MAC))).hexdigest(),
          'header PEM: the message is stored with the SHA-256 of its DER (status %d)' % status)
    chain = urllib.parse.quote(pem(device_cert(MAC)) + pem(device_cert('someone else')), safe='')
    status, _, _, _ = fe_header.request('PUT', '/mdm', body, {'X-Client-Cert': chain})
    check(status == 200, 'header with two certificates: the first is the identity, 200 (got %d)' % status)
    for what, value in [('DER that is no certificate', '-----BEGIN CERTIFICATE-----%0AMAA%3D%0A-----END CERTIFICATE-----%0A'),
                        ('bad base64', '-----BEGIN CERTIFICATE-----%0A%2A%2A%2A%0A-----END CERTIFICATE-----%0A'),
                        ('not PEM', 'hello')]:
        status, _, _, _ = fe_header.request('PUT', '/mdm', body, {'X-Client-Cert': value})
        check(status == 403, 'header with %s: 403 (got %d)' % (what, status))
    # a PEM over mdm.max_identity_bytes is passed as it came (54000, 400), even
    # when its DER would fit (an RSA key: the setting's floor is 1 kB)
    big = os.path.join(WORK, 'big-rsa')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:4096', '-nodes', '-days', '30',
                    '-keyout', big + '.key', '-out', big + '.crt', '-subj', '/CN=big'],
                   check=True, capture_output=True)
    limit = (len(pem(big)) + len(der(big))) // 2
    psql("ALTER ROLE fe_web IN DATABASE %s SET mdm.max_identity_bytes = %d" % (DB, limit))
    fe_small = Frontend('--dsn', dsn('fe_web'), '--cert-header', 'X-Client-Cert')
    status, _, _, _ = fe_small.request('PUT', '/mdm', body, {'X-Client-Cert': header_for(big)})
    check(status == 400, 'header PEM of %d bytes over mdm.max_identity_bytes = %d, DER of %d: 400 (got %d)'
          % (len(pem(big)), limit, len(der(big)), status))
    check(fe_small.stop() == 0, 'exit 0')
    psql("ALTER ROLE fe_web IN DATABASE %s RESET ALL" % DB)

    tls_cert = make_cert('server', 'localhost')
    fe_tls = Frontend('--dsn', dsn('fe_web'), '--tls-cert', tls_cert + '.crt', '--tls-key', tls_cert + '.key',
                      tls=True)
    try:
        # Mac 3 enrolls over TLS with its certificate: it is bound
        dev = '3C1D2E3F-4A5B-4C6D-8E7F-9A0B1C2D3E4F'
        cert3 = device_cert(dev)
        auth = vector('checkin/01-authenticate.plist').replace(MAC.encode(), dev.encode())
        status, _, _, _ = fe_tls.request('PUT', '/mdm', auth, {'Content-Type': CHECKIN_TYPE}, cert=cert3)
        bound = psql("SELECT encode(cert_der, 'base64') FROM mdm.device_identities WHERE device_id = '%s'" % dev)
        check(status == 200 and base64.b64decode(bound) == der(cert3),
              'TLS: Authenticate binds the client certificate (status %d)' % status)
        tu = vector('checkin/02-tokenupdate-device.plist').replace(MAC.encode(), dev.encode())
        status, _, _, _ = fe_tls.request('PUT', '/checkin', tu, {'Content-Type': CHECKIN_TYPE}, cert=cert3)
        check(status == 200, 'TLS: TokenUpdate with the bound certificate: 200 (got %d)' % status)
        status, _, _, _ = fe_tls.request('PUT', '/checkin', tu, {'Content-Type': CHECKIN_TYPE},
                                         cert=device_cert('intruder'))
        check(status == 403, 'TLS: another certificate: 403 (got %d)' % status)
        status, _, _, _ = fe_tls.request('PUT', '/checkin', tu, {'Content-Type': CHECKIN_TYPE,
                                                                  'X-Client-Cert': header_for(cert3)})
        check(status == 403, 'TLS without a client certificate (header ignored): 403 (got %d)' % status)
        # TLS 1.2 is accepted, older is not
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c = http.client.HTTPSConnection('127.0.0.1', fe_tls.port, context=ctx, timeout=10)
        c.request('GET', '/healthz')
        check(c.getresponse().status == 200 and c.sock.version() == 'TLSv1.2', 'TLS 1.2 accepted')
        c.close()
    finally:
        check(fe_tls.stop() == 0, 'TLS front end exits 0 on SIGTERM')


def test_admin(fe):
    section('admin API: Basic auth, NanoMDM JSON validated against openapi.yaml')
    status, _, _, r = fe.request('GET', '/v1/push/' + MAC)
    check(status == 401 and (r.getheader('WWW-Authenticate') or '').startswith('Basic'), 'no credentials: 401')
    status, _, _, _ = fe.request('GET', '/v1/push/' + MAC, headers=basic(key='wrong'))
    check(status == 401, 'wrong key: 401')
    status, _, _, _ = fe.request('GET', '/v1/push/' + MAC, headers=basic(user='admin'))
    check(status == 401, 'wrong user: 401')

    status, ctype, body, _ = fe.request('GET', '/version')
    doc = validate_admin('/version', 'get', status, ctype, body, 'GET /version')
    check(status == 200 and doc and doc.get('version'), '/version names a version')

    # push certificate: upload (concatenated PEM), read back, bad bodies
    subprocess.run(['sh', os.path.join(HERE, '..', 'push_certs.sh'), os.path.join(WORK, 'push')], check=True)
    with open(os.path.join(WORK, 'push', 'mdm.crt'), 'rb') as f:
        crt = f.read()
    with open(os.path.join(WORK, 'push', 'mdm.key'), 'rb') as f:
        key = f.read()
    status, ctype, body, _ = fe.request('PUT', '/v1/pushcert', crt + key, basic())
    doc = validate_admin('/v1/pushcert', 'put', status, ctype, body, 'PUT /v1/pushcert')
    check(status == 200 and doc['topic'] == TOPIC, 'push certificate stored: topic %s' % (doc or {}).get('topic'))
    status, ctype, body, _ = fe.request('GET', '/v1/pushcert?topic=' + TOPIC, headers=basic())
    doc = validate_admin('/v1/pushcert', 'get', status, ctype, body, 'GET /v1/pushcert')
    check(status == 200 and doc['not_after'].endswith('Z'), 'push certificate read back')
    for what, b in (('no key', crt), ('garbage', b'hello'), ('key of another cert',
                    crt + open(os.path.join(WORK, 'push', 'other.key'), 'rb').read())):
        status, ctype, body, _ = fe.request('PUT', '/v1/pushcert', b, basic())
        validate_admin('/v1/pushcert', 'put', status, ctype, body, 'PUT /v1/pushcert ' + what)
        check(status == 400, 'push certificate with %s: 400 (got %d)' % (what, status))
    status, ctype, body, _ = fe.request('GET', '/v1/pushcert', headers=basic())
    validate_admin('/v1/pushcert', 'get', status, ctype, body, 'GET /v1/pushcert without topic')
    check(status == 400, 'no topic: 400')
    status, ctype, body, _ = fe.request('GET', '/v1/pushcert?topic=com.apple.mgmt.nope', headers=basic())
    validate_admin('/v1/pushcert', 'get', status, ctype, body, 'GET /v1/pushcert unknown topic')
    check(status == 404, 'unknown topic: 404 (42704)')

    # enqueue: XML and binary command plists, several IDs, nopush, per-ID errors
    cu = str(uuid.uuid4()).upper()
    status, ctype, body, _ = fe.request('PUT', '/v1/enqueue/%s,%s' % (MAC, MAC_USER),
                                        command_plist('ProfileList', cu), basic())
    doc = validate_admin('/v1/enqueue/{id*}', 'put', status, ctype, body, 'enqueue to two IDs')
    check(status == 200 and doc['command_uuid'].upper() == cu and doc['request_type'] == 'ProfileList'
          and all('push_result' in doc['status'][i] for i in (MAC, MAC_USER)),
          'enqueue: 200, its CommandUUID, a push job per ID: %s' % body[:300])
    check(psql("SELECT count(*) FROM mdm.nano_enrollment_queue WHERE command_uuid = '%s'" % cu) == '2',
          'enqueue: queued to both')
    cu = str(uuid.uuid4()).upper()
    status, ctype, body, _ = fe.request('POST', '/v1/enqueue/%s?nopush=1' % MAC,
                                        command_plist('DeviceInformation', cu, binary=True,
                                                      Queries=['OSVersion']), basic())
    doc = validate_admin('/v1/enqueue/{id*}', 'put', status, ctype, body, 'enqueue binary, nopush')
    check(status == 200 and doc.get('no_push') is True and 'status' not in doc,
          'nopush: no_push true, no push status')
    check(psql("SELECT count(*) FROM mdm.push_jobs j WHERE j.created_at >= (SELECT created_at FROM "
               "mdm.nano_commands WHERE command_uuid = '%s')" % cu) == '0', 'nopush: no push job created')
    status, ctype, body, _ = fe.request('PUT', '/v1/enqueue/%s,NOT-ENROLLED' % MAC,
                                        command_plist('ProfileList'), basic())
    doc = validate_admin('/v1/enqueue/{id*}', 'put', status, ctype, body, 'enqueue with an unknown ID')
    check(status == 207 and doc['status']['NOT-ENROLLED'].get('command_error') == 'unknown enrollment',
          'enqueue, one unknown ID: 207 with its command_error')
    status, ctype, body, _ = fe.request('PUT', '/v1/enqueue/%s' % MAC_USER,
                                        command_plist('EraseDevice', PIN='123456'), basic())
    doc = validate_admin('/v1/enqueue/{id*}', 'put', status, ctype, body, 'enqueue refused for the channel')
    check(status == 500 and 'not supported' in doc['status'][MAC_USER]['command_error'],
          'EraseDevice to a user channel: 500, the channel refuses it')
    status, ctype, body, _ = fe.request('PUT', '/v1/enqueue/%s' % MAC, b'<plist><dict/></plist>', basic())
    validate_admin('/v1/enqueue/{id*}', 'put', status, ctype, body, 'enqueue without Command')
    check(status == 400, 'enqueue of a plist that is no command: 400 (got %d)' % status)
    status, ctype, body, _ = fe.request('PUT', '/v1/enqueue/%s' % MAC, command_plist('NoSuchCommand'), basic())
    validate_admin('/v1/enqueue/{id*}', 'put', status, ctype, body, 'enqueue of an unknown RequestType')
    check(status == 400, 'unknown RequestType: 400 (got %d)' % status)

    # push
    status, ctype, body, _ = fe.request('GET', '/v1/push/%s,%s' % (MAC, MAC_USER), headers=basic())
    doc = validate_admin('/v1/push/{id*}', 'get', status, ctype, body, 'push two IDs')
    check(status == 200 and 'push_result' in doc['status'][MAC], 'push: 200 with push_result')
    status, ctype, body, _ = fe.request('GET', '/v1/push/%s,NOT-ENROLLED' % MAC, headers=basic())
    doc = validate_admin('/v1/push/{id*}', 'get', status, ctype, body, 'push with an unknown ID')
    check(status == 207, 'push, one unknown ID: 207')
    status, ctype, body, _ = fe.request('GET', '/v1/push/NOT-ENROLLED', headers=basic())
    validate_admin('/v1/push/{id*}', 'get', status, ctype, body, 'push to unknown IDs only')
    check(status == 500, 'push, every ID unknown: 500')
    status, ctype, body, _ = fe.request('GET', '/v1/push/', headers=basic())
    validate_admin('/v1/push/{id*}', 'get', status, ctype, body, 'push without IDs')
    check(status == 400, 'push without IDs: 400')


def test_misc(fe, fe_noadmin):
    section('healthz, metrics, enroll, 404, 405')
    status, _, body, _ = fe.request('GET', '/healthz')
    check(status == 200, '/healthz 200')
    status, _, _, _ = fe.request('GET', '/nope')
    check(status == 404, 'unknown path: 404')
    status, _, _, r = fe.request('GET', '/mdm')
    check(status == 405 and 'PUT' in (r.getheader('Allow') or ''), 'GET /mdm: 405 with Allow')
    status, _, _, r = fe.request('DELETE', '/v1/pushcert', headers=basic())
    check(status == 405 and r.getheader('Allow') == 'GET, PUT, POST', 'DELETE /v1/pushcert: 405, Allow: GET, PUT, POST')
    status, _, _, _ = fe_noadmin.request('GET', '/v1/push/' + MAC, headers=basic())
    check(status == 404, 'no admin API without --api-key: 404')
    status, ctype, body, _ = fe.request('GET', '/mdm/enroll')
    check(status == 200 and ctype == 'application/x-apple-aspen-config' and body == vector(
        'profiles/04-no-payloadscope-dock.mobileconfig'), '/mdm/enroll serves the profile file')
    status, _, _, _ = fe_noadmin.request('GET', '/mdm/enroll')
    check(status == 404, '/mdm/enroll without --enroll-profile: 404')
    status, ctype, body, _ = fe.request('GET', '/metrics')
    text = body.decode()
    check(status == 200 and 'mdm_frontend_requests_total{endpoint="mdm",status="200"}' in text and
          'mdm_frontend_request_duration_seconds_bucket{endpoint="mdm",le="+Inf"}' in text and
          'mdm_frontend_db_call_seconds_count' in text and 'mdm_frontend_db_errors_total{kind="statement"}' in text,
          '/metrics: requests, latency, database wait and errors')
    log = fe.logtext()
    check('PUT /mdm 200 ' in log and ' ms' in log and 'BEGIN CERTIFICATE' not in log and
          'X-Client-Cert' not in log, 'one log line per request, no certificates')
    check('PUT /v1/enqueue/%s' % MAC in log, 'admin log lines name the enrollment IDs')
    test_spread()


def test_spread():
    """Connections that arrive together go to different workers."""
    fe2 = Frontend('--dsn', dsn('fe_web'), '--workers', '2')
    try:
        time.sleep(0.3)     # the start-up probe's connection is gone
        conns = [fe2.conn() for _ in range(2)]
        for c in conns:
            c.connect()     # both pending before either is served
        for c in conns:
            status, _, _, _ = fe2.request('GET', '/healthz', conn=c)
            check(status == 200, 'two keep-alive connections at once: /healthz 200')
        _, _, body, _ = fe2.request('GET', '/metrics')
        counts = sorted(int(v) for v in re.findall(r'^mdm_frontend_worker_connections\{worker="\d+"\} (\d+)$',
                                                    body.decode(), re.M))
        check(counts == [1, 2], 'two connections at once and a third: one and two per worker (%s)' % counts)
        for c in conns:
            c.close()
    finally:
        check(fe2.stop() == 0, 'the two-worker front end exits 0 on SIGTERM')


def test_restart_under_load(fe):
    section('database restart under load: 503s, recovery, every 200 stored')
    n = 1500
    uuids = [str(uuid.uuid4()).upper() for _ in range(n)]
    psql("SELECT mdm.enqueue(ARRAY['%s'], jsonb_build_object('CommandUUID', u, 'Command', "
         "'{\"RequestType\": \"ProfileList\"}'::jsonb), push => false) FROM unnest(ARRAY[%s]) u"
         % (MAC, ','.join("'%s'" % u for u in uuids)))
    cert = header_for(device_cert(MAC))
    base = plistlib.loads(vector('connect/04-notnow-device.plist'))
    answered = {}
    statuses = {}
    lock = threading.Lock()

    def worker(part):
        c = fe.conn(timeout=30)
        for u in part:
            body = plistlib.dumps(base | {'Status': 'Acknowledged', 'CommandUUID': u})
            while True:
                try:
                    c.request('PUT', '/mdm', body, {'X-Client-Cert': cert})
                    r = c.getresponse()
                    r.read()
                    status = r.status
                except (OSError, http.client.HTTPException):
                    c.close()
                    c = fe.conn(timeout=30)
                    status = -1
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        answered[u] = True
                if status != 503 and status != -1:
                    break
                time.sleep(0.02)
        c.close()

    threads = [threading.Thread(target=worker, args=(uuids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    while len(answered) < 100 and any(t.is_alive() for t in threads):
        time.sleep(0.02)
    cluster = os.environ.get('PG_CLUSTER_NAME', 'regress')
    version = psql('SHOW server_version_num', db='postgres')[:2]
    subprocess.run(['pg_ctlcluster', version, cluster, 'stop', '-m', 'fast'], check=True)
    time.sleep(0.5)
    health_down, _, _, _ = fe.request('GET', '/healthz')
    subprocess.run(['pg_ctlcluster', version, cluster, 'start'], check=True)
    for t in threads:
        t.join(120)
    check(fe.proc.poll() is None, 'the front end survived the restart')
    check(health_down == 503, '/healthz 503 while the database is down (got %d)' % health_down)
    check(statuses.get(503, 0) > 0, 'some requests got 503 during the restart: %s' % statuses)
    check(len(answered) == n, 'every report answered in the end (%d of %d)' % (len(answered), n))
    stored = int(psql("SELECT count(*) FROM mdm.nano_command_results WHERE status = 'Acknowledged' "
                      "AND command_uuid = ANY (ARRAY[%s]::uuid[])" % ','.join("'%s'" % u for u in answered)))
    check(stored == len(answered), 'every report answered 200 is in the database (%d of %d)'
          % (stored, len(answered)))
    for _ in range(50):
        status, _, _, _ = fe.request('GET', '/healthz')
        if status == 200:
            break
        time.sleep(0.1)
    check(status == 200, '/healthz 200 after the restart')


def test_sigterm():
    section('SIGTERM: stop accepting, finish in flight, exit 0')
    fe = Frontend('--dsn', dsn('fe_web'), '--cert-header', 'X-Client-Cert')
    holder = subprocess.Popen(['psql', '-X', '-q', '-d', DB], stdin=subprocess.PIPE, text=True)
    holder.stdin.write('BEGIN; LOCK TABLE mdm.checkin_messages IN ACCESS EXCLUSIVE MODE; SELECT 1;\n')
    holder.stdin.flush()
    # the lock is held before the request is sent (psql can take a while to
    # start on a loaded machine)
    for _ in range(200):
        if psql("SELECT count(*) FROM pg_locks WHERE relation = 'mdm.checkin_messages'::regclass "
                "AND mode = 'AccessExclusiveLock' AND granted") == '1':
            break
        time.sleep(0.05)
    result = {}

    def slow():
        body = vector('checkin/02-tokenupdate-device.plist')
        result['status'] = fe.request('PUT', '/checkin', body, {'Content-Type': CHECKIN_TYPE,
                                                                'X-Client-Cert': header_for(device_cert(MAC))})[0]
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    fe.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    refused = False
    try:
        socket.create_connection(('127.0.0.1', fe.port), timeout=2).close()
    except OSError:
        refused = True
    check(refused, 'no new connections after SIGTERM')
    check(fe.proc.poll() is None, 'still running while a request is in flight')
    holder.stdin.write('COMMIT;\n')
    holder.stdin.close()
    holder.wait()
    t.join(30)
    try:
        rc = fe.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
        fe.stop(signal.SIGKILL)
    check(result.get('status') == 200, 'the request in flight was answered 200 (%s)' % result.get('status'))
    check(rc == 0, 'exit status 0 after SIGTERM (got %s)' % rc)
    check('SIGTERM' in fe.logtext(), 'SIGTERM logged')


def main():
    setup_database()
    test_startup_failures()
    fe = Frontend('--dsn', dsn('fe_web'), '--admin-dsn', dsn('fe_admin'), '--api-key', API_KEY,
                  '--cert-header', 'X-Client-Cert', '--workers', '3',
                  '--enroll-profile', os.path.join(VECTORS, 'profiles', '04-no-payloadscope-dock.mobileconfig'))
    fe_plain = Frontend('--dsn', dsn('fe_web'), '--workers', '1')
    try:
        test_checkins(fe)
        test_admin(fe)
        test_reports(fe)
        test_bad_input(fe)
        test_sqlstates(fe)
        test_identity(fe, fe_plain)
        test_misc(fe, fe_plain)
        test_restart_under_load(fe)
    finally:
        rc = fe.stop()
        check(rc == 0, 'front end exits 0 on SIGTERM (got %s)' % rc)
        fe_plain.stop()
    test_sigterm()
    print('front end: %d checks passed, %d failed' % (passed, len(failed)))
    if failed:
        for f in failed:
            print('  failed:', f)
        print('front end log:', fe.logtext()[-3000:])
        return 1
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
