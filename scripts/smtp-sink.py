#!/usr/bin/env python3
"""A loopback SMTP server for billrun's tests: stores each message it receives as a file.

    python3 scripts/smtp-sink.py --dir MAILDIR [--port 0] [--auth USER:PASSWORD]

Listens on 127.0.0.1 (port 0 = any free port) and prints the port on the first line of
stdout once it accepts connections. Each message becomes MAILDIR/<n>.eml (the message as
received), MAILDIR/<n>.body.txt (its text body, decoded from its transfer encoding) and
MAILDIR/<n>.json (envelope: mail_from, rcpt_tos, the user name it authenticated as, and
the decoded subject), the .json written last, each via a temporary name and a rename, so a
reader that sees the .json sees the whole message. With --auth, AUTH PLAIN/LOGIN is
offered without TLS (loopback only) and only that user name and password are accepted.
Runs until killed or until its standard input is closed (with --until-killed: until
killed, for trying billrun by hand: `python3 scripts/smtp-sink.py --dir mail --port 2525
--until-killed &`).
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult


class Store:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.folder, f"{self.count:04d}")
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        message = email.message_from_bytes(content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": getattr(session, "auth_data", None),
            "subject": str(message["subject"] or ""),
        }
        if isinstance(meta["auth_user"], (bytes, bytearray)):
            meta["auth_user"] = meta["auth_user"].decode("utf-8", "replace")
        text = body.get_content() if body is not None else ""
        for suffix, data in (
            (".eml", content),
            (".body.txt", text.encode("utf-8")),
            (".json", json.dumps(meta).encode()),
        ):
            tmp = base + suffix + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, base + suffix)
        return "250 Message accepted for delivery"


def authenticator_for(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        login = getattr(auth_data, "login", None)
        secret = getattr(auth_data, "password", None)
        if isinstance(login, bytes):
            login = login.decode()
        if isinstance(secret, bytes):
            secret = secret.decode()
        if login == user and secret == password:
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    return check


async def main():
    # Loopback without TLS is the point here; aiosmtpd's warnings about it are noise.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth", help="USER:PASSWORD to require")
    parser.add_argument("--until-killed", action="store_true", help="ignore standard input")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    handler = Store(args.dir)
    kwargs = {}
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs = dict(
            authenticator=authenticator_for(user, password),
            auth_require_tls=False,
            auth_required=True,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="billrun-test-smtp", **kwargs), "127.0.0.1", args.port
    )
    print(server.sockets[0].getsockname()[1], flush=True)

    if args.until_killed:
        await asyncio.Event().wait()
    # Stop when the parent closes our stdin (or dies), so no server is left behind.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
