"""The benchmark: the Rust function and `deploy` side by side with the lab's own approach (a
Python 3.11 port of its function; a bash script of awscli calls), on one machine, in one run,
through the local AWS. Prints one markdown table; see bench/README.md.

Run through scripts/bench, which installs what this needs. Every local AWS this starts is
stopped at the end, also on failure or Ctrl-C.
"""

import argparse
import base64
import hashlib
import io
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile

import boto3
import botocore.config

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from timing_proxy import TimingProxy  # noqa: E402

ACCOUNT = "123456789012"
REGION = "us-west-2"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
RUNTIME = "provided.al2023"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/bench-function"
REQUIRED = [("tcp", 80, "0.0.0.0/0"), ("tcp", 443, "0.0.0.0/0")]
# The calls a function makes in an evaluation or a sweep: what an AWS-like latency is put on.
LATENCY_OPS = ["ec2:*", "config:PutEvaluations"]
REPORT_RE = re.compile(r"REPORT RequestId: \S+\s+Duration: ([\d.]+) ms.*?Max Memory Used: (\d+) MB(?:\s+Init Duration: ([\d.]+) ms)?")


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Failure(Exception):
    """Something did not run, or a number is absurd."""


# ---------------------------------------------------------------------------------------------
# The local AWS: `deploy local serve` in its own process group, started and stopped by us.

RUNNING = []


class LocalAws:
    def __init__(self, deploy, port, home, tools):
        self.deploy, self.port, self.home, self.tools = deploy, port, home, tools
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process = None

    def admin(self, method, path, timeout=30, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.endpoint + "/_sg-lab/" + path, method=method, data=data)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as err:
            raise Failure(f"the local AWS refused {method} /_sg-lab/{path}: {err.read()[:300]!r}") from err

    def set_latency(self, ms):
        """Every call of the functions (EC2's and PutEvaluations) answers `ms` late, as AWS's
        round trip from a Lambda function would: the local AWS's `delay` fault. 0: none."""
        if ms:
            self.admin("POST", "faults", body={"operations": LATENCY_OPS, "kind": "delay", "delayMs": int(ms)})
        else:
            self.admin("DELETE", "faults")

    def set_behaviours(self, spec):
        self.admin("POST", "behaviours", body=spec)

    def healthy(self):
        try:
            return self.admin("GET", "health", timeout=2).get("status") == "ok"
        except OSError:
            return False

    def __enter__(self):
        if self.healthy():
            raise Failure(f"something already answers on port {self.port}; pass --port")
        os.makedirs(self.home, exist_ok=True)
        # moto as it is (no AWS behaviours): the bench times the two functions over the same
        # calls, and the emulated windows (EC2 read lag, Pending functions) would only add the
        # emulator's own waits to both sides.
        env = dict(os.environ, SG_LAB_HOME=self.home, SG_LAB_AWS_LIKE="off",
                   PATH=self.tools + os.pathsep + os.environ["PATH"])
        logfile = open(os.path.join(self.home, "serve.log"), "w")
        self.process = subprocess.Popen(
            [self.deploy, "local", "serve", "--port", str(self.port)],
            env=env, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
        )
        logfile.close()
        RUNNING.append(self)
        deadline = time.monotonic() + 90
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Failure(f"the local AWS did not start on port {self.port}; see {self.home}/serve.log")
            time.sleep(0.1)
        self.backend = self.admin("GET", "health")["backend"]
        self.front = Clients(self.endpoint)
        self.moto = Clients(self.backend)
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """Asks the front to stop (it stops moto and the functions), then ends its process group."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if self in RUNNING:
            RUNNING.remove(self)
        if process.poll() is None:
            try:
                self.admin("POST", "shutdown", timeout=5)
            except OSError:
                pass
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass

    def calls(self):
        return self.admin("GET", "calls")

    def reset_calls(self):
        self.admin("DELETE", "calls")

    def evaluations(self, rule):
        return [e for e in self.admin("GET", "evaluations", timeout=120) if e["rule"] == rule]


def stop_all(*_):
    for aws in list(RUNNING):
        aws.stop()


class Clients:
    def __init__(self, endpoint):
        config = botocore.config.Config(retries={"max_attempts": 1}, read_timeout=600, connect_timeout=10)
        session = boto3.session.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
        make = lambda service: session.client(service, endpoint_url=endpoint, config=config)  # noqa: E731
        self.ec2, self.config, self.awslambda, self.logs, self.s3, self.iam = (
            make(s) for s in ("ec2", "config", "lambda", "logs", "s3", "iam")
        )


# ---------------------------------------------------------------------------------------------
# Artifacts.


def zip_file(entries, path):
    """entries: [(name, bytes, executable)] → a deterministic zip at path."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, executable in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return path


def rust_zip(args, work):
    """The release zip when it exists (what ships), else the debug binary zipped here."""
    release = os.path.join(ROOT, "target/lambda/x86_64/bootstrap/bootstrap.zip")
    if os.path.isfile(release) and not args.debug_zip:
        return release, "release (target/lambda/x86_64/bootstrap/bootstrap.zip)"
    binary = os.path.join(args.target_dir, "debug/bootstrap")
    if not os.path.isfile(binary):
        raise Failure(f"{binary} is missing: run `cargo build --workspace` (or scripts/package for the release zip)")
    with open(binary, "rb") as f:
        data = f.read()
    return zip_file([("bootstrap", data, True)], os.path.join(work, "rust-debug.zip")), "debug (target/debug/bootstrap)"


def python_zip(args, work):
    """The Python port: lambda_function.py, the bootstrap starting awslambdaric, and boto3 +
    awslambdaric installed for this interpreter, byte-compiled as Lambda's own runtime ships
    them. Cached by the hash of its inputs."""
    source = os.path.join(HERE, "python_function")
    python = subprocess.run(
        [args.pip_python, "-c", "import os, sys; print(os.path.realpath(sys._base_executable))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    digest = hashlib.sha256(python.encode() + " ".join(args.python_packages).encode())
    for name in sorted(os.listdir(source)):
        with open(os.path.join(source, name), "rb") as f:
            digest.update(name.encode() + f.read())
    cached = os.path.join(args.cache, f"python-function-{digest.hexdigest()[:16]}.zip")
    if os.path.isfile(cached):
        return cached
    build = tempfile.mkdtemp(dir=work)
    log(f"building the Python port's zip ({', '.join(args.python_packages)})")
    subprocess.run(
        [args.pip_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", build, *args.python_packages],
        check=True, stdout=sys.stderr,
    )
    shutil.copy(os.path.join(source, "lambda_function.py"), build)
    with open(os.path.join(source, "bootstrap")) as f:
        bootstrap = f.read().replace("@PYTHON@", python)
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", build],
        check=True, stdout=subprocess.DEVNULL,
    )
    entries = [("bootstrap", bootstrap.encode(), True)]
    for folder, _, files in os.walk(build):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, build)
            if rel.startswith("bin/") or rel == "bootstrap":
                continue
            with open(path, "rb") as f:
                entries.append((rel, f.read(), os.access(path, os.X_OK)))
    os.makedirs(args.cache, exist_ok=True)
    zip_file(entries, cached + ".tmp")
    os.replace(cached + ".tmp", cached)
    shutil.rmtree(build, ignore_errors=True)
    return cached


# ---------------------------------------------------------------------------------------------
# Helpers on the local AWS.


# The Rust function paces its change calls to EC2's default quota (EC2_REQUEST_RATE, 50/5 a
# second per API) once the sweep keeps to quotas; where the local AWS has no quota (every measure
# but (d)), pacing would only add waits the port does not have: the rate is set out of reach.
UNPACED = {"EC2_REQUEST_RATE": "1000000/1000000"}


def create_function(aws, name, zip_path, timeout=60, endpoint=None, env=None):
    """The lab's settings (128 MB, 60 s); sweeps get Lambda's longest timeout. `endpoint`
    overrides the AWS_ENDPOINT_URL the executor gives the function (e.g. a timing proxy); `env`
    defaults to UNPACED."""
    with open(zip_path, "rb") as f:
        code = f.read()
    try:
        with open(os.path.join(ROOT, "policy/lambda-trust.json")) as f:
            aws.front.iam.create_role(RoleName=ROLE.split("/")[-1], AssumeRolePolicyDocument=f.read())
    except aws.front.iam.exceptions.EntityAlreadyExistsException:
        pass
    aws.front.awslambda.create_function(
        FunctionName=name, Runtime=RUNTIME, Handler="bootstrap", Role=ROLE, Code={"ZipFile": code},
        MemorySize=128, Timeout=timeout,
        Environment={"Variables": dict(UNPACED if env is None else env, **(
            {"AWS_ENDPOINT_URL": endpoint} if endpoint else {}))},
    )
    aws.front.awslambda.add_permission(
        FunctionName=name, StatementId="config-invoke", Action="lambda:InvokeFunction",
        Principal="config.amazonaws.com", SourceAccount=ACCOUNT,
    )
    return code


def start_recorder(aws):
    """A recorder of security groups, recording: what the local AWS needs to evaluate rules."""
    cfg = aws.front.config
    aws.front.s3.create_bucket(Bucket="bench-config", CreateBucketConfiguration={"LocationConstraint": REGION})
    cfg.put_configuration_recorder(ConfigurationRecorder={
        "name": "default", "roleARN": f"arn:aws:iam::{ACCOUNT}:role/bench-config",
        "recordingGroup": {"allSupported": False, "includeGlobalResourceTypes": False,
                           "resourceTypes": ["AWS::EC2::SecurityGroup"]},
    })
    cfg.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": "bench-config"})
    cfg.start_configuration_recorder(ConfigurationRecorderName="default")


def parse_report(text):
    match = None
    for match in REPORT_RE.finditer(text):
        pass
    if match is None:
        raise Failure(f"no REPORT line in: {text[-300:]!r}")
    duration, memory, init = match.groups()
    return float(duration), int(memory), float(init) if init else None


def permission(protocol, port, source):
    p = {"IpProtocol": protocol, "FromPort": port, "ToPort": port}
    if ":" in source:
        p["Ipv6Ranges"] = [{"CidrIpv6": source}]
    else:
        p["IpRanges"] = [{"CidrIp": source}]
    return p


def set_ingress(ec2, group_id, permissions):
    """Replaces a group's ingress (on moto directly: no Config evaluation is triggered)."""
    current = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    if current:
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=current)
    if permissions:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=permissions)


def group_configuration(group):
    """The `configuration` of a configuration item, as Config records a group."""
    def perms(items):
        return [{
            "fromPort": p.get("FromPort"), "ipProtocol": p["IpProtocol"], "toPort": p.get("ToPort"),
            "ipv6Ranges": [{"cidrIpv6": r["CidrIpv6"]} for r in p.get("Ipv6Ranges", [])],
            "prefixListIds": [{"prefixListId": r["PrefixListId"]} for r in p.get("PrefixListIds", [])],
            "userIdGroupPairs": [{"groupId": r.get("GroupId"), "userId": r.get("UserId")}
                                 for r in p.get("UserIdGroupPairs", [])],
            "ipv4Ranges": [{"cidrIp": r["CidrIp"]} for r in p.get("IpRanges", [])],
            "ipRanges": [r["CidrIp"] for r in p.get("IpRanges", [])],
        } for p in items]
    return {
        "description": group["Description"], "groupName": group["GroupName"],
        "ipPermissions": perms(group["IpPermissions"]), "ownerId": group["OwnerId"], "groupId": group["GroupId"],
        "ipPermissionsEgress": perms(group.get("IpPermissionsEgress", [])), "tags": [], "vpcId": group.get("VpcId"),
    }


def change_event(group, token, parameters):
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    item = {
        "relatedEvents": [], "relationships": [], "configuration": group_configuration(group),
        "supplementaryConfiguration": {}, "tags": {}, "configurationItemVersion": "1.3",
        "configurationItemCaptureTime": now, "configurationStateId": int(time.time() * 1000),
        "awsAccountId": ACCOUNT, "configurationItemStatus": "OK", "resourceType": "AWS::EC2::SecurityGroup",
        "resourceId": group["GroupId"], "resourceName": group["GroupName"],
        "ARN": f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{group['GroupId']}", "awsRegion": REGION,
        "availabilityZone": "Not Applicable", "configurationStateMd5Hash": "", "resourceCreationTime": None,
    }
    invoking = {"configurationItemDiff": None, "configurationItem": item, "notificationCreationTime": now,
                "messageType": "ConfigurationItemChangeNotification", "recordVersion": "1.3"}
    return {"version": "1.0", "invokingEvent": json.dumps(invoking), "ruleParameters": parameters,
            "resultToken": token, "eventLeftScope": False,
            "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/bench-config",
            "configRuleArn": f"arn:aws:config:{REGION}:{ACCOUNT}:config-rule/config-rule-bench",
            "configRuleName": "bench-token", "configRuleId": "config-rule-bench", "accountId": ACCOUNT,
            "evaluationMode": "DETECTIVE"}


def wait_for(what, predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def median(values):
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------
# 1. One evaluation.


def one_setup(aws, ctx):
    """Both functions, the lab's open default group and a compliant group, and a result token
    Config issued (PutEvaluations refuses any other); no Config evaluation runs afterwards."""
    start_recorder(aws)
    codes = {fn: create_function(aws, f"bench-{fn}", ctx["zips"][fn]) for fn in ("rust", "python")}
    default = aws.moto.ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    compliant = aws.moto.ec2.create_security_group(GroupName="bench-compliant", Description="80 and 443")["GroupId"]
    set_ingress(aws.moto.ec2, compliant, [permission(*r) for r in REQUIRED])
    self_rule = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": default}]}
    opened = [self_rule] + [permission("tcp", p, "0.0.0.0/0") for p in (80, 443, 465, 993)]

    # A result token Config issued: PutEvaluations refuses any other. The rule's initial
    # evaluation invokes the Rust function with debug on, which logs the event it got.
    aws.front.config.put_config_rule(ConfigRule={
        "ConfigRuleName": "bench-token", "Scope": {"ComplianceResourceTypes": ["AWS::EC2::SecurityGroup"]},
        "Source": {"Owner": "CUSTOM_LAMBDA", "SourceIdentifier": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench-rust",
                   "SourceDetails": [{"EventSource": "aws.config", "MessageType": "ConfigurationItemChangeNotification"}]},
        "InputParameters": json.dumps({"debug": "true"}),
    })

    def token():
        events = aws.front.logs.filter_log_events(logGroupName="/aws/lambda/bench-rust").get("events", [])
        for e in events:
            found = re.search(r'"resultToken":"([^"]+)"', e["message"])
            if found:
                return found.group(1)
        return None

    result_token = wait_for("the rule's first invocation (result token)", lambda: _quiet(token), 60, 0.2)
    # No Config evaluation from here on: only the benchmark's own invocations run.
    aws.front.config.stop_configuration_recorder(ConfigurationRecorderName="default")
    quiesce(aws, "bench-token")

    cases = {"open": (default, opened), "compliant": (compliant, [permission(*r) for r in REQUIRED])}
    return codes, cases, result_token


def invoke_case(aws, fn, case, group, result_token):
    """Resets the case's group, invokes the function on its change event (LogType=Tail) and
    checks the group holds the baseline afterwards: (duration ms, max memory MB, init ms or
    None, wall ms of the Invoke)."""
    group_id, ingress = group
    set_ingress(aws.moto.ec2, group_id, ingress)
    described = aws.moto.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    event = change_event(described, result_token, json.dumps({"debug": "true"}))
    t = time.perf_counter()
    answer = aws.front.awslambda.invoke(FunctionName=f"bench-{fn}", Payload=json.dumps(event).encode(), LogType="Tail")
    wall = (time.perf_counter() - t) * 1000
    payload = answer["Payload"].read()
    if answer.get("FunctionError"):
        raise Failure(f"{fn} failed on the {case} group: {payload[:400]!r}")
    duration, memory, init = parse_report(base64.b64decode(answer["LogResult"]).decode())
    after = aws.moto.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    if sorted(rule_keys(after)) != sorted(REQUIRED):
        raise Failure(f"{fn} left the {case} group with {rule_keys(after)}")
    return duration, memory, init, wall


def bench_one(args, ctx, results):
    """Both functions through the local AWS's executor on the same Config events: the lab's open
    default group and an already compliant group; cold (a new process: UpdateFunctionCode
    first) and warm; REPORT lines from `Invoke` with LogType=Tail."""
    runs, warm_n = (1, 2) if args.quick else (args.runs, 5)
    with LocalAws(args.deploy, args.port, ctx["home"] + "/one", ctx["tools"]) as aws:
        codes, cases, result_token = one_setup(aws, ctx)
        samples = {}
        for run in range(runs):
            for fn in ("rust", "python"):
                for case in cases:
                    # A new process: Lambda's cold start (the executor restarts on new code).
                    aws.front.awslambda.update_function_code(FunctionName=f"bench-{fn}", ZipFile=codes[fn])
                    for i in range(warm_n + 1):
                        duration, memory, init, wall = invoke_case(aws, fn, case, cases[case], result_token)
                        kind = "cold" if i == 0 else "warm"
                        if (kind == "cold") != (init is not None):
                            raise Failure(f"{fn}: expected a {kind} invocation, REPORT says otherwise")
                        s = samples.setdefault((fn, case, kind), {"ms": [], "wall": [], "mb": []})
                        s["ms"].append(duration + (init or 0.0))
                        s["wall"].append(wall)
                        s["mb"].append(memory)
        # Profile: where a warm evaluation's time goes. The functions' AWS_ENDPOINT_URL is
        # pointed at a timing proxy in front of the local AWS; per invocation, the time with at
        # least one call outstanding (calls may overlap) is its API time and the rest of its
        # REPORT duration is the function's own time.
        with TimingProxy(args.port) as proxy:
            for fn in ("rust", "python"):
                aws.front.awslambda.update_function_configuration(
                    FunctionName=f"bench-{fn}",
                    Environment={"Variables": dict(UNPACED, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")})
                for case, (group_id, ingress) in cases.items():
                    aws.front.awslambda.update_function_code(FunctionName=f"bench-{fn}", ZipFile=codes[fn])
                    for i in range(warm_n + 1):
                        set_ingress(aws.moto.ec2, group_id, ingress)
                        group = aws.moto.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
                        event = change_event(group, result_token, json.dumps({"debug": "true"}))
                        proxy.reset()
                        answer = aws.front.awslambda.invoke(
                            FunctionName=f"bench-{fn}", Payload=json.dumps(event).encode(), LogType="Tail")
                        answer["Payload"].read()
                        if answer.get("FunctionError"):
                            raise Failure(f"{fn} failed on the {case} group behind the timing proxy")
                        duration, _, init = parse_report(base64.b64decode(answer["LogResult"]).decode())
                        count, _, _ = proxy.summary()
                        api = proxy.busy()
                        if i > 0:
                            s = samples.setdefault((fn, case, "profile"), {"api": [], "own": [], "calls": []})
                            s["api"].append(api * 1000)
                            s["own"].append(duration - api * 1000)
                            s["calls"].append(count)
    for key, s in samples.items():
        if key[2] == "profile":
            results[("one",) + key] = {"api": median(s["api"]), "own": median(s["own"]), "calls": median(s["calls"])}
            continue
        results[("one",) + key] = {"ms": median(s["ms"]), "wall": median(s["wall"]), "mb": max(s["mb"]),
                                   "n": len(s["ms"])}


def slope(points):
    """Least-squares slope of [(x, y)]."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def bench_latency(args, ctx, results):
    """(a) One evaluation of the lab's open group, Rust vs the port, with every EC2 call and
    PutEvaluations answering L ms late (the `delay` fault), at each latency of
    --latencies: the warm REPORT duration (median), and the sequential round trips as the
    slope of that duration over L (a call made while another is outstanding adds no latency)."""
    warm_n = 2 if args.quick else 5
    with LocalAws(args.deploy, args.port, ctx["home"] + "/latency", ctx["tools"]) as aws:
        codes, cases, result_token = one_setup(aws, ctx)
        for latency in args.latencies:
            aws.set_latency(latency)
            for fn in ("rust", "python"):
                aws.front.awslambda.update_function_code(FunctionName=f"bench-{fn}", ZipFile=codes[fn])
                warm = []
                for i in range(warm_n + 1):
                    duration, _, init, _ = invoke_case(aws, fn, "open", cases["open"], result_token)
                    if i > 0:
                        warm.append(duration)
                results[("latency", fn, latency)] = {"ms": median(warm), "n": len(warm)}
            log(f"  {latency} ms a call: Rust {results[('latency', 'rust', latency)]['ms']:.1f} ms, "
                f"port {results[('latency', 'python', latency)]['ms']:.1f} ms (warm, median)")
        aws.set_latency(0)
    for fn in ("rust", "python"):
        points = [(lat, results[("latency", fn, lat)]["ms"]) for lat in args.latencies]
        results[("latency-trips", fn)] = {"trips": slope(points), "points": points}


def quiesce(aws, rule, still=1.0, timeout=30):
    """Waits until the rule's evaluation history has stopped growing for `still` seconds."""
    deadline = time.monotonic() + timeout
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = len(aws.evaluations(rule))
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            return
        time.sleep(0.1)
    raise Failure(f"evaluations of {rule} still arriving after {timeout} s")


def _quiet(f):
    try:
        return f()
    except Exception:  # noqa: BLE001 - the log group may not exist yet
        return None


def rule_keys(group):
    keys = []
    for p in group["IpPermissions"]:
        for r in p.get("IpRanges", []):
            keys.append((p["IpProtocol"], p.get("FromPort"), r["CidrIp"]))
        for r in p.get("Ipv6Ranges", []):
            keys.append((p["IpProtocol"], p.get("FromPort"), r["CidrIpv6"]))
        for r in p.get("UserIdGroupPairs", []):
            keys.append((p["IpProtocol"], p.get("FromPort"), r.get("GroupId")))
        for r in p.get("PrefixListIds", []):
            keys.append((p["IpProtocol"], p.get("FromPort"), r["PrefixListId"]))
    return keys


# ---------------------------------------------------------------------------------------------
# 2. Provisioning.

OWN_CALLS = ("ec2:", "config:PutEvaluations")  # the function's, when the rule's first evaluation runs


def up_calls(calls):
    return sum(n for op, n in calls.items() if not op.startswith(OWN_CALLS))


def bench_provision(args, ctx, results):
    """`deploy up` + `deploy down` against bench/provision.sh (awscli), alternating, on one
    warmed-up local AWS; calls per `up` from the local AWS's counter; the latency sum of `up`'s
    calls from a timing proxy in front of the local AWS."""
    runs = 1 if args.quick else args.runs
    zip_path = ctx["zips"]["rust"]
    with LocalAws(args.deploy, args.port, ctx["home"] + "/provision", ctx["tools"]) as aws:
        env = dict(os.environ, **CREDENTIALS, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION,
                   AWS_ENDPOINT_URL=aws.endpoint, PATH=ctx["aws_cli_bin"] + os.pathsep + os.environ["PATH"])
        env.pop("AWS_PROFILE", None)

        def deploy(endpoint, *command):
            cmd = [args.deploy, "--endpoint-url", endpoint, "--local", "--yes", "--output", "json", *command]
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)

        def script(*command):
            return subprocess.run([os.path.join(HERE, "provision.sh"), *command], env=env,
                                  capture_output=True, text=True, timeout=300)

        def settle():
            """The rule's first evaluation (invoked after PutConfigRule) has run."""
            wait_for("the rule's first evaluation", lambda: aws.evaluations("EC2_Security_Group"), 60, 0.1)
            quiesce(aws, "EC2_Security_Group", still=0.5)

        def timed(name, run_up, run_down):
            aws.reset_calls()
            t = time.perf_counter()
            up = run_up()
            up_s = time.perf_counter() - t
            calls = up_calls(aws.calls())
            if up.returncode:
                raise Failure(f"{name} up failed: {up.stderr[-1500:]}")
            settle()
            t = time.perf_counter()
            down = run_down()
            down_s = time.perf_counter() - t
            if down.returncode:
                raise Failure(f"{name} down failed: {down.stderr[-1500:]}")
            return up_s, down_s, calls

        # Warm-up (moto loads its IAM managed policies on first use): not measured.
        deploy(aws.endpoint, "up", "--zip", zip_path)
        settle()
        deploy(aws.endpoint, "down")
        samples = {"deploy": [], "awscli": []}
        for _ in range(runs):
            samples["deploy"].append(timed("deploy", lambda: deploy(aws.endpoint, "up", "--zip", zip_path),
                                           lambda: deploy(aws.endpoint, "down")))
            samples["awscli"].append(timed("provision.sh", lambda: script("up", zip_path), lambda: script("down")))
        for tool, s in samples.items():
            results[("provision", tool)] = {
                "up": median([x[0] for x in s]), "down": median([x[1] for x in s]),
                "total": median([x[0] + x[1] for x in s]), "calls": median([x[2] for x in s]),
            }
        # `up` through the timing proxy: its wall time against the sum of its calls' latencies.
        ratios = []
        with TimingProxy(args.port) as proxy:
            for _ in range(runs):
                proxy.reset()
                t = time.perf_counter()
                up = deploy(f"http://127.0.0.1:{proxy.port}", "up", "--zip", zip_path)
                wall = time.perf_counter() - t
                if up.returncode:
                    raise Failure(f"deploy up through the timing proxy failed: {up.stderr[-1500:]}")
                count, latency_sum, by_op = proxy.summary()
                ratios.append((wall, latency_sum, count))
                settle()
                down = deploy(aws.endpoint, "down")
                if down.returncode:
                    raise Failure(f"deploy down failed: {down.stderr[-1500:]}")
        wall, latency_sum, count = (median([r[i] for r in ratios]) for i in range(3))
        results[("provision", "latency")] = {"wall": wall, "sum": latency_sum, "calls": count,
                                             "ratio": median([r[0] / r[1] for r in ratios])}


# ---------------------------------------------------------------------------------------------
# 3. Sweep at scale.


def bench_fanout(args, ctx, results):
    """`deploy up --accounts` for 1 vs 10 student accounts reached by AssumeRole, on one local
    AWS (moto keeps each account apart); each `up` is followed by an unmeasured `down`."""
    runs = 1 if args.quick else args.runs
    zip_path = ctx["zips"]["rust"]
    sizes = (1, 3) if args.quick else (1, 10)
    with LocalAws(args.deploy, args.port, ctx["home"] + "/fanout", ctx["tools"]) as aws:
        env = dict(os.environ, **CREDENTIALS, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION)
        env.pop("AWS_PROFILE", None)
        files = {}
        for n in sizes:
            files[n] = os.path.join(ctx["home"], f"accounts-{n}.txt")
            with open(files[n], "w") as f:
                f.writelines(f"{100000000000 + i:012d} student{i:02d}\n" for i in range(1, n + 1))

        def deploy(n, *command):
            cmd = [args.deploy, "--endpoint-url", aws.endpoint, "--local", "--yes", "--output", "json",
                   *command, "--accounts", files[n], "--concurrency", "10"]
            run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if run.returncode:
                raise Failure(f"`deploy {' '.join(command)}` over {n} accounts failed: {run.stderr[-1500:]}")
            return run

        # Warm-up (moto loads the IAM managed policies of each new account on first use).
        deploy(max(sizes), "up", "--zip", zip_path)
        deploy(max(sizes), "down")
        samples = {n: [] for n in sizes}
        for _ in range(runs):
            for n in sizes:
                t = time.perf_counter()
                deploy(n, "up", "--zip", zip_path)
                samples[n].append(time.perf_counter() - t)
                deploy(n, "down")
        for n in sizes:
            results[("fanout", n)] = {"up": median(samples[n]), "accounts": n}


def populate(ec2, n, seed):
    """n groups on moto directly (no Config evaluation is triggered): about half exactly the
    baseline, the rest missing a required rule and/or holding up to four extra rules (one source
    per protocol and port, so that EC2 never merges two into one permission). Returns how many
    need a fix, and how many of those need a revoke and an authorize (one call each)."""
    rnd = random.Random(seed)
    counts = {"fix": 0, "revoke": 0, "authorize": 0}
    sources = ["0.0.0.0/0", "10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12", "::/0"]
    for i in range(n):
        group_id = ec2.create_security_group(GroupName=f"bench-{i:05d}", Description="bench")["GroupId"]
        rules = list(REQUIRED)
        if rnd.random() >= 0.5:
            rules = [r for r in REQUIRED if rnd.random() < 0.7]
            ports = rnd.sample([p for p in range(20, 10000) if p not in (80, 443)], rnd.randint(0, 4))
            rules += [(rnd.choice(["tcp", "udp"]), p, rnd.choice(sources)) for p in ports]
        if sorted(rules) != sorted(REQUIRED):
            counts["fix"] += 1
            counts["revoke"] += any(r not in REQUIRED for r in rules)
            counts["authorize"] += any(r not in rules for r in REQUIRED)
        if rules:
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[permission(*r) for r in rules])
    return counts


SWEEP_OWN = ("config:StartConfigRulesEvaluation", "config:DescribeConfigRuleEvaluationStatus")


# The sweep's variants: the function, and its zip. `rust-iam` is the Rust function with the
# role `deploy up` gives it (the lab's policy, without ec2:DescribeSecurityGroupRules), denied
# as AWS would deny it.
VARIANTS = {"rust": "rust", "python": "python", "rust-iam": "rust"}


def sweep_setup(args, ctx, aws, fn, n, seed, endpoint=None, timeout=900, env=None):
    """n random groups (from `seed`), the function, a periodic rule and a running recorder:
    (groups, groups to fix, the rule's name, populate's counts)."""
    t = time.perf_counter()
    counts = populate(aws.moto.ec2, n, seed=seed)
    log(f"  {n} groups created in {time.perf_counter() - t:.1f} s; sweeping with {fn}")
    # The front gives the default group its self-referencing rule on the first EC2 call.
    aws.front.ec2.describe_security_groups(GroupNames=["default"])
    # The default group's self-referencing rule is one more revoke.
    counts["fix"] += 1
    counts["revoke"] += 1
    create_function(aws, f"bench-{fn}", ctx["zips"][VARIANTS[fn]], timeout=timeout, endpoint=endpoint, env=env)
    rule = "bench-sweep"
    # The rule first (no recorder yet, so putting it evaluates nothing), then the recorder.
    aws.front.config.put_config_rule(ConfigRule={
        "ConfigRuleName": rule, "MaximumExecutionFrequency": "One_Hour",
        "Source": {"Owner": "CUSTOM_LAMBDA", "SourceIdentifier": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench-{fn}",
                   "SourceDetails": [{"EventSource": "aws.config", "MessageType": "ScheduledNotification",
                                      "MaximumExecutionFrequency": "One_Hour"}]},
        "InputParameters": "{}",
    })
    start_recorder(aws)
    time.sleep(0.3)
    return n + 1, counts["fix"], rule, counts


def rule_status(aws, rule):
    status = aws.front.config.describe_config_rule_evaluation_status(ConfigRuleNames=[rule])
    return status["ConfigRulesEvaluationStatus"][0] if status["ConfigRulesEvaluationStatus"] else {}


def reports_of(aws, fn):
    events = _quiet(lambda: aws.front.logs.filter_log_events(
        logGroupName=f"/aws/lambda/bench-{fn}", filterPattern="REPORT")["events"])
    return events or []


def sweep_lines(aws, fn):
    """The closing line of each sweep the function logged (`sweep: … groups in … pages …`)."""
    events = _quiet(lambda: aws.front.logs.filter_log_events(
        logGroupName=f"/aws/lambda/bench-{fn}", filterPattern="sweep")["events"]) or []
    lines = []
    for event in events:
        at = event["message"].find("sweep: ")
        if at >= 0:
            lines.append(event["message"][at:].strip())
    return lines


def sweep_run(args, aws, fn, rule, what):
    """One StartConfigRulesEvaluation, until the rule's status shows the invocation's end:
    {wall s, failed (error code and message or None), ms (REPORT duration + init, or None)}."""
    before = rule_status(aws, rule)
    keys = ("LastSuccessfulInvocationTime", "LastFailedInvocationTime")
    reports = len(reports_of(aws, fn))
    t = time.perf_counter()
    aws.front.config.start_config_rules_evaluation(ConfigRuleNames=[rule])

    def finished():
        s = rule_status(aws, rule)
        return s if any(s.get(k) is not None and s.get(k) != before.get(k) for k in keys) else None

    status = wait_for(what, finished, args.sweep_timeout, 0.05)
    wall = time.perf_counter() - t
    failed = None
    if status.get("LastFailedInvocationTime") != before.get("LastFailedInvocationTime"):
        failed = f"{status.get('LastErrorCode')}: {status.get('LastErrorMessage')}"
    # The executor writes the invocation's log (its REPORT line) once it has ended.
    new = wait_for("the invocation's REPORT line", lambda: (lambda r: r if len(r) > reports else None)(
        reports_of(aws, fn)), 30, 0.2)
    duration, memory, init = parse_report(new[-1]["message"])
    return {"wall": wall, "failed": failed, "ms": duration + (init or 0.0), "mb": memory}


def off_baseline(aws):
    return [g for g in aws.moto.ec2.describe_security_groups()["SecurityGroups"]
            if sorted(rule_keys(g)) != sorted(REQUIRED)]


def sweep_once(args, ctx, fn, n, run, profile=False, latency=0):
    """One sweep on a fresh local AWS: n random groups, a periodic rule, StartConfigRulesEvaluation,
    until the function's invocation ended; then its REPORT line, the calls it made and the
    evaluations it reported. `latency`: every call of the function answers that many ms late."""
    home = f"{ctx['home']}/sweep-{fn}-{n}-{run}-{latency}"
    with LocalAws(args.deploy, args.port, home, ctx["tools"]) as aws:
        deny = ["DescribeSecurityGroupRules"] if fn == "rust-iam" else []
        proxy = TimingProxy(args.port, deny=deny).__enter__() if profile or deny else None
        endpoint = f"http://127.0.0.1:{proxy.port}" if proxy else None
        groups, need_fix, rule, _ = sweep_setup(args, ctx, aws, fn, n, 1000 * n + run, endpoint)
        aws.set_latency(latency)
        aws.reset_calls()
        done = sweep_run(args, aws, fn, rule, f"the {fn} sweep of {groups} groups")
        aws.set_latency(0)
        if done["failed"]:
            raise Failure(f"the {fn} sweep failed: {done['failed']}")
        calls = {op: c for op, c in aws.calls().items() if op not in SWEEP_OWN}
        if deny:
            # Denied by the proxy, so never seen by the local AWS; on AWS they are calls too.
            calls["ec2:DescribeSecurityGroupRules"] = sum(1 for r in proxy.records if r[0].endswith("(denied)"))
        evaluations = aws.evaluations(rule)
        ids = {e["resourceId"] for e in evaluations}
        if len(ids) != groups:
            raise Failure(f"the {fn} sweep reported {len(ids)} groups, expected {groups}")
        left = off_baseline(aws)
        if left:
            raise Failure(f"the {fn} sweep left {len(left)} groups off the baseline, e.g. {left[0]['GroupId']}")
        result = {"ms": done["ms"], "wall": done["wall"], "mb": done["mb"], "calls": calls,
                  "fixed": need_fix, "groups": groups}
        if proxy:
            proxy.__exit__()
            result["profile"] = proxy.summary()
        return result


def bench_sweep(args, ctx, results):
    for n in args.sizes:
        runs = 1 if args.quick else (args.sweep_runs if n <= 1000 else args.large_runs)
        for fn in args.functions + (["rust-iam"] if args.lab_policy and "rust-iam" not in args.functions else []):
            samples = [sweep_once(args, ctx, fn, n, run) for run in range(runs)]
            calls = samples[0]["calls"]
            results[("sweep", fn, n)] = {
                "ms": median([s["ms"] for s in samples]), "wall": median([s["wall"] for s in samples]),
                "mb": max(s["mb"] for s in samples), "calls": sum(calls.values()), "by_op": calls,
                "fixed": samples[0]["fixed"], "groups": samples[0]["groups"], "n": runs,
            }
            if args.profile:
                # The first run's groups again, the function's calls through the timing proxy.
                profiled = sweep_once(args, ctx, fn, n, 0, profile=True)
                count, api, by_op = profiled["profile"]
                results[("sweep", fn, n)]["profile"] = {"ms": profiled["ms"], "api": api * 1000, "by_op": by_op}


def bench_sweep_latency(args, ctx, results):
    """(b) The sweep with every call of the function answering --sweep-latency ms late, no
    quota: Rust (changes of several groups at once) against the port (one call at a time)."""
    for n in args.latency_sizes:
        for fn in args.functions:
            one = sweep_once(args, ctx, fn, n, 0, latency=args.sweep_latency)
            results[("sweep-latency", fn, n)] = dict(one, calls=sum(one["calls"].values()), by_op=one["calls"])


# Seconds a drained Authorize/RevokeSecurityGroupIngress bucket takes to fill up again.
QUOTA_REFILL_S = 50 / 5


def quota_allowance(percent, deadline_s):
    """What EC2's bucket of Authorize/RevokeSecurityGroupIngress (50 tokens, 5 a second:
    "Request throttling for the Amazon EC2 API", resource-intensive actions) lets one run of
    `deadline_s` make at most: a full bucket plus its refill, at `percent` of AWS's sizes."""
    scale = (percent or 100) / 100
    return max(1.0, 50 * scale) + max(1.0, 5 * scale) * deadline_s


def bench_quota(args, ctx, results):
    """(d) The sweep under EC2's request quotas (the local AWS's `ec2Quotas` behaviour) and the
    lab's deadline: scheduled evaluations one after the other until every group holds the
    baseline; each run's wall time, REPORT duration, evaluations and change calls."""
    n, deadline = args.quota_groups, args.quota_deadline
    with LocalAws(args.deploy, args.port, ctx["home"] + "/quota", ctx["tools"]) as aws:
        # The function's own pacing at EC2's default (or the scaled) rate, as it ships.
        scale = (args.quota_percent or 100) / 100
        pace = {"EC2_REQUEST_RATE": f"{max(1.0, 50 * scale):g}/{max(1.0, 5 * scale):g}"}
        groups, need_fix, rule, counts = sweep_setup(args, ctx, aws, "rust", n, 1000 * n, timeout=deadline, env=pace)
        spec = {"ec2Quotas": True}
        if args.quota_percent:
            spec["ec2QuotaPercent"] = args.quota_percent
        aws.set_behaviours(spec)
        shown = aws.admin("GET", "behaviours")
        if not shown.get("ec2Quotas"):
            raise Failure(f"the local AWS did not turn EC2's quotas on: {shown}")
        runs = []
        swept = 0
        for k in range(1, args.quota_max_runs + 1):
            if k > 1:
                # Config starts a periodic rule's evaluations at most once per
                # MaximumExecutionFrequency (One_Hour here): on AWS each run finds the buckets full
                # again, as the physical limit counts them. Run back to back, a run would start
                # with what the last one left; a drained bucket is full after capacity ÷ refill
                # (50 ÷ 5 = 10 s, the same at every percentage), so the bench waits that long.
                time.sleep(QUOTA_REFILL_S)
            aws.reset_calls()
            throttled_before = aws.admin("GET", "ec2-quotas")["throttled"]
            seen = len(aws.evaluations(rule))
            done = sweep_run(args, aws, "rust", rule, f"run {k} of the sweep under EC2's quotas")
            new = aws.evaluations(rule)[seen:]
            calls = aws.calls()
            left = len(off_baseline(aws))
            run = {"run": k, "wall": done["wall"], "ms": done["ms"], "failed": done["failed"],
                   "evaluations": len(new), "reported": len({e["resourceId"] for e in new}),
                   "non_compliant": sum(1 for e in new if e["compliance"] == "NON_COMPLIANT"),
                   "revoke": calls.get("ec2:RevokeSecurityGroupIngress", 0),
                   "authorize": calls.get("ec2:AuthorizeSecurityGroupIngress", 0), "left": left,
                   "throttled": aws.admin("GET", "ec2-quotas")["throttled"] - throttled_before}
            runs.append(run)
            # The function's own account of the run: where its time went (read, changes, reports).
            lines = sweep_lines(aws, "rust")
            run["timeline"] = lines[-1] if len(lines) > swept else None
            # One StartConfigRulesEvaluation, one invocation: more would share the quota.
            run["sweeps"] = len(lines) - swept
            swept = len(lines)
            log(f"  run {k}: {run['wall']:.1f} s wall, {run['ms'] / 1000:.1f} s REPORT, {run['reported']} groups "
                f"reported, {run['revoke']} revoke + {run['authorize']} authorize calls "
                f"({run['throttled']} throttled), {left} groups left"
                + (f", failed: {run['failed'][:200]}" if run["failed"] else ""))
            if run["sweeps"] > 1:
                log(f"    {run['sweeps']} sweeps ran for this one evaluation: {lines[-run['sweeps']:]}")
            if run["timeline"]:
                log(f"    {run['timeline']}")
            if left == 0:
                break
        allowance = quota_allowance(args.quota_percent, deadline)
        limit = max(math.ceil(counts["revoke"] / allowance), math.ceil(counts["authorize"] / allowance))
        results[("quota",)] = {"runs": runs, "groups": groups, "fixed": need_fix, "counts": counts,
                               "allowance": allowance, "limit": limit, "deadline": deadline,
                               "converged": runs[-1]["left"] == 0, "percent": args.quota_percent or 100}


# ---------------------------------------------------------------------------------------------
# 4. Artifacts, and the table.


def bench_artifacts(args, ctx, results):
    results[("artifact", "rust")] = os.path.getsize(ctx["zips"]["rust"])
    results[("artifact", "python")] = os.path.getsize(ctx["zips"]["python"])
    results[("artifact", "ci")] = args.cold_ci_seconds


def cold_ci(args):
    """`.ci/run` in a fresh clone with an empty Cargo target directory: the cold CI time."""
    clone = tempfile.mkdtemp(prefix="sg-lab-cold-ci-")
    try:
        subprocess.run(["git", "clone", "--quiet", ROOT, clone + "/repo"], check=True)
        env = dict(os.environ, CI="true", CARGO_TARGET_DIR=clone + "/target")
        t = time.perf_counter()
        done = subprocess.run(["bash", ".ci/run"], cwd=clone + "/repo", env=env, stdin=subprocess.DEVNULL,
                              stdout=sys.stderr, stderr=sys.stderr, timeout=5400)
        if done.returncode:
            raise Failure(".ci/run failed in the fresh clone")
        return time.perf_counter() - t
    finally:
        shutil.rmtree(clone, ignore_errors=True)


def fmt_ms(ms):
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def verdict(ok):
    return "met" if ok else "**missed**"


def table(args, ctx, results):
    rows = []
    add = lambda *cells: rows.append("| " + " | ".join(str(c) for c in cells) + " |")  # noqa: E731
    one = lambda fn, case, kind: results.get(("one", fn, case, kind))  # noqa: E731
    if any(k[0] == "one" for k in results):
        for case, label in (("open", "lab's open group"), ("compliant", "compliant group")):
            for kind in ("cold", "warm"):
                r, p = one("rust", case, kind), one("python", case, kind)
                ratio = p["ms"] / r["ms"]
                add(f"1. {kind} evaluation, {label}", fmt_ms(r["ms"]), fmt_ms(p["ms"]), f"{ratio:.1f}×",
                    "Rust ≥10× faster", verdict(ratio >= 10))
            r, p = one("rust", case, "profile"), one("python", case, "profile")
            add(f"1. warm, {label}: in API calls + own time", profile_text(r), profile_text(p),
                f"{p['own'] / r['own']:.1f}× (own)", "", "")
            r_mb = max(one("rust", case, k)["mb"] for k in ("cold", "warm"))
            p_mb = max(one("python", case, k)["mb"] for k in ("cold", "warm"))
            add(f"1. max RSS, {label}", f"{r_mb} MB", f"{p_mb} MB", f"{r_mb / p_mb:.2f}",
                "Rust ≤ ⅓", verdict(r_mb * 3 <= p_mb))
    if ("provision", "deploy") in results:
        d, a, lat = results[("provision", "deploy")], results[("provision", "awscli")], results[("provision", "latency")]
        add("2. `up` wall time", f"{d['up']:.2f} s", f"{a['up']:.2f} s", f"{a['up'] / d['up']:.1f}×", "", "")
        add("2. `down` wall time", f"{d['down']:.2f} s", f"{a['down']:.2f} s", f"{a['down'] / d['down']:.1f}×", "", "")
        ratio = a["total"] / d["total"]
        add("2. `up` + `down` wall time", f"{d['total']:.2f} s", f"{a['total']:.2f} s", f"{ratio:.1f}×",
            "≥5× faster", verdict(ratio >= 5))
        add("2. API calls per `up`", f"{d['calls']:.0f}", f"{a['calls']:.0f}", "", "", "")
        add("2. `up` wall ÷ sum of its call latencies", f"{lat['wall']:.2f} s ÷ {lat['sum']:.2f} s = {lat['ratio']:.2f}",
            "", "", "≤1.3", verdict(lat["ratio"] <= 1.3))
    fanout = sorted((k[1], v) for k, v in results.items() if k[0] == "fanout")
    if len(fanout) == 2:
        (n1, one_), (nn, many) = fanout
        ratio = many["up"] / one_["up"]
        add(f"5. `up --accounts`: {nn} accounts vs {n1}", f"{many['up']:.2f} s vs {one_['up']:.2f} s", "",
            f"{ratio:.1f}×", "≤3×", verdict(ratio <= 3))
    for n in args.sizes:
        r, p, i = (results.get(("sweep", fn, n)) for fn in ("rust", "python", "rust-iam"))
        base = r or i or p
        if not base or not p:
            continue
        label = f"{base['groups']} groups, {base['fixed']} to fix"
        goal = lambda x: ("≤10 s at 5,000", verdict(x["ms"] <= 10000)) if n >= 5000 else ("", "")  # noqa: E731
        if r:
            add(f"3. sweep {label}: function time", fmt_ms(r["ms"]), fmt_ms(p["ms"]), f"{p['ms'] / r['ms']:.1f}×",
                *goal(r))
            add(f"3. sweep {label}: until evaluated", f"{r['wall']:.2f} s", f"{p['wall']:.2f} s",
                f"{p['wall'] / r['wall']:.1f}×", "", "")
            add(f"3. sweep {label}: API calls", calls_text(r), calls_text(p), "", expected_calls(r), "")
            if "profile" in r:
                add(f"3. sweep {label}: in API calls (profiled run)", sweep_profile_text(r), sweep_profile_text(p),
                    "", "", "")
        if i:
            add(f"3. sweep {label}, Rust with the lab's role (DescribeSecurityGroupRules denied): function time",
                fmt_ms(i["ms"]), fmt_ms(p["ms"]), f"{p['ms'] / i['ms']:.1f}×", *goal(i))
            add(f"3. sweep {label}, Rust with the lab's role: API calls (rules: denied)", calls_text(i),
                calls_text(p), "", "", "")
        add(f"3. sweep {label}: max RSS", f"{base['mb']} MB", f"{p['mb']} MB", f"{base['mb'] / p['mb']:.2f}", "", "")
    if ("artifact", "rust") in results:
        rz, pz = results[("artifact", "rust")], results[("artifact", "python")]
        add(f"4. zip size ({ctx['rust_kind'].split(' ')[0]} Rust)", f"{rz / 1e6:.2f} MB", f"{pz / 1e6:.2f} MB", "",
            "≤4 MB", verdict(rz <= 4e6))
        ci = results[("artifact", "ci")]
        add("4. cold CI time (`.ci/run`, empty target dir)", f"{ci / 60:.1f} min" if ci else "not measured (`--cold-ci`)",
            "", "", "", "")
    head = ["| measure | Rust / `deploy` | lab's approach (Python / awscli) | ratio | goal | |",
            "|---|---|---|---|---|---|"]
    return "\n".join(head + rows)


def scale_tables(args, results):
    """Issue 14's measures, (a)-(d), and its goals table: each goal's figure next to what it is
    compared with."""
    rows, goals = [], []
    add = lambda *cells: rows.append("| " + " | ".join(str(c) for c in cells) + " |")  # noqa: E731
    goal = lambda *cells: goals.append("| " + " | ".join(str(c) for c in cells) + " |")  # noqa: E731
    lats = [lat for lat in args.latencies if ("latency", "rust", lat) in results]
    for lat in lats:
        r, p = results[("latency", "rust", lat)], results[("latency", "python", lat)]
        add(f"a. warm evaluation, lab's open group, {lat} ms a call", fmt_ms(r["ms"]), fmt_ms(p["ms"]),
            f"{r['ms'] / p['ms']:.2f}")
    if lats:
        at = min(lats, key=lambda lat: abs(lat - 50))
        r, p = results[("latency", "rust", at)], results[("latency", "python", at)]
        goal(f"a. warm evaluation at {at} ms a call: Rust ≤ 0.8× the port", fmt_ms(r["ms"]),
             f"0.8 × {fmt_ms(p['ms'])} = {fmt_ms(0.8 * p['ms'])}", verdict(r["ms"] <= 0.8 * p["ms"]))
    if ("latency-trips", "rust") in results and len(lats) >= 2:
        r, p = results[("latency-trips", "rust")], results[("latency-trips", "python")]
        span = f"slope over {', '.join(map(str, lats))} ms"
        add(f"a. sequential round trips ({span})", f"{r['trips']:.2f}", f"{p['trips']:.2f}", "")
        goal("a. sequential round trips of the lab case (slope, rounded): Rust ≤ 3", f"{r['trips']:.2f}",
             f"3 (the port: {p['trips']:.2f}; the lab's function: 4)", verdict(round(r["trips"]) <= 3))
    for n in args.latency_sizes:
        r, p = results.get(("sweep-latency", "rust", n)), results.get(("sweep-latency", "python", n))
        if not (r and p):
            continue
        label = f"b. sweep {r['groups']} groups, {r['fixed']} to fix, {args.sweep_latency} ms a call, no quota"
        add(f"{label}: function time", fmt_ms(r["ms"]), fmt_ms(p["ms"]), f"{p['ms'] / r['ms']:.1f}× faster")
        add(f"{label}: API calls", calls_text(r), calls_text(p), "")
        goal(f"b. sweep under {args.sweep_latency} ms a call ({r['groups']} groups): Rust ≥ 3× faster than the port",
             f"{p['ms'] / r['ms']:.1f}× ({fmt_ms(r['ms'])})", f"3× ({fmt_ms(p['ms'])} ÷ 3 = {fmt_ms(p['ms'] / 3)})",
             verdict(p["ms"] >= 3 * r["ms"]))
    for n in args.sizes:
        r, p = results.get(("sweep", "rust", n)), results.get(("sweep", "python", n))
        if r and p:
            goal(f"c. sweep on raw moto ({r['groups']} groups, {r['fixed']} to fix): Rust ≤ the port",
                 fmt_ms(r["ms"]), fmt_ms(p["ms"]), verdict(r["ms"] <= p["ms"]))
    q = results.get(("quota",))
    if q:
        allowed = f"{q['allowance']:.0f} calls per API per run"
        for run in q["runs"]:
            add(f"d. run {run['run']} under EC2's quotas ({q['percent']} %), {q['deadline']} s deadline, "
                f"{q['groups']} groups",
                f"{run['wall']:.1f} s wall, {run['ms'] / 1000:.1f} s REPORT; {run['reported']} groups reported "
                f"({run['non_compliant']} NON_COMPLIANT); {run['revoke']} revoke + {run['authorize']} authorize "
                f"calls, of them {run.get('throttled', 0)} answered RequestLimitExceeded; {run['left']} groups left to fix"
                + (f"; failed: {run['failed'][:160]}" if run["failed"] else ""), "", "")
        runs = q["runs"]
        late = [r["run"] for r in runs if r["failed"] or r["ms"] >= q["deadline"] * 1000]
        short = [r["run"] for r in runs if r["reported"] < q["groups"]]
        goal("d. every run answers before its deadline", f"{len(runs) - len(late)} of {len(runs)} runs"
             + (f" (not: {', '.join(map(str, late))})" if late else ""),
             f"{q['deadline']} s; longest {max(r['ms'] for r in runs) / 1000:.1f} s", verdict(not late))
        goal("d. every run reports every group", f"{len(runs) - len(short)} of {len(runs)} runs", f"{q['groups']} groups",
             verdict(not short))
        c = q["counts"]
        converged = f"{len(runs)}" if q["converged"] else f"not converged after {len(runs)}"
        goal("d. runs to converge ≤ the physical limit + 1", converged,
             f"limit ⌈max({c['revoke']} revokes, {c['authorize']} authorizes) ÷ {allowed}⌉ = {q['limit']}; "
             f"+1 = {q['limit'] + 1}", verdict(q["converged"] and len(runs) <= q["limit"] + 1))
    out = []
    if rows:
        out += ["| issue 14 measure | Rust | Python port | Rust ÷ port |", "|---|---|---|---|"] + rows
    if goals:
        out += ["", "| goal | figure | compared with | |", "|---|---|---|---|"] + goals
    return "\n".join(out)


def profile_text(r):
    return f"{fmt_ms(r['api'])} in {r['calls']:.0f} calls + {fmt_ms(r['own'])}"


def sweep_profile_text(r):
    prof = r["profile"]
    ops = sorted(prof["by_op"].items(), key=lambda kv: -kv[1][1])
    parts = ", ".join(f"{op} {fmt_ms(sec * 1000)}" for op, (_, sec) in ops if sec * 1000 >= 0.05 * prof["api"])
    return f"{fmt_ms(prof['api'])} of {fmt_ms(prof['ms'])} ({parts})"


def calls_text(r):
    by = r["by_op"]
    short = {"ec2:DescribeSecurityGroups": "describe", "ec2:DescribeSecurityGroupRules": "rules",
             "ec2:RevokeSecurityGroupIngress": "revoke", "ec2:AuthorizeSecurityGroupIngress": "authorize",
             "config:PutEvaluations": "put"}
    parts = [f"{by[op]} {name}" for op, name in short.items() if by.get(op)]
    other = sum(c for op, c in by.items() if op not in short)
    if other:
        parts.append(f"{other} other")
    return f"{r['calls']} ({', '.join(parts)})"


def expected_calls(r):
    g = r["groups"]
    return f"expected ⌈{g}/1000⌉={math.ceil(g / 1000)} pages + ⌈{g}/100⌉={math.ceil(g / 100)} put + fixes"


def sanity(results):
    """Absurd numbers fail the run (timings are never asserted)."""
    problems = []
    for key, value in results.items():
        values = value.values() if isinstance(value, dict) else [value]
        for v in values:
            if isinstance(v, (int, float)) and v is not None and (math.isnan(v) or v < 0):
                problems.append(f"{key}: {v}")
        if isinstance(value, dict):
            for field in ("ms", "up", "down", "calls", "mb", "sum"):
                if field in value and not value[field] > 0:
                    problems.append(f"{key}: {field} = {value[field]}")
    for (kind, *rest), value in results.items():
        if kind == "sweep":
            if value["by_op"].get("config:PutEvaluations", 0) < math.ceil(value["groups"] / 100):
                problems.append(f"{kind} {rest}: too few PutEvaluations calls: {value['by_op']}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, one run each (the test command's run)")
    parser.add_argument("--port", type=int, default=4610)
    parser.add_argument("--runs", type=int, default=5, help="runs per measure (median reported)")
    parser.add_argument("--sweep-runs", type=int, default=3, help="runs of sweeps of up to 1,000 groups")
    parser.add_argument("--large-runs", type=int, default=1, help="runs of sweeps over 1,000 groups")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--only", default="one,latency,provision,sweep,sweep-latency,fanout,artifacts",
                        help="measures to run, comma-separated (quota: with --quota, or named here)")
    parser.add_argument("--debug-zip", action="store_true", help="use the debug build even if the release zip exists")
    parser.add_argument("--functions", type=lambda s: s.split(","), default=["rust", "python"],
                        help="the sweep's functions: rust, python, rust-iam (see --lab-policy)")
    parser.add_argument("--lab-policy", action="store_true",
                        help="also sweep with the Rust function's calls denied as the lab's IAM policy denies them")
    parser.add_argument("--profile", action="store_true",
                        help="one more sweep per function and size with its calls timed by a proxy")
    parser.add_argument("--cold-ci", action="store_true", help="also time .ci/run in a fresh clone (long)")
    parser.add_argument("--sweep-timeout", type=float, default=1200)
    parser.add_argument("--latencies", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="(a) ms added to each call of one evaluation (default 0,50,100; quick 0,50)")
    parser.add_argument("--sweep-latency", type=int, default=50, help="(b) ms added to each call of the sweep")
    parser.add_argument("--latency-sizes", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="(b) groups of the sweep under latency (default 5000; quick 50)")
    parser.add_argument("--quota", action="store_true",
                        help="(d) also the sweep under EC2's quotas (the local AWS's ec2Quotas behaviour)")
    parser.add_argument("--quota-groups", type=int, default=None, help="(d) groups (default 5000; quick 200)")
    parser.add_argument("--quota-deadline", type=int, default=None,
                        help="(d) the function's timeout in s (default 60, the lab's; quick 10)")
    parser.add_argument("--quota-percent", type=int, default=None,
                        help="(d) bucket sizes as a percentage of AWS's (default AWS's; quick 20)")
    parser.add_argument("--quota-max-runs", type=int, default=25, help="(d) runs before giving up converging")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    args.sizes = args.sizes or ([50] if args.quick else [1000, 5000])
    args.latencies = args.latencies or ([0, 50] if args.quick else [0, 50, 100])
    args.latency_sizes = args.latency_sizes or ([50] if args.quick else [5000])
    args.quota_groups = args.quota_groups or (200 if args.quick else 5000)
    args.quota_deadline = args.quota_deadline or (10 if args.quick else 60)
    if args.quota_percent is None and args.quick:
        args.quota_percent = 20
    args.target_dir = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/sg-lab/target")
    args.deploy = os.path.join(args.target_dir, "debug/deploy")
    args.cache = os.path.expanduser(os.environ.get("SG_LAB_HOME", "~/.cache/sg-lab")) + "/bench"
    args.pip_python = os.environ["BENCH_PIP_PYTHON"]
    args.python_packages = os.environ["BENCH_PYTHON_PACKAGES"].split()
    args.cold_ci_seconds = None
    only = set(args.only.split(","))
    if not os.path.isfile(args.deploy):
        raise Failure(f"{args.deploy} is missing: run `cargo build --workspace`")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    work = tempfile.mkdtemp(prefix="sg-lab-bench-")
    results = {}
    try:
        ctx = {"home": work, "tools": os.environ["BENCH_TOOLS"], "aws_cli_bin": os.environ["BENCH_AWSCLI_BIN"]}
        rust, ctx["rust_kind"] = rust_zip(args, work)
        ctx["zips"] = {"rust": rust, "python": python_zip(args, work)}
        log(f"Rust function: {ctx['rust_kind']}, {os.path.getsize(rust)} bytes; Python port: "
            f"{os.path.getsize(ctx['zips']['python'])} bytes; deploy: {args.deploy} (debug build)")
        started = time.perf_counter()
        if "one" in only:
            log("1. one evaluation, Rust vs Python")
            bench_one(args, ctx, results)
        if "provision" in only:
            log("2. provisioning, deploy vs awscli")
            bench_provision(args, ctx, results)
        if "sweep" in only:
            log(f"3. sweep of {', '.join(map(str, args.sizes))} groups")
            bench_sweep(args, ctx, results)
        if "latency" in only:
            log(f"a. one evaluation under {', '.join(map(str, args.latencies))} ms a call, Rust vs Python")
            bench_latency(args, ctx, results)
        if "sweep-latency" in only:
            log(f"b. sweep of {', '.join(map(str, args.latency_sizes))} groups under {args.sweep_latency} ms a call")
            bench_sweep_latency(args, ctx, results)
        if "quota" in only or args.quota:
            log(f"d. sweep of {args.quota_groups} groups under EC2's quotas, {args.quota_deadline} s deadline")
            bench_quota(args, ctx, results)
        if "fanout" in only:
            log("5. classroom fan-out, up for 1 vs 10 accounts")
            bench_fanout(args, ctx, results)
        if "artifacts" in only:
            if args.cold_ci:
                log("4. cold CI run (fresh clone, empty target directory)")
                args.cold_ci_seconds = cold_ci(args)
            bench_artifacts(args, ctx, results)
        log(f"done in {time.perf_counter() - started:.0f} s")
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)

    print(f"Rust function zip: {ctx['rust_kind']}; `deploy`: debug build; "
          f"{'quick run (1 run each)' if args.quick else f'medians of {args.runs} runs; sweeps: {args.sweep_runs} runs up to 1,000 groups, {args.large_runs} above'}.\n")
    print(table(args, ctx, results))
    scale = scale_tables(args, results)
    if scale:
        print("\n" + scale)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({" ".join(map(str, k)): v for k, v in results.items()}, f, indent=1, default=str)
    problems = sanity(results)
    if problems:
        for p in problems:
            log(f"absurd number: {p}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as err:
        log(f"failed: {err}")
        stop_all()
        sys.exit(1)
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
