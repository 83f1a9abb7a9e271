"""Random service names, versions and a small dependency graph for one generated world.

Names are drawn from several business domains and several naming habits (bare nouns, `-api`,
`-svc`, `pg-` prefixes, made-up vendor brands), so that a model fitted on generated worlds cannot
learn a fixed vocabulary of service names; the graph is a small DAG with one entry point.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DOMAINS: dict[str, list[str]] = {
    "commerce": ["cart", "orders", "catalog", "pricing", "checkout", "inventory", "promo", "wishlist", "returns"],
    "fintech": ["ledger", "payouts", "kyc", "accounts", "transfers", "fx", "statements", "risk", "cards"],
    "media": ["uploads", "transcode", "thumbs", "playlists", "feeds", "comments", "streams", "captions"],
    "logistics": ["shipments", "routing", "tracking", "depots", "labels", "carriers", "dispatch", "manifests"],
    "saas": ["tenants", "billing", "reports", "exports", "identity", "notify", "audit", "scheduler", "seats"],
    "travel": ["bookings", "fares", "itinerary", "seatmap", "loyalty", "hotels", "refunds", "checkin"],
    "health": ["appointments", "records", "prescriptions", "claims", "clinics", "triage-forms", "labs"],
    "games": ["matchmaking", "lobby", "inventory-items", "leaderboard", "chat", "store", "rewards"],
}
EDGES = ["gateway", "edge", "bff", "web", "portal", "frontdoor", "mobile-bff", "public-api", "ingress-app"]
SUFFIXES = ["", "", "", "-api", "-svc", "-service", "-core"]
THIRD_PARTY: dict[str, list[str]] = {
    "payments": ["authorisations", "card payments", "charges"],
    "sms": ["text messages", "one-time codes", "SMS"],
    "email": ["mails", "transactional email", "newsletters"],
    "maps": ["geocoding", "route times", "address lookups"],
    "tax": ["tax quotes", "VAT rates", "invoices tax lines"],
    "fraud": ["fraud scores", "risk checks", "device checks"],
    "push": ["push notifications", "mobile pushes", "device tokens"],
    "storage": ["object uploads", "blob reads", "file downloads"],
}
_SYL_A = [
    "pay",
    "tex",
    "mail",
    "geo",
    "vat",
    "sure",
    "zen",
    "nova",
    "quick",
    "blue",
    "orb",
    "kite",
    "flux",
    "brisk",
    "lumo",
    "vanta",
    "cobal",
    "astra",
    "pico",
    "relay",
    "sendo",
    "moxi",
    "tally",
    "verit",
]
_SYL_B = [
    "ly",
    "io",
    "wave",
    "stack",
    "gate",
    "hub",
    "path",
    "line",
    "point",
    "nest",
    "grid",
    "cast",
    "ora",
    "mint",
    "loop",
    "bird",
    "pipe",
    "verse",
]


@dataclass
class Node:
    """One service of the world and what it talks to."""

    name: str
    kind: str  # service | database | cache | queue | external
    role: str  # edge | api | worker | db | cache | queue | third_party | dns
    stem: str
    version: str | None = None
    depends_on: list[str] = field(default_factory=list)
    category: str = ""  # third parties: payments, sms, ...


@dataclass
class Topology:
    domain: str
    nodes: dict[str, Node]
    edge: str

    def callers(self, name: str) -> list[str]:
        """Services that depend on `name` directly."""
        return [n.name for n in self.nodes.values() if name in n.depends_on]

    def upstream(self, name: str) -> list[tuple[str, int]]:
        """Every service that reaches `name` through calls, with its distance (1 = direct caller)."""
        out: dict[str, int] = {}
        frontier = [name]
        depth = 0
        while frontier:
            depth += 1
            nxt = []
            for f in frontier:
                for c in self.callers(f):
                    if c not in out and c != name:
                        out[c] = depth
                        nxt.append(c)
            frontier = nxt
        return sorted(out.items(), key=lambda kv: (kv[1], kv[0]))

    def of_role(self, *roles: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.role in roles]

    def add(self, node: Node) -> Node:
        self.nodes[node.name] = node
        return node


def version(rng: random.Random) -> str:
    return f"{rng.randint(1, 24)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}"


def bump(rng: random.Random, v: str) -> str:
    """The next version after `v`: usually a patch or minor step, sometimes a major one."""
    major, minor, patch = (int(x) for x in v.split("."))
    r = rng.random()
    if r < 0.55:
        return f"{major}.{minor}.{patch + rng.randint(1, 3)}"
    if r < 0.93:
        return f"{major}.{minor + 1}.0"
    return f"{major + 1}.0.0"


def brand(rng: random.Random) -> str:
    """A made-up vendor name (`sendoloop`, `kitegate`)."""
    return rng.choice(_SYL_A) + rng.choice(_SYL_B)


def _name(rng: random.Random, stem: str, taken: set[str]) -> str:
    for _ in range(20):
        name = stem + rng.choice(SUFFIXES)
        if name not in taken:
            return name
    return f"{stem}-{rng.randint(2, 9)}"


def _db_name(rng: random.Random, stem: str) -> str:
    return rng.choice(
        [
            f"{stem}-db",
            f"pg-{stem}",
            f"{stem}-postgres",
            "postgres",
            "mysql-main",
            f"{stem}-mysql",
            "maindb",
            f"{stem}-store",
        ]
    )


def _cache_name(rng: random.Random, stem: str) -> str:
    return rng.choice([f"redis-{stem}", f"{stem}-cache", "memcached", "redis", f"{stem}-redis", "session-cache"])


def _queue_name(rng: random.Random, stem: str) -> str:
    return rng.choice(["kafka", "rabbitmq", f"{stem}-queue", "nats", f"{stem}-events", "sqs-bridge"])


def build_topology(rng: random.Random) -> Topology:
    """Entry point, 2-4 internal services, a database, often a cache and a queue, 0-2 third parties."""
    domain = rng.choice(sorted(DOMAINS))
    stems = rng.sample(DOMAINS[domain], k=rng.randint(2, 4))
    taken: set[str] = set()
    nodes: dict[str, Node] = {}

    def put(node: Node) -> Node:
        taken.add(node.name)
        nodes[node.name] = node
        return node

    edge_name = rng.choice([rng.choice(EDGES), f"{domain[:4]}-{rng.choice(EDGES)}"])
    edge = put(Node(edge_name, "service", "edge", "edge", version(rng)))
    internals = []
    for i, stem in enumerate(stems):
        role = "worker" if i > 0 and rng.random() < 0.3 else "api"
        internals.append(put(Node(_name(rng, stem, taken), "service", role, stem, version(rng))))
    db_name = _db_name(rng, stems[0])
    db = put(Node(db_name if db_name not in taken else f"{db_name}-1", "database", "db", stems[0]))
    cache = put(Node(_cache_name(rng, stems[-1]), "cache", "cache", stems[-1])) if rng.random() < 0.7 else None
    queue = None
    if rng.random() < 0.45:
        qn = _queue_name(rng, stems[0])
        queue = put(Node(qn if qn not in taken else f"{qn}-bus", "queue", "queue", stems[0]))
    thirds = []
    for cat in rng.sample(sorted(THIRD_PARTY), k=rng.choice([0, 1, 1, 2])):
        b = brand(rng)
        while b in taken:
            b = brand(rng)
        thirds.append(put(Node(b, "external", "third_party", cat, category=cat)))

    apis = [n for n in internals if n.role == "api"] or internals[:1]
    for n in apis[: rng.randint(1, len(apis))]:
        edge.depends_on.append(n.name)
    if not edge.depends_on:
        edge.depends_on.append(internals[0].name)
    for i, n in enumerate(internals):
        later = internals[i + 1 :]
        for m in later:
            if rng.random() < 0.35:
                n.depends_on.append(m.name)
        if rng.random() < 0.8 or i == 0:
            n.depends_on.append(db.name)
        if cache is not None and (rng.random() < 0.5 or n is internals[-1]):
            n.depends_on.append(cache.name)
        if queue is not None and (n.role == "worker" or rng.random() < 0.3):
            n.depends_on.append(queue.name)
    for t in thirds:
        rng.choice(internals).depends_on.append(t.name)
    topo = Topology(domain, nodes, edge.name)
    # Every internal service is reached from the entry point.
    for n in internals:
        if not any(c == edge.name for c, _ in topo.upstream(n.name)):
            edge.depends_on.append(n.name)
    for n in nodes.values():
        n.depends_on = list(dict.fromkeys(n.depends_on))
    return topo
