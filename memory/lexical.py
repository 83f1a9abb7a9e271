"""Lexical side of the memory search: word and identifier analysis, an error glossary, BM25, excerpts.

Embeddings blur exact tokens (error types like MemoryError, versions like 4.6.2, flag keys, hosts), so
next to the dense search an in-process BM25 index matches words and, with extra weight, identifiers;
a small glossary maps different phrasings of one failure (OOMKilled, "Cannot allocate memory") to one
concept term. Pure Python, no chromadb or model: the importers and tests use it directly.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
from collections import Counter
from collections.abc import Callable

IDENT_WEIGHT = 3.0  # a query identifier counts this many times a plain word
EXCERPT_CHARS = 240

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]*[A-Za-z0-9]|[A-Za-z0-9]")
_SPLIT = re.compile(r"[._:/\-]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOP_TEXT = """a an the and or but if of to in on at by for with from into onto over under is are was were be been
    being it its this that these those as not no so we our us you your they them their he she i me my
    has have had do does did can could should would will shall may might must than then there here what
    which who whom when where why how all any some just also very again after before since about up out
    off get got after seems seem like still now"""
STOPWORDS = frozenset(_STOP_TEXT.split())


def _stem(word: str) -> str:
    """A deliberately small suffix stripper (restarts/restarted/restarting -> restart)."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def is_identifier(token: str) -> bool:
    """Error types, versions, flag keys, config keys, hosts: tokens people search for exactly."""
    if _SPLIT.search(token) and any(c.isalnum() for c in token):
        return True  # 4.6.2, mailer-retry-v2, db.pool_size, api.example.com
    if re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+", token):
        return True  # MemoryError, ConnectionResetError
    if re.fullmatch(r"[A-Za-z]+\d+[A-Za-z0-9]*", token) and any(c.isdigit() for c in token):
        return True  # http503, ipv6, oom2
    return bool(re.fullmatch(r"[A-Z]{2,}[A-Z0-9]*", token) and len(token) >= 3)  # OOM, TLS, DNS


# Error identifiers and phrasings that name the same failure. Matched on lowercased text, each adds one
# concept term (weighted like an identifier) to documents and queries alike, so "OOMKilled" finds
# "MemoryError: Cannot allocate memory" and "EAI_AGAIN" finds "Temporary failure in name resolution":
# the words differ, embeddings of such tokens are weak, the failure is the same.
GLOSSARY: tuple[tuple[str, str], ...] = (
    ("~oom", r"oomkill|out of memory|outofmemory|memoryerror|cannot allocate memory|oom\b|heap space"
             r"|exit code 137|memory pressure|memory leak"),
    ("~disk-full", r"no space left|enospc|disk full|disk (?:is |at )?(?:100|9\d)\s?%|disk watermark"
                   r"|volume (?:is )?(?:at )?100\s?%|filled the volume|out of disk"),
    ("~dns", r"eai_again|enotfound|unknownhostexception|gaierror|name resolution|nxdomain|dns\b|coredns"
             r"|kube-dns|resolv"),
    ("~rate-limit", r"\b429\b|too many requests|rate.?limit|throttl|quota|\b421\b|try again later"),
    ("~bad-gateway", r"\b502\b|bad gateway"),
    ("~unavailable", r"\b503\b|service unavailable|unhealthy|not ready|notready"),
    ("~gateway-timeout", r"\b504\b|gateway timeout"),
    ("~fd-limit", r"emfile|too many open files|file descriptor|nofile"),
    ("~cert", r"x509|certificate|ssl|tls handshake|err_cert"),
    ("~unauthorized", r"\b401\b|unauthori[sz]ed|invalid api key|api key (?:invalid|expired|revoked)"),
    ("~forbidden", r"\b403\b|forbidden|accessdenied|access denied|permission denied"),
    ("~conn-pool", r"pool (?:limit|exhaust|starv|size)|queuepool|hikaripool|connection is not available"
                   r"|no connection available|acquir\w* a (?:database )?connection|pool_size|poolsize"),
    ("~replica-lag", r"replica(?:tion)? (?:lag|delay)|read-only transaction|stale (?:data|reads)|old data"
                     r"|failover|failed over|switched over"),
    ("~lock", r"lock wait|table lock|access exclusive|metadata lock|deadlock|locked"),
    ("~consumer-lag", r"consumer (?:group )?lag|\blag\b|rebalanc|behind by"),
    ("~gc", r"\bgc\b|garbage collect|full gc|stop-the-world"),
    ("~clock-skew", r"clock (?:skew|drift)|ntp|chrony|iat in the future|used before issued"),
    ("~dst", r"daylight saving|\bdst\b|clock change|clocks changed|clock went back"),
    ("~cache-miss", r"cache hit (?:rate|ratio)|cache miss|stampede|thundering herd|flushall|evict"),
    ("~deploy", r"\bdeploy|\brelease|rolled out|rollout|new version"),
    ("~config", r"\bconfig|configuration|helm values|settings change"),
    ("~flag", r"feature flag|\bflag\b|experiment|cohort|rollout percentage|\bbeta\b"),
    ("~traffic-surge", r"traffic (?:spike|surge)|\d+x normal|spike in|campaign|autoscaler (?:is )?(?:at )?max"),
    ("~queue-backlog", r"backlog|queue depth|queue (?:is )?growing|oldest message|redeliver|dead letter|dlq"),
    ("~thread-pool", r"thread pool|threads? busy|worker threads|workers? (?:all )?(?:busy|stuck|timing out)"
                     r"|worker timeout|rejectedexecution|executor"),
    ("~cpu-throttle", r"cpu throttl|cfs_throttled|throttled periods|cpu limit"),
    ("~bad-data", r"backfill|data migration|migration script|wrong (?:balances|prices)|prices? (?:show )?"
                  r"(?:as )?zero|duplicate (?:rows|orders)|restore[ds]? from (?:snapshot|backup)"),
    ("~duplicate-run", r"ran twice|running twice|run twice|overlap|two instances|concurrent(?:ly)? run"),
    ("~cdn", r"\bcdn\b|cloudfront|cache purge|purged|old (?:javascript|js|bundle)|stale (?:javascript|js)"),
    ("~sso", r"\bsso\b|saml|oauth|invalid_grant|sign in with|identity provider|\bidp\b"),
    ("~node", r"node (?:pool|image)|notready|evicted|kubelet|\bnodes?\b"),
    ("~search-index", r"reindex|mapper_parsing|index alias|\bmapping\b|not findable|no results"),
)
_GLOSSARY = tuple((concept, re.compile(pattern)) for concept, pattern in GLOSSARY)


def concepts(text: str) -> list[str]:
    low = (text or "").lower()
    return [concept for concept, rx in _GLOSSARY if rx.search(low)]


def analyze(text: str) -> tuple[list[str], set[str]]:
    """Terms for BM25 (stemmed words, identifier parts, glossary concepts) and the identifiers kept whole."""
    terms, idents = _analyze_cached(text or "")
    return list(terms), set(idents)


def _analyze(text: str) -> tuple[tuple[str, ...], frozenset[str]]:
    terms: list[str] = []
    idents: set[str] = set()
    for concept in concepts(text):
        terms.append(concept)
        idents.add(concept)
    for match in _TOKEN.finditer(text or ""):
        raw = match.group(0)
        if is_identifier(raw):
            ident = raw.lower()
            idents.add(ident)
            terms.append(ident)
            parts = [p for chunk in _SPLIT.split(raw) for p in _CAMEL.findall(chunk)]
            if len(parts) > 1:
                for part in parts:
                    low = part.lower()
                    if low not in STOPWORDS and not low.isdigit() and len(low) > 1:
                        terms.append(_stem(low))
            continue
        low = raw.lower()
        if low in STOPWORDS or (low.isdigit() and len(low) < 3) or len(low) < 2:
            continue
        terms.append(_stem(low))
    return tuple(terms), frozenset(idents)


# Queries and excerpt lines are analysed several times per search (BM25, each hit's excerpt and matched
# identifiers); whole documents go through `_analyze` once, uncached, when indexed.
_analyze_cached = functools.lru_cache(maxsize=4096)(_analyze)


class LexicalIndex:
    """BM25 over analysed terms, in memory; rebuilt from the chroma documents when a process opens it."""

    K1 = 1.2
    B = 0.75

    def __init__(self) -> None:
        self.postings: dict[str, dict[str, int]] = {}
        self.doc_terms: dict[str, Counter[str]] = {}
        self.doc_len: dict[str, int] = {}
        self.doc_idents: dict[str, frozenset[str]] = {}
        self.total_len = 0

    def __len__(self) -> int:
        return len(self.doc_terms)

    def add(self, doc_id: str, text: str) -> None:
        self.remove(doc_id)
        terms, idents = _analyze(text)
        counts = Counter(terms)
        self.doc_terms[doc_id] = counts
        self.doc_len[doc_id] = len(terms)
        self.doc_idents[doc_id] = idents
        self.total_len += len(terms)
        for term, tf in counts.items():
            self.postings.setdefault(term, {})[doc_id] = tf

    def remove(self, doc_id: str) -> None:
        counts = self.doc_terms.pop(doc_id, None)
        self.doc_idents.pop(doc_id, None)
        self.total_len -= self.doc_len.pop(doc_id, 0)
        for term in counts or ():
            plist = self.postings.get(term)
            if plist is not None:
                plist.pop(doc_id, None)
                if not plist:
                    del self.postings[term]

    def search(
        self, text: str, *, allowed: Callable[[str], bool] | None = None, limit: int = 50
    ) -> list[tuple[str, float]]:
        """Best `limit` documents for `text`; query identifiers weigh IDENT_WEIGHT times a word."""
        terms, idents = analyze(text)
        if not terms or not self.doc_terms:
            return []
        weights: dict[str, float] = {}
        for term in terms:
            weights[term] = max(weights.get(term, 0.0), IDENT_WEIGHT if term in idents else 1.0)
        n = len(self.doc_terms)
        avgdl = (self.total_len / n) or 1.0
        k1, b, doc_len = self.K1, self.B, self.doc_len
        scores: dict[str, float] = {}
        for term, qw in weights.items():
            plist = self.postings.get(term)
            if not plist:
                continue
            df = len(plist)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            factor = qw * idf * (k1 + 1)
            for doc_id, tf in plist.items():
                denom = tf + k1 * (1 - b + b * doc_len[doc_id] / avgdl)
                scores[doc_id] = scores.get(doc_id, 0.0) + factor * tf / denom
        if allowed is None:
            best = heapq.nlargest(limit, scores, key=scores.__getitem__)
            return [(doc_id, scores[doc_id]) for doc_id in best]
        ranked: list[tuple[str, float]] = []
        for doc_id in sorted(scores, key=scores.__getitem__, reverse=True):
            if allowed(doc_id):  # walked best first, so a filter stops as soon as `limit` pass
                ranked.append((doc_id, scores[doc_id]))
                if len(ranked) >= limit:
                    break
        return ranked

    def matched_identifiers(self, doc_id: str, text: str) -> list[str]:
        _, idents = analyze(text)
        return sorted(idents & self.doc_idents.get(doc_id, frozenset()))


def excerpt(text: str, query: str, limit: int = EXCERPT_CHARS) -> str:
    """The line of `text` sharing most terms with the query (title line skipped), cut around the first hit."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    body = [ln for ln in lines[1:] if not ln.startswith(("Services:", "Tags:"))] or lines
    q_terms, q_idents = analyze(query)
    wanted = set(q_terms) | q_idents
    q_concepts = [rx for concept, rx in _GLOSSARY if concept in wanted]

    def overlap(line: str) -> int:
        # Plain words plus only the query's glossary concepts: running the whole glossary over every
        # line of every hit cost ~3 ms a search.
        low = line.lower()
        words = {w for raw in _TOKEN.findall(low) for w in (raw, _stem(raw))}
        return len(wanted & words) + sum(1 for rx in q_concepts if rx.search(low))

    best = max(body, key=overlap)
    if len(best) <= limit:
        return best
    low = best.lower()
    first = min((low.find(w) for w in wanted if w and low.find(w) >= 0), default=0)
    start = max(0, min(first - limit // 4, len(best) - limit))
    cut = best[start : start + limit - 2]
    return ("…" if start else "") + cut + "…"
