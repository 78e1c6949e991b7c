"""A registry token server for tests (the Docker Registry v2 token auth flow): checks Basic
credentials and answers GET /token?service=S&scope=repository:NAME:pull with an RS256 JWT
that the registry trusts (signed with --key, whose certificate --cert is in the registry's
rootcertbundle and sent as the x5c header). Signing uses the openssl CLI.

GET /count returns how many tokens were issued. Prints "listening PORT" once serving.
"""
import argparse
import base64
import http.server
import json
import subprocess
import sys
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--cert-der", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    cert = base64.b64encode(open(args.cert_der, "rb").read()).decode()
    expected = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
    issued = {"count": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            if url.path == "/count":
                return self.reply(200, issued)
            if self.headers.get("Authorization") != expected:
                return self.reply(401, {"details": "bad credentials"})
            q = urllib.parse.parse_qs(url.query)
            access = []
            for scope in q.get("scope", []):
                kind, name, actions = scope.split(":", 2)
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            header = {"typ": "JWT", "alg": "RS256", "x5c": [cert]}
            claims = {"iss": args.issuer, "sub": args.user, "aud": q.get("service", [""])[0],
                      "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(now) + str(issued["count"]),
                      "access": access}
            signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
            signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", args.key],
                                       input=signing_input.encode(), capture_output=True,
                                       check=True).stdout
            issued["count"] += 1
            self.reply(200, {"token": signing_input + "." + b64url(signature), "expires_in": 300})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
