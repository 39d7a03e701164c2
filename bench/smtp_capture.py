#!/usr/bin/python3
"""An SMTP server on 127.0.0.1 that timestamps the acceptance of every message.

    smtp_capture.py PORT OUTFILE

For each message it appends "<epoch seconds> <Message-ID without brackets>" to
OUTFILE at the moment it answers 250 to the end of DATA, which is when the
client knows the message was accepted.  Runs until killed.
"""
import email.parser
import signal
import sys
import time

from aiosmtpd.controller import Controller


class Capture:
    def __init__(self, out):
        self.out = out
        self.parser = email.parser.BytesHeaderParser()

    async def handle_DATA(self, server, session, envelope):
        accepted = time.time()
        msg = self.parser.parsebytes(envelope.original_content or envelope.content)
        mid = (msg.get("Message-ID") or "").strip().strip("<>")
        self.out.write(f"{accepted:.6f} {mid}\n")
        self.out.flush()
        return "250 OK"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "a") as out:
        controller = Controller(Capture(out), hostname="127.0.0.1", port=port)
        controller.start()
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        controller.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
