#!/usr/bin/env python3
"""The lab's admission policy: a validating webhook, one per region.

  lab/kube/webhook.py --region REGION --port PORT --cert CRT --key KEY

Refuses objects labelled `lab.drtool.dev/reject-in: REGION` with this region's
name, as a cluster policy (Kyverno, Gatekeeper) of one region refuses what
another region allowed: a restore into that region must report each refused
object with the policy's message. Every other request is allowed (the
ValidatingWebhookConfiguration sends only labelled objects). GET /healthz
answers "ok". Python 3 stdlib only; serves HTTPS on 127.0.0.1.
"""

import argparse
import http.server
import json
import ssl

LABEL = "lab.drtool.dev/reject-in"


def review(request, region):
    obj = request.get("object") or {}
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    response = {"uid": request.get("uid", ""), "allowed": True}
    if labels.get(LABEL) == region:
        response["allowed"] = False
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": f"lab policy of {region}: {obj.get('kind', 'object')} {meta.get('name', '?')} "
                       f"is labelled {LABEL}={region}",
        }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--region", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def send(self, code, body):
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                self.send(200, b"ok")
            else:
                self.send(404, {"error": "not found"})

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                self.send(200, review(body.get("request") or {}, args.region))
            except (ValueError, json.JSONDecodeError) as e:
                self.send(400, {"error": f"not an AdmissionReview: {e}"})

        def log_message(self, fmt, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
