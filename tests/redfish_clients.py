#!/usr/bin/env python3
"""Redfish clients people already use, unchanged, against `racklet up` on the twin:
OpenStack Ironic's `sushy` and DMTF's `redfish` library log in, list systems, read a
power state and reset a tray. Usage: tests/redfish_clients.py RACKLET_BINARY"""

import os
import json
import subprocess
import sys
import tempfile
import time

import redfish
import sushy
from sushy import auth as sushy_auth

passed = 0
failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def wait_for(predicate, seconds=30.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def main():
    racklet = sys.argv[1] if len(sys.argv) > 1 else "target/debug/racklet"
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "data")
        out = open(os.path.join(work, "up.out"), "w+")
        # 10x real time: trays boot in seconds; the twin stays deterministic.
        # These clients power trays by hand: the control plane only reports that drift.
        up = subprocess.Popen([racklet, "up", "--compute", "emulated", "--data-dir", data, "--speed", "10", "--duration", "600",
                               "--drift", "report"],
                              stdout=out, stderr=subprocess.DEVNULL)
        try:
            def ready():
                out.seek(0)
                text = out.read()
                return text if "racklet is ready" in text else None
            text = wait_for(ready)
            if not text:
                check("racklet up becomes ready", False)
                return
            url = [l.split()[1] for l in text.splitlines() if l.startswith("redfish ")][0]
            base = url[: -len("/redfish/v1")]
            password = open(os.path.join(data, "redfish/chassis-1/initial-admin-password")).read().strip()
            cert = os.path.join(data, "redfish/chassis-1/tls/cert.pem")
            os.environ["REQUESTS_CA_BUNDLE"] = cert
            os.environ["CURL_CA_BUNDLE"] = cert

            # Let the control plane first bring the rack to the repository's state, so that
            # what the clients change by hand afterwards is drift it only reports.
            def converged():
                got = subprocess.run([racklet, "get", "nodes", "-o", "json", "--data-dir", data],
                                     capture_output=True, text=True)
                if got.returncode != 0:
                    return False
                nodes = json.loads(got.stdout)["items"]  # a List, as kubectl prints
                return len(nodes) == 7 and all(n["status"]["sync"] == "Synced" for n in nodes)
            check("the control plane converges the rack first", wait_for(converged))

            # sushy (OpenStack Ironic's client), session authentication.
            conn = sushy.Sushy(url, verify=cert,
                               auth=sushy_auth.SessionAuth(username="admin", password=password))
            members = conn.get_system_collection().get_members()
            check("sushy lists the seven systems", len(members) == 7, f"got {len(members)}")
            system = conn.get_system("/redfish/v1/Systems/6")
            check("sushy reads node-6's power state (off in the example)", str(system.power_state).lower().endswith("off"),
                  f"got {system.power_state}")
            on = getattr(sushy, "RESET_ON", None) or sushy.ResetType.ON
            system.reset_system(on)
            def powered():
                system.refresh()
                return str(system.power_state).lower().endswith("on") and "powering" not in str(system.power_state).lower()
            check("sushy powers node-6 on", wait_for(powered), f"state {system.power_state}")

            # DMTF's redfish library, session login.
            client = redfish.redfish_client(base_url=base, username="admin", password=password, cafile=cert)
            client.login(auth="session")
            systems = client.get("/redfish/v1/Systems")
            check("redfish lists the seven systems", systems.status == 200 and systems.dict.get("Members@odata.count") == 7,
                  f"{systems.status} {systems.dict}")
            before = client.get("/redfish/v1/Systems/6").dict.get("PowerState")
            check("redfish reads node-6 as on", before == "On", f"got {before}")
            reset = client.post("/redfish/v1/Systems/6/Actions/ComputerSystem.Reset", body={"ResetType": "ForceOff"})
            check("redfish force-offs node-6", reset.status in (200, 202, 204), f"status {reset.status} {reset.text}")
            after = wait_for(lambda: client.get("/redfish/v1/Systems/6").dict.get("PowerState") == "Off")
            check("node-6 reads off afterwards", after)
            client.logout()
        finally:
            up.send_signal(2)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                up.kill()
    print(f"redfish clients: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
