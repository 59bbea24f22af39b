#!/usr/bin/env python3
"""Fails when a server log of the test suites holds a secret.

    check-logs-for-secrets.py DIR
    check-logs-for-secrets.py --self-test

DIR holds the debug logs the servers wrote (SWITCHBOARD_DEBUG_LOG_DIR: one file per
process, *.log) and secrets.txt, the access keys the suites gave their relays, one a line.
A line is a leak when it holds one of those keys, a JSON Web Token (or its signature: the
third part alone, 43 or 86 base64url characters after a dot or a space), a bearer
credential, or an `AccessKey=` whose value is not redacted. Leaks are reported by file,
line and kind, never by printing the secret. It also fails when the logs are missing or
hold no debug lines, so that a run which logged nothing cannot pass. --self-test plants
each kind of leak in logs of its own and checks that each is found, and that clean logs
pass.
"""

import pathlib
import re
import sys

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
SIGNATURE = re.compile(r"(?:^|[\s.=:\"'])([A-Za-z0-9_-]{86}|[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")
BEARER = re.compile(r"Bearer\s+[A-Za-z0-9_.-]{8,}", re.IGNORECASE)
ACCESS_KEY = re.compile(r"AccessKey=(?!<redacted>|\*)[^;\s\"]+", re.IGNORECASE)


def looks_random(text):
    """A signature mixes upper and lower case letters and digits; words and ids do not."""
    return (
        any(c.islower() for c in text)
        and any(c.isupper() for c in text)
        and any(c.isdigit() for c in text)
    )


def scan(root):
    """The leaks in the logs of ROOT, and a summary; exits when the logs cannot be checked."""
    secrets_file = root / "secrets.txt"
    secrets = []
    if secrets_file.exists():
        secrets = [s.strip() for s in secrets_file.read_text().splitlines() if len(s.strip()) >= 8]
    logs = sorted(root.glob("*.log"))
    kinds = {p.name.rsplit("-", 1)[0] for p in logs}
    missing = {"switchboard-service", "conformance-server"} - kinds
    if missing:
        sys.exit(f"error: no debug log from {', '.join(sorted(missing))} in {root}")
    if not secrets:
        sys.exit(f"error: {secrets_file} names no access key to look for")
    leaks = []
    lines = debug_lines = 0
    for path in logs:
        with path.open(encoding="utf-8", errors="replace") as log:
            for number, line in enumerate(log, 1):
                lines += 1
                debug_lines += " DEBUG " in line
                found = []
                if any(secret in line for secret in secrets):
                    found.append("an access key")
                if JWT.search(line):
                    found.append("a token")
                elif any(looks_random(m) for m in SIGNATURE.findall(line)):
                    found.append("a token signature")
                if BEARER.search(line):
                    found.append("a bearer credential")
                if ACCESS_KEY.search(line):
                    found.append("a connection string's key")
                for kind in found:
                    leaks.append(f"{path.name}:{number}: {kind}")
    if debug_lines == 0:
        sys.exit(f"error: the {len(logs)} logs in {root} hold no DEBUG line; debug logging was not on")
    return leaks, f"{lines} lines of {len(logs)} server logs ({debug_lines} at debug)"


def self_test():
    import tempfile

    key = "5f0e1d2c3b4a59687766554433221100ffeeddccbbaa9988"
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MX0.Qm9ndXNTaWduYXR1cmVGb3JUZXN0czEyMzQ1Njc4OTBhYg"
    signature = "Qm9ndXNTaWduYXR1cmVGb3JUZXN0czEyMzQ1Njc4OTBh"[:43]
    clean = [
        "2026-12-03T10:00:00Z DEBUG switchboard: client connected connection=AbCdEfGhIjKlMnOpQrStUv",
        "2026-12-03T10:00:00Z DEBUG switchboard: options ServiceOptions { connection_string: Some(\"<redacted>\") }",
    ]
    planted = {
        "an access key": f"DEBUG relay: starting with {key}",
        "a token": f"DEBUG client: negotiate answered {token}",
        "a token signature": f"DEBUG auth: bad signature .{signature}",
        "a bearer credential": "DEBUG request: authorization: Bearer abc.def.ghijklmnop",
        "a connection string's key": "DEBUG sdk: Endpoint=http://x;AccessKey=plainkey;Version=1.0;",
    }
    for kind, line in [(None, None), *planted.items()]:
        with tempfile.TemporaryDirectory() as root:
            root = pathlib.Path(root)
            (root / "secrets.txt").write_text(key + "\n")
            (root / "conformance-server-1.log").write_text("\n".join(clean) + "\n")
            (root / "switchboard-service-2.log").write_text("\n".join([*clean, *([line] if line else [])]) + "\n")
            leaks, _ = scan(root)
            found = {leak.split(": ", 1)[1] for leak in leaks}
            expected = {kind} if kind else set()
            if found != expected:
                sys.exit(f"error: self-test: planted {kind or 'nothing'}, found {sorted(found) or 'nothing'}")
            if line and any(key in leak or token in leak for leak in leaks):
                sys.exit("error: self-test: a report shows the secret")
    print(f"self-test: clean logs pass, each of {len(planted)} planted kinds of secret is found")


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    leaks, summary = scan(pathlib.Path(sys.argv[1]))
    if leaks:
        print("\n".join(leaks[:50]), file=sys.stderr)
        sys.exit(f"error: {len(leaks)} secret(s) in the servers' logs (first 50 above)")
    print(f"no secret in {summary}")


if __name__ == "__main__":
    main()
