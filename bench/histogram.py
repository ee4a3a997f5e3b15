"""Prometheus histograms as the benchmarks read them: scrape /metrics, take
one series' cumulative buckets, subtract an earlier scrape (so start-up is
left out), and estimate quantiles the way PromQL's histogram_quantile()
does (linear inside the bucket that holds the rank)."""

import math
import re
import urllib.request

_BUCKET = re.compile(r'^(\w+)_bucket\{(.*)\} (\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port, timeout=5):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=timeout) as r:
        return r.read().decode()


def buckets(text, name, **labels):
    """The cumulative buckets [(upper bound, count)] of histogram `name`
    whose labels include `labels`, sorted by bound (+Inf last)."""
    out = []
    for line in text.splitlines():
        m = _BUCKET.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(2)))
        if any(have.get(k) != v for k, v in labels.items()):
            continue
        le = have.get("le")
        out.append((math.inf if le == "+Inf" else float(le), float(m.group(3))))
    out.sort()
    return out


def diff(later, earlier):
    """Buckets of the observations between two scrapes."""
    before = dict(earlier)
    return [(le, n - before.get(le, 0.0)) for le, n in later]


def total(hist):
    return hist[-1][1] if hist else 0.0


def quantile(q, hist):
    """histogram_quantile(q): None without observations; the highest finite
    bound when the rank falls in +Inf."""
    n = total(hist)
    if n <= 0:
        return None
    rank = q * n
    prev_le, prev_n = 0.0, 0.0
    for le, c in hist:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_n:
                return le
            return prev_le + (le - prev_le) * (rank - prev_n) / (c - prev_n)
        prev_le, prev_n = le, c
    return prev_le


def share_within(hist, bound):
    """The share of observations at or below `bound` (a bucket bound)."""
    n = total(hist)
    for le, c in hist:
        if abs(le - bound) <= 1e-12 * max(1.0, bound):
            return c / n if n else None
    raise ValueError("%g is not a bucket bound" % bound)


def exact_quantile(values, q):
    """The q-quantile of raw samples (nearest rank)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]
