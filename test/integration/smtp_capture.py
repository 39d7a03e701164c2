#!/usr/bin/python3
"""A capturing SMTP server for the integration tests (aiosmtpd).

    smtp_capture.py PORT DIR [--reject-rcpt ADDR] [--tempfail-rcpt ADDR]
                    [--auth USER:PASSWORD] [--starttls CERT KEY | --tls CERT KEY]

Listens on 127.0.0.1:PORT and writes every accepted message to DIR/NNNNNN.eml
(the DATA exactly as received) with DIR/NNNNNN.env holding "MAIL FROM" and the
recipients, one per line.  RCPT TO of an address given with --reject-rcpt is
answered 550 (hard bounce), with --tempfail-rcpt 451.  --auth requires AUTH
(PLAIN or LOGIN) with that user and password before MAIL (the .env file then
ends with "AUTH user"); --starttls offers STARTTLS with the certificate,
--tls speaks TLS from the first byte.  Writes DIR/ready when listening; stops
on SIGTERM.
"""
import argparse
import asyncio
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Capture:
    def __init__(self, directory, reject, tempfail):
        self.dir = directory
        self.reject = {a.lower() for a in reject}
        self.tempfail = {a.lower() for a in tempfail}
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return '550 5.1.1 <%s>: Recipient address rejected: User unknown' % address
        if address.lower() in self.tempfail:
            return '451 4.3.0 <%s>: Temporary failure, try later' % address
        envelope.rcpt_tos.append(address)
        return '250 OK'

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.dir, '%06d' % self.count)
        with open(base + '.eml.tmp', 'wb') as f:
            f.write(envelope.original_content)
        with open(base + '.env', 'w') as f:
            f.write(envelope.mail_from + '\n')
            for r in envelope.rcpt_tos:
                f.write(r + '\n')
            if session.authenticated:
                f.write('AUTH %s\n' % session.auth_data.decode())
        os.rename(base + '.eml.tmp', base + '.eml')
        return '250 2.0.0 Ok: queued as %06d' % self.count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('port', type=int)
    ap.add_argument('dir')
    ap.add_argument('--reject-rcpt', action='append', default=[])
    ap.add_argument('--tempfail-rcpt', action='append', default=[])
    ap.add_argument('--auth')
    ap.add_argument('--starttls', nargs=2, metavar=('CERT', 'KEY'))
    ap.add_argument('--tls', nargs=2, metavar=('CERT', 'KEY'))
    args = ap.parse_args()
    kwargs = {}
    if args.auth:
        user, password = args.auth.split(':', 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login.decode() == user and auth_data.password.decode() == password)
            return AuthResult(success=ok, auth_data=auth_data.login if ok else None, handled=False)
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    for opt, key in ((args.starttls, 'tls_context'), (args.tls, 'ssl_context')):
        if opt:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(opt[0], opt[1])
            kwargs[key] = ctx
    os.makedirs(args.dir, exist_ok=True)
    handler = Capture(args.dir, args.reject_rcpt, args.tempfail_rcpt)
    # decode_data=False keeps the bytes as sent; 8BITMIME etc. left to defaults.
    controller = Controller(handler, hostname='127.0.0.1', port=args.port,
                            decode_data=False, data_size_limit=10 * 1024 * 1024, **kwargs)
    controller.start()
    open(os.path.join(args.dir, 'ready'), 'w').close()
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    while not stop:
        signal.pause()
    controller.stop()


if __name__ == '__main__':
    sys.exit(main())
