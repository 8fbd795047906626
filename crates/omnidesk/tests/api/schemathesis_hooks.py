"""Schemathesis hooks for OmniDesk's contract test (tests/api/contract.rs).

Every generated request is sent as the test's owner. Generated requests may sign the owner out
(`logout-all`, a removed session); the next request then logs in again, so that the rest of the run is
still authenticated. The test passes the server and the owner in OMNIDESK_ST_URL, OMNIDESK_ST_EMAIL and
OMNIDESK_ST_PASSWORD.
"""

import json
import os
import urllib.request

import schemathesis

_state = {"token": None}


def _login():
    body = json.dumps(
        {"email": os.environ["OMNIDESK_ST_EMAIL"], "password": os.environ["OMNIDESK_ST_PASSWORD"]}
    ).encode()
    request = urllib.request.Request(
        os.environ["OMNIDESK_ST_URL"] + "/api/users/login",
        data=body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


@schemathesis.auth(refresh_interval=None)
class OwnerSession:
    def get(self, case, context):
        if _state["token"] is None:
            _state["token"] = _login()
        return _state["token"]

    def set(self, case, token, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {token}"


@schemathesis.hook
def after_call(context, case, response):
    # A token refused as revoked (or expired) is replaced before the next request.
    if response.status_code == 401 and case.headers and case.headers.get("Authorization") == f"Bearer {_state['token']}":
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
        if code in ("token_revoked", "token_expired", "session_ended"):
            _state["token"] = None
