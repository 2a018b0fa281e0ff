"""The demo's two organizations, OpenAI's and Anthropic's, with about two months of costs up to
today: plain data, made the same way every time for a given day.

Each provider has a few projects or workspaces and keys with a daily spend and the models
they use; some keys were rotated (the new key has the old one's name, and both have costs this
month), some deleted (OpenAI: listed by discovery's first walk only, so that the daemon's
history keeps their names), and some nobody named (OpenAI: in the costs, never in a list;
Anthropic: the Console's usage, which has no key). The shapes are those of the test fakes
(``tests/support/``), which serve them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tests.support.fake_admin import Org, admin_user_owner, service_account_owner, user_owner
from tests.support.fake_analytics import Entry
from tests.support.fake_anthropic import AnthropicOrg, api_key, example_json, user, workspace
from tests.support.fake_usage import Key

ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def opaque(prefix: str, seed: str, length: int) -> str:
    """An id that looks like the provider's (``key_`` + 16 letters), the same for the same seed."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    letters = []
    for _ in range(length):
        digest, index = divmod(digest, len(ALPHABET))
        letters.append(ALPHABET[index])
    return prefix + "".join(letters)


@dataclass(frozen=True)
class Spend:
    """One key: where it belongs, who owns it, what it costs a day (roughly), and when it ran:
    ``days`` is (first, last) in days before today, both included (None: the whole range)."""

    name: str
    group: str | None  # project or workspace name; None: Anthropic's Default Workspace
    owner: str  # a person's or a service account's name
    dollars_a_day: float
    models: tuple[str, ...]
    days: tuple[int, int] | None = None
    weekdays_only: bool = False
    batch: bool = False
    fate: str = "listed"  # OpenAI: "listed", "deleted" (first walk only), "unnamed" (never listed)
    status: str = "active"  # Anthropic: active, inactive, expired, archived

    def key_id(self, provider: str, rank: int) -> str:
        seed = f"{provider}:{self.group}:{self.name}:{rank}"
        return opaque("key_", seed, 16) if provider == "openai" else opaque("apikey_01", seed, 22)


OPENAI_PROJECTS = {"Storefront": False, "Data Platform": False, "Support Assistant": False, "Research": False,
                   "Legacy Chatbot": True}  # name -> archived
OPENAI_PEOPLE = ("Ana Souza", "Priya Raman", "Sam Okafor", "Lena Fischer", "Kenji Watanabe")
OPENAI_SERVICE_ACCOUNTS = {"recs-service": "Storefront", "etl-service": "Data Platform",
                           "batch-runner": "Data Platform", "support-bot-svc": "Support Assistant"}
OPENAI = (
    Spend("checkout-api", "Storefront", "Ana Souza", 42, ("gpt-4o",), days=(60, 12)),
    Spend("checkout-api", "Storefront", "Ana Souza", 45, ("gpt-4o",), days=(14, 0)),  # rotated
    Spend("search-ranker", "Storefront", "Lena Fischer", 6, ("text-embedding-3-large",)),
    Spend("product-descriptions", "Storefront", "Lena Fischer", 14, ("gpt-4o-mini",), weekdays_only=True),
    Spend("recommendations", "Storefront", "recs-service", 22, ("gpt-4o-mini", "gpt-4o")),
    Spend("storefront-staging", "Storefront", "Ana Souza", 1.5, ("gpt-4o-mini",)),
    Spend("marketing-copy", "Storefront", "Lena Fischer", 8, ("gpt-4o",), days=(60, 3), fate="deleted"),
    Spend("etl-enrichment", "Data Platform", "etl-service", 31, ("gpt-4o-mini",)),
    Spend("nightly-batch", "Data Platform", "batch-runner", 18, ("gpt-4o",), batch=True),
    Spend("analytics-dashboard", "Data Platform", "Priya Raman", 7, ("gpt-4o-mini",)),
    Spend("notebook — Priya", "Data Platform", "Priya Raman", 4, ("o3-mini",), weekdays_only=True),
    Spend("embeddings-backfill", "Data Platform", "etl-service", 55, ("text-embedding-3-small",), days=(9, 5)),
    Spend("(unnamed)", "Data Platform", "Priya Raman", 2.2, ("gpt-4o-mini",), fate="unnamed"),
    Spend("support-bot", "Support Assistant", "support-bot-svc", 52, ("gpt-4o",), days=(60, 20)),
    Spend("support-bot", "Support Assistant", "support-bot-svc", 60, ("gpt-4o",), days=(21, 0)),  # rotated
    Spend("ticket-summarizer", "Support Assistant", "Kenji Watanabe", 12, ("gpt-4o-mini",)),
    Spend("eval-harness", "Support Assistant", "Kenji Watanabe", 3, ("o3-mini",), weekdays_only=True),
    Spend("(unnamed)", "Support Assistant", "Kenji Watanabe", 0.6, ("gpt-4o-mini",), days=(2, 0), fate="unnamed"),
    Spend("o3 experiments — Sam", "Research", "Sam Okafor", 25, ("o3",), weekdays_only=True),
    Spend("research-sandbox", "Research", "Sam Okafor", 2, ("gpt-4o-mini",)),
    Spend("agents-prototype", "Research", "Sam Okafor", 9, ("gpt-4o", "o3-mini"), days=(6, 0)),
    Spend("hackathon-2026", "Research", "Lena Fischer", 16, ("gpt-4o",), days=(30, 24), fate="deleted"),
    Spend("legacy-chat", "Legacy Chatbot", "Ana Souza", 0.8, ("gpt-3.5-turbo",), days=(60, 25)),
)

ANTHROPIC_WORKSPACES = {"Support": False, "Engineering": False, "Research": False, "Pilot": True}
ANTHROPIC_PEOPLE = ("Maria Gonzalez", "Tom Becker", "Lee Chen")
ANTHROPIC = (
    Spend("support-agent", "Support", "Maria Gonzalez", 34, ("claude-sonnet-5",), days=(60, 16), status="expired"),
    Spend("support-agent", "Support", "Maria Gonzalez", 38, ("claude-sonnet-5",), days=(17, 0)),  # rotated
    Spend("batch-summaries", "Support", "Maria Gonzalez", 8, ("claude-haiku-4-5",), batch=True),
    Spend("claude-code-ci", "Engineering", "Tom Becker", 27, ("claude-opus-4-6",), weekdays_only=True),
    Spend("code-review-bot", "Engineering", "Tom Becker", 11, ("claude-sonnet-5",)),
    Spend("docs-search", "Engineering", "Tom Becker", 5, ("claude-haiku-4-5",), status="inactive", days=(60, 8)),
    Spend("research-notebook — Lee", "Research", "Lee Chen", 14, ("claude-opus-4-6",), weekdays_only=True),
    Spend("eval-runner", "Research", "Lee Chen", 19, ("claude-sonnet-5", "claude-haiku-4-5")),
    Spend("pilot-key", "Pilot", "Lee Chen", 3, ("claude-sonnet-5",), days=(60, 20), status="archived"),
    Spend("legacy-default-key", None, "Tom Becker", 1.2, ("claude-haiku-4-5",)),
)
CONSOLE_DOLLARS_A_DAY = 2.5  # the Console's usage: no key, the Default Workspace


def first_day(today: date) -> date:
    """The data starts on the first of last month: this month and the last 30 days are full."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def runs_on(spend: Spend, day: date, today: date) -> bool:
    back = (today - day).days
    if spend.days is not None and not spend.days[1] <= back <= spend.days[0]:
        return False
    return not (spend.weekdays_only and day.weekday() >= 5)


# --- OpenAI ------------------------------------------------------------------------------------

@dataclass
class OpenAIDemo:
    org: Org  # what the Admin API lists (the deleted keys too, until they are deleted)
    keys: tuple[Key, ...]  # FakeUsage's keys: the costs and usage
    deleted: dict[str, list[str]]  # project id -> the ids of keys deleted after the first walk
    names: dict[str, str]  # key id -> name, of every key the lists ever show


def openai_demo(today: date) -> OpenAIDemo:
    since = first_day(today)
    projects = {name: opaque("proj_", f"openai:{name}", 24) for name in OPENAI_PROJECTS}
    people = {name: {"id": opaque("user-", name, 24), "name": name,
                     "email": name.split()[0].lower() + "@example.com", "role": "reader"} for name in OPENAI_PEOPLE}
    accounts = {name: {"id": opaque("svc_acct_", name, 20), "name": name} for name in OPENAI_SERVICE_ACCOUNTS}
    org = Org(projects=[{"id": projects[name], "name": name, "archived": archived}
                        for name, archived in OPENAI_PROJECTS.items()],
              api_keys={}, users=list(people.values()),
              admin_keys=[{"id": opaque("key_", "openai:admin", 16), "name": "FinOps admin key",
                           "redacted_value": "sk-admin-Fi...nOps", "owner": admin_user_owner(people["Ana Souza"])}],
              service_accounts={projects[group]: [] for group in OPENAI_PROJECTS}, page_size=10)
    for name, group in OPENAI_SERVICE_ACCOUNTS.items():
        org.service_accounts[projects[group]].append(accounts[name])
    keys, deleted, names = [], {}, {}
    for rank, spend in enumerate(OPENAI):
        assert spend.group is not None
        key_id, project = spend.key_id("openai", rank), projects[spend.group]
        if spend.fate != "unnamed":
            owner = (service_account_owner(accounts[spend.owner]) if spend.owner in accounts
                     else user_owner(people[spend.owner], "member"))
            org.api_keys.setdefault(project, []).append(
                {"id": key_id, "name": spend.name, "redacted_value": f"sk-proj-{key_id[4:6]}...{key_id[-4:]}",
                 "owner": owner})
            names[key_id] = spend.name
        if spend.fate == "deleted":
            deleted.setdefault(project, []).append(key_id)
        first, last = spend.days or ((today - since).days, 0)
        keys.append(Key(key_id, project, spend.dollars_a_day, int(spend.dollars_a_day * 90_000),
                        tuple(f"{model}, {part}" for model in spend.models for part in ("input", "output")),
                        spend.models, batch=spend.batch, first_day=(today - since).days - first,
                        last_day=(today - since).days - last, weekdays_only=spend.weekdays_only))
    return OpenAIDemo(org, tuple(keys), deleted, names)


# --- Anthropic ---------------------------------------------------------------------------------

@dataclass
class AnthropicDemo:
    org: AnthropicOrg  # the lists, and the old reports' ledgers (usage_report, cost_report)
    costs: list[Entry] = field(default_factory=list)  # the analytics API's ledgers
    usage: list[Entry] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # key id -> name


def anthropic_demo(today: date) -> AnthropicDemo:
    spaces = {name: opaque("wrkspc_01", f"anthropic:{name}", 22) for name in ANTHROPIC_WORKSPACES}
    default_space = opaque("wrkspc_01", "anthropic:Default", 22)  # never listed; null in reports
    people = {name: user(opaque("user_01", name, 22), name, name.split()[0].lower() + "@example.com")
              for name in ANTHROPIC_PEOPLE}
    template = example_json("get_organizations_api_keys.response.json")["data"][0]
    org = AnthropicOrg(workspaces=[workspace(spaces[name], name, archived) for name, archived in
                                   ANTHROPIC_WORKSPACES.items()], api_keys=[], users=list(people.values()),
                       page_size=10)
    demo = AnthropicDemo(org)
    ledger: list[tuple[Spend, str | None, str | None]] = [(spend, spend.key_id("anthropic", rank), spaces.get(
        spend.group or "")) for rank, spend in enumerate(ANTHROPIC)]
    for spend, key_id, space in ledger:
        assert key_id is not None
        owner = people[spend.owner]["id"]
        org.api_keys.append(api_key(template, id=key_id, name=spend.name, status=spend.status, workspace_id=space,
                                    created_at="2026-01-15T09:00:00Z", expires_at=None,
                                    created_by={"id": owner, "type": "user"},
                                    principal={"type": "user_actor", "user_id": owner},
                                    partial_key_hint=f"sk-ant-api03-{key_id[9:12]}...{key_id[-4:]}AA",
                                    scope={"type": "workspace", "workspace_id": space or default_space}))
        demo.names[key_id] = spend.name
    console = Spend("Console", None, "Maria Gonzalez", CONSOLE_DOLLARS_A_DAY, ("claude-sonnet-5",))
    ledger.append((console, None, None))
    day = first_day(today)
    while day <= today:
        for spend, key_id, space in ledger:
            if runs_on(spend, day, today):
                add_anthropic_day(demo, spend, key_id, space, day)
        day += timedelta(days=1)
    return demo


# The share of a day's dollars per token type, and the dollars per million tokens it stands for.
ANTHROPIC_TOKENS = (("uncached_input_tokens", "Input Tokens", 0.35, 3), ("output_tokens", "Output Tokens", 0.55, 15),
                    ("cache_read_input_tokens", "Cache Read", 0.10, 0.3))


def add_anthropic_day(demo: AnthropicDemo, spend: Spend, key_id: str | None, space: str | None, day: date) -> None:
    """One day of a key's spend, in the analytics ledgers and the old reports' alike."""
    rng = random.Random(f"anthropic:{spend.name}:{key_id}:{day.isoformat()}")
    cents = Decimal(str(round(spend.dollars_a_day * 100 * rng.uniform(0.8, 1.2), 4)))
    model = spend.models[rng.randrange(len(spend.models))]
    tier = "batch" if spend.batch else "standard"
    tokens, requests = {}, max(1, int(spend.dollars_a_day * rng.uniform(30, 60)))
    for token_type, description, share, dollars_a_million in ANTHROPIC_TOKENS:
        amount = (cents * Decimal(str(share))).quantize(Decimal("0.0001"))
        tokens[token_type] = int(amount / 100 / Decimal(str(dollars_a_million)) * 1_000_000)
        dimensions = {"api_key_id": key_id, "workspace_id": space, "model": model, "service_tier": tier,
                      "context_window": "0-200k", "inference_geo": "global", "cost_type": "tokens",
                      "token_type": token_type, "product": "api", "actor_type": "api_key"}
        demo.costs.append(Entry(day.isoformat(), dimensions, amount=format(amount, "f"), requests=requests))
        demo.org.costs.append({"day": day.isoformat(), "workspace_id": space, "amount": format(amount, "f"),
                               "description": f"{model} Usage - {description}", "cost_type": "tokens",
                               "model": model, "service_tier": tier, "token_type": token_type,
                               "context_window": "0-200k", "inference_geo": "global"})
        requests = 0  # counted once a day, on the first token type
    demo.usage.append(Entry(day.isoformat(), {"api_key_id": key_id, "workspace_id": space, "model": model,
                                              "service_tier": tier, "product": "api"},
                            tokens=tokens, requests=max(1, tokens["output_tokens"] // 900)))
    demo.org.usage.append({"day": day.isoformat(), "api_key_id": key_id, "workspace_id": space, "model": model,
                           "service_tier": tier, **tokens})


def today_utc() -> date:
    return datetime.now(UTC).date()
