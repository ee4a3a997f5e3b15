"""InfluxDB sink throughput: sim_speed (flat out) -> influxdb over verified
HTTPS with auth, against the server's own ceiling measured with the curl CLI
POSTing the same line protocol, over the same TLS, in the same batch sizes,
with the same number of requests in parallel (curl --parallel, one process,
HTTP/1.1 keep-alive connections, as the sink uses).

Runs alternate (curl, engine, curl, engine...), each into a fresh database.
Rows: the curl ceiling (points/s, median), the engine (points/s, median;
ratio: the median over pairs of engine / the curl run just before, target
>= 0.9, robust to the load changing between pairs) and the engine's CPU-seconds per million points
(target <= 1.0; from wait4's rusage of the engine process, so influxd's own
CPU is not counted).
"""

import os
import random
import subprocess
import sys
import time
from statistics import median_high  # sorted(xs)[len(xs) // 2]

TITLE = "sim_speed -> influxdb (HTTPS, auth) vs curl --parallel ceiling"

BATCH = 5000      # points per request: the sink's default batch.max_records
IN_FLIGHT = 4     # requests in parallel: the sink's default max_in_flight

SPEC = """version: 1
engine:
  http: {{ listen: "" }}
  log: {{ level: warn, format: json }}
pipelines:
  bench:
    source: {{ plugin: sim_speed, lines: 5, rate: 0, count: {count}, seed: 7 }}
    sink: {{ plugin: influxdb, url: "{url}", database: {db}, username: {user},
            password_file: "{pwfile}", tls: {{ ca_file: "{ca}" }},
            batch: {{ max_records: {batch} }}, max_in_flight: {inflight} }}
    queue: {{ max_records: 65536, batch_records: 1024 }}
"""


def _env_module(ctx):
    sys.path.insert(0, os.path.join(ctx.source_dir, "tests", "influxdb"))
    import influx_env  # noqa: E402
    return influx_env


def _line_protocol(count, ts0):
    """The shape sim_speed -> influxdb sends: 5 lines, float speed, int seq."""
    rnd = random.Random(7)
    out = []
    for k in range(count):
        line = k % 5 + 1
        seq = k // 5 + 1
        out.append("conveyor_speed,line_id=line-%d speed_ms=%r,seq=%di %d\n" %
                   (line, 2.0 + rnd.gauss(0, 0.05), seq, ts0 + seq))
    return out


def _curl_ceiling(ctx, ie, db, count, dbname):
    """Seconds curl --parallel takes to POST `count` points in BATCH-point
    bodies, IN_FLIGHT at a time, to a fresh database."""
    db.query('CREATE DATABASE "%s"' % dbname, db=None)
    db.query('GRANT ALL ON "%s" TO %s' % (dbname, ie.WRITER_USER), db=None)
    lines = _line_protocol(count, 1600000000000000000)
    cfg = []
    url = "%s/write?db=%s&precision=ns" % (db.url, dbname)
    for i in range(0, count, BATCH):
        path = os.path.join(ctx.workdir, "influx-body-%d.txt" % (i // BATCH))
        with open(path, "w") as f:
            f.writelines(lines[i:i + BATCH])
        if cfg:
            cfg.append("next")
        # --next resets per-transfer options: repeat them for each body.
        cfg += ['url = "%s"' % url, 'data-binary = "@%s"' % path, 'cacert = "%s"' % db.pki.ca_cert,
                'user = "%s:%s"' % (ie.WRITER_USER, ie.WRITER_PASSWORD),
                'header = "Content-Type: text/plain; charset=utf-8"',
                'output = "/dev/null"', "http1.1", "fail", "silent", "show-error"]
    cfg_path = os.path.join(ctx.workdir, "influx-curl.cfg")
    with open(cfg_path, "w") as f:
        f.write("\n".join(cfg) + "\n")
    os.chmod(cfg_path, 0o600)
    start = time.monotonic()
    # HTTP/1.1 over IN_FLIGHT keep-alive connections, opened at once: what
    # the sink does (influxd would otherwise offer HTTP/2 to curl).
    r = subprocess.run(["curl", "--parallel", "--parallel-immediate", "--parallel-max",
                        str(IN_FLIGHT), "-K", cfg_path],
                       capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError("curl failed (%d): %s" % (r.returncode, r.stderr[-500:]))
    got = db.count("conveyor_speed", "seq", db=dbname)
    if got != count:
        raise RuntimeError("curl ceiling: influxd holds %d points, expected %d" % (got, count))
    return wall


def _engine_run(ctx, ie, db, count, dbname, pwfile):
    db.query('CREATE DATABASE "%s"' % dbname, db=None)
    db.query('GRANT ALL ON "%s" TO %s' % (dbname, ie.WRITER_USER), db=None)
    path = os.path.join(ctx.workdir, "influx-%s.yaml" % dbname)
    with open(path, "w") as f:
        f.write(SPEC.format(count=count, url=db.url, db=dbname, user=ie.WRITER_USER,
                            pwfile=pwfile, ca=db.pki.ca_cert, batch=BATCH, inflight=IN_FLIGHT))
    r = ctx.run_engine(path)
    got = db.count("conveyor_speed", "seq", db=dbname)
    if got != count:
        raise RuntimeError("engine: influxd holds %d points, expected %d" % (got, count))
    return r["wall"], r["cpu"]


def run(ctx):
    ie = _env_module(ctx)
    # Large enough that the engine's start and stop (about 0.1 s) weigh little.
    count = 100_000 if ctx.quick else 2_000_000
    reps = 1 if ctx.quick else 5
    ctx.progress("influxdb: starting influxd (HTTPS, auth)")
    pki = ie.Pki(os.path.join(ctx.workdir, "influx-pki"))
    db = ie.Influxd(pki, workdir=os.path.join(ctx.workdir, "influxd"))
    pwfile = os.path.join(ctx.workdir, "influx-password")
    with open(pwfile, "w") as f:
        f.write(ie.WRITER_PASSWORD + "\n")
    curl_walls, engine_walls, engine_cpus = [], [], []
    try:
        # Warm the server up (first database, first shard, caches) so the
        # first measured run does not pay for it.
        db.query('CREATE DATABASE "bench_warmup"', db=None)
        body = "".join(_line_protocol(20000, 1500000000000000000)).encode()
        db.request("POST", "/write", params={"db": "bench_warmup", "precision": "ns"}, body=body)
        for rep in range(reps):
            # Alternate, each into a fresh database, so neither always meets
            # the fuller server.
            ctx.progress("influxdb: curl ceiling, %d points, run %d/%d" % (count, rep + 1, reps))
            curl_walls.append(_curl_ceiling(ctx, ie, db, count, "bench_curl_%d" % rep))
            ctx.progress("influxdb: curl %.0f points/s" % (count / curl_walls[-1]))
            ctx.progress("influxdb: engine, %d points, run %d/%d" % (count, rep + 1, reps))
            wall, cpu = _engine_run(ctx, ie, db, count, "bench_engine_%d" % rep, pwfile)
            engine_walls.append(wall)
            engine_cpus.append(cpu)
            ctx.progress("influxdb: engine %.0f points/s, %.2f CPU-s per million" %
                         (count / wall, cpu / count * 1e6))
    finally:
        db.stop()
    ceiling = count / median_high(curl_walls)
    engine = count / median_high(engine_walls)
    cpu_per_m = median_high(engine_cpus) / count * 1e6
    # The machine's load changes between runs: compare each engine run with
    # the curl run just before it, and take the median of those ratios.
    ratio = median_high([c / e for c, e in zip(curl_walls, engine_walls)])
    return [
        {"benchmark": "influxdb (curl --parallel %d, %d-point bodies)" % (IN_FLIGHT, BATCH),
         "metric": "ceiling throughput", "value": ceiling, "unit": "points/s",
         "baseline": None, "ratio": None, "target": None, "ok": None},
        {"benchmark": "influxdb (sim_speed -> influxdb, HTTPS verified)",
         "metric": "throughput", "value": engine, "unit": "points/s", "baseline": ceiling,
         "ratio": ratio, "target": ">= 0.9x curl", "ok": ratio >= 0.9},
        {"benchmark": "influxdb (sim_speed -> influxdb, HTTPS verified)",
         "metric": "engine CPU per million points", "value": cpu_per_m, "unit": "CPU-s/M",
         "baseline": None, "ratio": None, "target": "<= 1.0", "ok": cpu_per_m <= 1.0},
    ]
