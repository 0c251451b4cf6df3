#!/usr/bin/env python3
"""The e2e harness's node: there is no kubelet, so this plays one for the Job pods.

It watches the namespace's pods (polling through kubectl), runs each new pod's container command
locally with the same `janus` binary, its volumes mapped to local directories (the artifacts
claim to ARTIFACTS, a subPath of it to that folder, ConfigMap volumes to their data written out), and then patches the pod's
status subresource to Succeeded or Failed with the container's termination message, exactly as
a kubelet reports it, so the real Job controller completes or fails the Job.

usage: node.py NAMESPACE ARTIFACTS_DIR WORK_DIR   (runs until killed)
Environment: E2E_STEP_DELAY_FILE, a file holding the seconds to wait before running each pod
(read for every pod, so a test can slow steps down to interrupt one).
"""

import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time

NAMESPACE, ARTIFACTS, WORK = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
DELAY_FILE = os.environ.get("E2E_STEP_DELAY_FILE", "")
seen = set()


def kubectl(*args, input=None):
    return subprocess.run(["kubectl", "-n", NAMESPACE, *args], input=input, capture_output=True, text=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg):
    print(f"[node {now()}] {msg}", flush=True)


def run_pod(pod):
    name = pod["metadata"]["name"]
    spec = pod["spec"]
    container = spec["containers"][0]
    started = now()
    kubectl("patch", "pod", name, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"phase": "Running", "startTime": started, "containerStatuses": [{
            "name": container["name"], "image": container.get("image", ""), "imageID": "", "ready": True,
            "restartCount": 0, "started": True, "state": {"running": {"startedAt": started}}}]}}))
    try:
        delay = float(open(DELAY_FILE).read().strip()) if DELAY_FILE else 0.0
    except (OSError, ValueError):
        delay = 0.0
    if delay > 0:
        time.sleep(delay)
    mounts = {}
    pod_dir = os.path.join(WORK, name)
    os.makedirs(pod_dir, exist_ok=True)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        v = volumes.get(m["name"], {})
        if "persistentVolumeClaim" in v:
            # A subPath mount (a step's own output folder over the read-only volume) maps to
            # that folder, created as the kubelet creates it. Read-only is not enforced here.
            target = os.path.join(ARTIFACTS, m["subPath"]) if m.get("subPath") else ARTIFACTS
            os.makedirs(target, exist_ok=True)
            mounts[m["mountPath"]] = target
        elif "configMap" in v:
            cm = json.loads(kubectl("get", "configmap", v["configMap"]["name"], "-o", "json").stdout)
            d = os.path.join(pod_dir, "cm-" + m["name"])
            os.makedirs(d, exist_ok=True)
            for k, text in (cm.get("data") or {}).items():
                with open(os.path.join(d, k), "w") as f:
                    f.write(text)
            mounts[m["mountPath"]] = d

    # One pass, longest mount path first: a target (which may itself contain "/artifacts")
    # is never rewritten again.
    pattern = re.compile("|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True)))

    def local(arg):
        return pattern.sub(lambda m: mounts[m.group(0)], arg) if mounts else arg

    command = [local(a) for a in container.get("command", []) + container.get("args", [])]
    env = dict(os.environ)
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
    termination = os.path.join(pod_dir, "termination-log")
    env["TERMINATION_MESSAGE_PATH"] = termination
    log(f"running {name}: {' '.join(command)[:200]}")
    with open(os.path.join(pod_dir, "log"), "w") as out:
        code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    message = open(termination).read() if os.path.exists(termination) else ""
    if not message and code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        with open(os.path.join(pod_dir, "log")) as f:
            message = "".join(f.readlines()[-40:])[-2048:]
    finished = now()
    phase = "Succeeded" if code == 0 else "Failed"
    status = {"status": {"phase": phase, "containerStatuses": [{
        "name": container["name"], "image": container.get("image", ""), "imageID": "", "ready": False,
        "restartCount": 0, "started": False,
        "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                 "message": message[:4096], "startedAt": started, "finishedAt": finished}}}]}}
    r = kubectl("patch", "pod", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))
    log(f"{name} {phase} (exit {code}){'' if r.returncode == 0 else ' PATCH FAILED: ' + r.stderr}")


def main():
    os.makedirs(WORK, exist_ok=True)
    while True:
        r = kubectl("get", "pods", "-o", "json")
        if r.returncode == 0:
            for pod in json.loads(r.stdout)["items"]:
                uid = pod["metadata"]["uid"]
                if uid in seen or pod.get("status", {}).get("phase", "Pending") != "Pending":
                    continue
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                seen.add(uid)
                threading.Thread(target=run_pod, args=(pod,), daemon=True).start()
        time.sleep(0.3)


if __name__ == "__main__":
    main()
