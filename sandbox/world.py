"""Deterministic, person-centric fake world (people, companies, mailboxes) that every emulator serves."""

from __future__ import annotations

import bisect
import random
import unicodedata
import zlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses

from sandbox import mailgen, vocab

DEFAULT_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DEMO_SEED, DEMO_SIZE = 7, 400  # `sxsync demo`'s world (the end-to-end oracle test checks this one too)
SPAN_DAYS = 420
_DAY_MS = 86_400_000
_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "ß": "ss", "đ": "d", "\u0131": "i"})

Header = tuple[str, str]


@dataclass(slots=True, frozen=True)
class Person:
    """An external person (or a non-member colleague) that several sources will mention."""

    id: str
    name: str
    first_name: str
    last_name: str
    emails: tuple[str, ...]
    phone: str
    company: str
    company_domain: str
    colleague: bool = False

    @property
    def email(self) -> str:
        return self.emails[0]


@dataclass(slots=True)
class MailMessage:
    """One Gmail message copy in one mailbox; headers are raw, in original order."""

    id: str
    thread_id: str
    label_ids: tuple[str, ...]
    internal_date_ms: int
    headers: tuple[Header, ...]
    size_estimate: int
    snippet: str

    def header(self, name: str) -> str | None:
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        low = name.lower()
        return [value for key, value in self.headers if key.lower() == low]

    @property
    def message_id(self) -> str | None:
        return self.header("Message-ID")


@dataclass(slots=True)
class World:
    """The generated initial state: people, members and each member's mailbox."""

    seed: int
    now: datetime
    org_domain: str
    members: tuple[str, ...]
    member_names: dict[str, str]
    people: list[Person]
    mailboxes: dict[str, list[MailMessage]] = field(default_factory=dict)

    def message_count(self) -> int:
        return sum(len(v) for v in self.mailboxes.values())

    def all_messages(self) -> Iterator[tuple[str, MailMessage]]:
        for owner, messages in self.mailboxes.items():
            for msg in messages:
                yield owner, msg


def ascii_fold(text: str) -> str:
    """Strip accents for local parts ("José Núñez" -> "Jose Nunez")."""
    text = text.translate(_FOLD)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def new_gmail_id(ms: int, rng: random.Random, taken: set[str]) -> str:
    """A 16-hex-digit id ordered by time like Gmail's, unique within `taken` (which it updates)."""
    value = (ms << 20) | rng.getrandbits(20)
    while True:
        gid = f"{value:016x}"
        if gid not in taken:
            taken.add(gid)
            return gid
        value += 1


def copy_labels(rng: random.Random, *, is_sender: bool, is_recipient: bool, category: str) -> tuple[str, ...]:
    """Gmail system labels of one copy, from its owner's role and the mail's category."""
    if category == "SPAM":
        return ("SPAM", "UNREAD") if not is_sender else ("SENT",)
    labels: list[str] = []
    if is_sender:
        labels.append("SENT")
    if is_recipient:
        r = rng.random()
        labels.append("TRASH" if r < 0.01 and not is_sender else "INBOX")
        labels.append(category)
        if r > 0.7:
            labels.append("UNREAD")
        if category == "CATEGORY_PERSONAL" and rng.random() < 0.3:
            labels.append("IMPORTANT")
    return tuple(labels)


def compose_headers(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: str = "Hello",
    date: str | None,
    message_id: str,
    in_reply_to: str | None = None,
    references: str | None = None,
    extra: Sequence[Header] = (),
) -> tuple[tuple[Header, ...], tuple[Header, ...]]:
    """(sender copy headers with Bcc, recipient copy headers without Bcc), Gmail's usual order."""
    head: list[Header] = [("MIME-Version", "1.0")]
    if date is not None:
        head.append(("Date", date))
    if references:
        head.append(("References", references))
    if in_reply_to:
        head.append(("In-Reply-To", in_reply_to))
    head.append(("Message-ID", message_id))
    head.append(("Subject", subject))
    head.append(("From", sender))
    reply_to = [h for h in extra if h[0] == "Reply-To"]
    head.extend(reply_to)
    if to:
        head.append(("To", ", ".join(to)))
    if cc:
        head.append(("Cc", ", ".join(cc)))
    tail: list[Header] = [h for h in extra if h[0] != "Reply-To"]
    tail.append(("Content-Type", f'multipart/alternative; boundary="0000000000{zlib.crc32(message_id.encode()):08x}"'))
    recipient_copy = (*head, *tail)
    sender_copy = (*head, ("Bcc", ", ".join(bcc)), *tail) if bcc else recipient_copy
    return sender_copy, recipient_copy


def member_roles(
    mailboxes: Collection[str], sender: str, to: Sequence[str], cc: Sequence[str], bcc: Sequence[str]
) -> dict[str, tuple[bool, bool]]:
    """Which mailboxes get a copy, as {mailbox: (is_sender, is_recipient)}, parsing raw header text."""
    low = {m.lower(): m for m in mailboxes}
    roles: dict[str, tuple[bool, bool]] = {}
    for _, addr in getaddresses([sender]):
        owner = low.get(addr.lower())
        if owner is not None:
            roles[owner] = (True, False)
    for _, addr in getaddresses([*to, *cc, *bcc]):
        owner = low.get(addr.lower())
        if owner is not None:
            roles[owner] = (roles.get(owner, (False, False))[0], True)
    return roles


# ----------------------------------------------------------------------------------------------
# generator


@dataclass(slots=True)
class _Party:
    name: str
    email: str  # canonical (lower-case) address
    member: bool
    tz: int
    person: Person | None = None


@dataclass(slots=True)
class _Conv:
    subject: str
    parties: list[_Party]
    last_sender: _Party
    msg_ids: list[str]
    thread_ids: dict[str, str]
    last_ms: int
    exchange: bool


class _Generator:
    """Builds the world in one chronological pass; kept private, `generate_world` is the API."""

    def __init__(self, seed: int, size: int, now: datetime, org_domain: str, members: Sequence[str]) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.size = size
        self.now = now
        self.now_ms = int(now.timestamp() * 1000)
        self.org_domain = org_domain.lower()
        self.members = tuple(m.lower() for m in members)
        self.people: list[Person] = []
        self.mailboxes: dict[str, list[MailMessage]] = {m: [] for m in self.members}
        self.taken: dict[str, set[str]] = {m: set() for m in self.members}
        self.by_msgid: dict[str, _Conv] = {}
        self.convs: list[_Conv] = []
        self.member_parties: list[_Party] = []
        self.member_names: dict[str, str] = {}
        self.person_tz: dict[str, int] = {}

    # -- people -----------------------------------------------------------------------------
    def _phone(self) -> str:
        rng = self.rng
        n = rng.randint(100, 199)
        style = rng.randrange(9)
        area = rng.choice(("415", "212", "646", "312", "617", "206"))
        if style == 0:
            return f"+1 {area}-555-0{n}"
        if style == 1:
            return f"({area}) 555-0{n}"
        if style == 2:
            return f"{area}.555.0{n}"
        if style == 3:
            return f"+44 20 7946 0{n}"
        if style == 4:
            return f"020 7946 0{n}"
        if style == 5:
            return f"+49 30 {rng.randint(100000, 999999)}"
        if style == 6:
            pairs = " ".join(str(rng.randint(10, 99)) for _ in range(4))
            return f"+33 1 {pairs}"
        if style == 7:
            return f"+1{area}5550{n} ext. {rng.randint(10, 999)}"
        return f"555-0{n}"

    def _companies(self, count: int) -> list[tuple[str, str]]:
        rng = self.rng
        seen: set[str] = set()
        out: list[tuple[str, str]] = [("Globex", "globex.test")]
        seen.add("globex.test")
        seen.update(d for _, d in vocab.IDN_COMPANIES)
        while len(out) < count:
            head = rng.choice(vocab.COMPANY_HEADS)
            tail = rng.choice(vocab.COMPANY_TAILS)
            name = head + tail
            base = mailgen.slug(ascii_fold(head)) or "co"
            if tail.strip() and rng.random() < 0.5:
                base += "-" + mailgen.slug(ascii_fold(tail)).split("-")[0]
            domain = base + rng.choice(vocab.TLDS)
            if domain in seen:
                domain = f"{base}{len(out)}{rng.choice(vocab.TLDS)}"
            seen.add(domain)
            out.append((name, domain))
        out.extend(vocab.IDN_COMPANIES)  # last: picked only by the uniform draw, so "occasionally"
        return out

    def _local(self, first: str, last: str) -> str:
        f = mailgen.slug(ascii_fold(first)).replace("-", "") or "x"
        last_slug = mailgen.slug(ascii_fold(last)).replace("-", "") or "y"
        style = self.rng.randrange(5)
        if style == 0:
            return f"{f}.{last_slug}"
        if style == 1:
            return f"{f[0]}{last_slug}"
        if style == 2:
            return f
        if style == 3:
            return f"{f}_{last_slug}"
        return f"{f}.{last_slug}{self.rng.randint(1, 99)}"

    def make_people(self) -> None:
        rng = self.rng
        n_people = min(max(30, self.size // 5), 5000)
        companies = self._companies(max(8, min(n_people // 4, 600)))
        used: set[str] = set(self.members)
        n_colleagues = max(3, n_people // 30)
        for i in range(n_people + n_colleagues):
            colleague = i >= n_people
            first = rng.choice(vocab.FIRST_NAMES)
            last = rng.choice(vocab.LAST_NAMES)
            if colleague:
                company, domain = "Acme", self.org_domain
            elif rng.random() < 0.18:
                company, domain = "", rng.choice(vocab.FREE_MAIL)
            else:
                company, domain = (
                    companies[min(int(rng.paretovariate(1.2)) - 1, len(companies) - 1)]
                    if (rng.random() < 0.5)
                    else rng.choice(companies)
                )
            local = self._local(first, last)
            email = f"{local}@{domain}"
            while email in used:
                email = f"{local}{rng.randint(2, 999)}@{domain}"
            used.add(email)
            emails = [email]
            if rng.random() < 0.25:
                alt_domain = (
                    rng.choice(vocab.FREE_MAIL)
                    if domain not in vocab.FREE_MAIL
                    else (companies[rng.randrange(len(companies))][1])
                )
                alt = f"{self._local(first, last)}@{alt_domain}"
                if alt not in used:
                    used.add(alt)
                    emails.append(alt)
            pid = f"p{i:05d}"
            self.people.append(
                Person(
                    id=pid,
                    name=f"{first} {last}",
                    first_name=first,
                    last_name=last,
                    emails=tuple(emails),
                    phone=self._phone(),
                    company=company,
                    company_domain=domain,
                    colleague=colleague,
                )
            )
            self.person_tz[pid] = rng.choice(vocab.TIMEZONES)[0]
        for idx, m in enumerate(self.members):
            local = m.split("@", 1)[0]
            name = f"{local.capitalize()} {vocab.LAST_NAMES[(idx * 7 + self.seed) % len(vocab.LAST_NAMES)]}"
            self.member_names[m] = name
            self.member_parties.append(_Party(name, m, True, (-300, -480, 60, 0)[idx % 4]))
        self.externals = [p for p in self.people if not p.colleague]
        self.colleagues = [p for p in self.people if p.colleague]
        # each member has a favourite-weighted contact book
        self.books: list[tuple[list[Person], list[float]]] = []
        for _ in self.members:
            k = max(10, int(len(self.externals) * 0.45))
            book = rng.sample(self.externals, min(k, len(self.externals)))
            cum: list[float] = []
            total = 0.0
            for rank in range(len(book)):
                total += 1.0 / (rank + 1) ** 0.8
                cum.append(total)
            self.books.append((book, cum))

    # -- parties & rendering ------------------------------------------------------------------
    def _party(self, p: Person) -> _Party:
        email = p.emails[0] if len(p.emails) == 1 or self.rng.random() < 0.85 else p.emails[1]
        return _Party(p.name, email, False, self.person_tz[p.id], p)

    def _contact(self, member_idx: int) -> _Party:
        book, cum = self.books[member_idx]
        i = bisect.bisect_left(cum, self.rng.random() * cum[-1])
        return self._party(book[min(i, len(book) - 1)])

    def _render(self, party: _Party) -> str:
        rng = self.rng
        email = party.email
        r = rng.random()
        if r < 0.03:
            email = email.upper()
        elif "xn--" not in email and not email.isascii() and r < 0.5:
            local, _, dom = email.partition("@")
            email = f"{local}@{dom.encode('idna').decode('ascii')}"
        name = party.name
        if party.person is not None and rng.random() < 0.08:
            name = f"{party.person.last_name}, {party.person.first_name}"
        elif rng.random() < 0.05:
            return email
        return mailgen.mailbox(name, email, rng)

    def _malformed(self, like: _Party) -> str:
        tpl = self.rng.choice(vocab.MALFORMED)
        local, _, domain = like.email.partition("@")
        first, _, last = like.name.partition(" ")
        return tpl.format(name=like.name, email=like.email, domain=domain, local=local, first=first, last=last)

    def _subject(self, company: str) -> str:
        rng = self.rng
        return rng.choice(vocab.SUBJECTS).format(
            q=rng.randint(1, 4),
            company=company or "you",
            n=rng.randint(1000, 99999),
            day=rng.choice(vocab.DAYS),
            v=rng.randint(2, 9),
        )

    def _date(self, ms: int, tz: int) -> str | None:
        rng = self.rng
        r = rng.random()
        if r < 0.01:
            return None
        if r < 0.02:
            return rng.choice(vocab.BAD_DATES)
        when = datetime.fromtimestamp(ms / 1000, tz=UTC)
        if r < 0.06:
            tz_c = rng.choice(vocab.TIMEZONES)
            return mailgen.format_date(when, tz_c[0], tz_c[1], pad_day=False)
        return mailgen.format_date(when, tz)

    # -- one email -------------------------------------------------------------------------------
    def _emit(
        self,
        ms: int,
        sender: _Party,
        to: list[_Party],
        cc: list[_Party],
        bcc: list[_Party],
        subject: str,
        category: str,
        *,
        conv: _Conv | None = None,
        extra: list[Header] | None = None,
        from_text: str | None = None,
        to_extra: Sequence[str] = (),
        cc_extra: Sequence[str] = (),
    ) -> None:
        rng = self.rng
        domain = sender.email.rsplit("@", 1)[-1]
        mid = mailgen.message_id(rng, "outlook.com" if conv is not None and conv.exchange else domain, ms)
        extra = list(extra or ())
        if rng.random() < 0.05 and sender.person is not None:
            who = sender.person
            target = who.emails[-1] if len(who.emails) > 1 else f"assistant@{domain}"
            extra.insert(0, ("Reply-To", mailgen.mailbox(who.name, target, rng)))
        to_txt = [self._render(p) for p in to] + list(to_extra)
        cc_txt = [self._render(p) for p in cc] + list(cc_extra)
        if rng.random() < 0.03:
            bad = self._malformed(self._party(rng.choice(self.externals)))
            (cc_txt if cc_txt and rng.random() < 0.5 else to_txt).append(bad)
        bcc_txt = [self._render(p) for p in bcc]
        refs: str | None = None
        irt: str | None = None
        if conv is not None:
            irt = conv.msg_ids[-1]
            refs = " ".join(conv.msg_ids[-10:])
        sender_copy, recipient_copy = compose_headers(
            sender=from_text if from_text is not None else self._render(sender),
            to=to_txt,
            cc=cc_txt,
            bcc=bcc_txt,
            subject=subject,
            date=self._date(ms, sender.tz),
            message_id=mid,
            in_reply_to=irt,
            references=refs,
            extra=extra,
        )
        snippet = rng.choice(vocab.SNIPPETS).format(
            first=(to[0].name.split(" ")[0] if to else "there"), day=rng.choice(vocab.DAYS)
        )
        size_est = rng.randint(1800, 60000)
        roles: dict[str, tuple[bool, bool]] = {}
        if sender.member:
            roles[sender.email] = (True, False)
        for p in (*to, *cc, *bcc):
            if p.member:
                roles[p.email] = (roles.get(p.email, (False, False))[0], True)
        if conv is None:
            conv = _Conv(subject, [sender, *to, *cc], sender, [], {}, ms, domain == "outlook.com")
            if category == "CATEGORY_PERSONAL":
                self.convs.append(conv)
        conv.msg_ids.append(mid)
        conv.last_ms = ms
        conv.last_sender = sender
        for owner, (is_sender, is_rcpt) in roles.items():
            copy_ms = ms if is_sender else ms + rng.randint(800, 90_000)
            gid = new_gmail_id(copy_ms, rng, self.taken[owner])
            tid = conv.thread_ids.setdefault(owner, gid)
            self.mailboxes[owner].append(
                MailMessage(
                    id=gid,
                    thread_id=tid,
                    label_ids=copy_labels(rng, is_sender=is_sender, is_recipient=is_rcpt, category=category),
                    internal_date_ms=copy_ms,
                    headers=sender_copy if is_sender else recipient_copy,
                    size_estimate=size_est,
                    snippet=snippet,
                )
            )

    # -- event kinds -----------------------------------------------------------------------------
    def _pick_member(self) -> tuple[int, _Party]:
        i = self.rng.randrange(len(self.member_parties))
        return i, self.member_parties[i]

    def _outbound(self, ms: int) -> None:
        rng = self.rng
        i, me = self._pick_member()
        to = [self._contact(i) for _ in range(1 + int(rng.random() ** 3 * 3))]
        cc: list[_Party] = []
        if rng.random() < 0.3:
            cc.append(self._contact(i))
        if rng.random() < 0.15 and len(self.member_parties) > 1:
            cc.append(rng.choice([m for m in self.member_parties if m is not me]))
        bcc: list[_Party] = []
        if rng.random() < 0.06:
            bcc.append(rng.choice(self.member_parties) if rng.random() < 0.5 else self._contact(i))
        company = to[0].person.company if to[0].person is not None else ""
        self._emit(ms, me, _dedupe(to), _dedupe(cc), bcc, self._subject(company), "CATEGORY_PERSONAL")

    def _inbound(self, ms: int) -> None:
        rng = self.rng
        i, me = self._pick_member()
        sender = self._contact(i)
        to = [me]
        cc: list[_Party] = []
        if rng.random() < 0.25:
            cc.append(self._contact(i))
        if rng.random() < 0.12 and len(self.member_parties) > 1:
            (to if rng.random() < 0.5 else cc).append(rng.choice([m for m in self.member_parties if m is not me]))
        from_text = None
        if rng.random() < 0.006:
            from_text = self._malformed(sender)
        company = sender.person.company if sender.person is not None else ""
        self._emit(ms, sender, to, _dedupe(cc), [], self._subject(company), "CATEGORY_PERSONAL", from_text=from_text)

    def _internal(self, ms: int) -> None:
        rng = self.rng
        i, me = self._pick_member()
        others = [m for m in self.member_parties if m is not me]
        colleague = _Party(*self._colleague_fields())
        to = [rng.choice(others)] if others and rng.random() < 0.6 else [colleague]
        cc = [self._contact(i)] if rng.random() < 0.2 else []
        sender = me if rng.random() < 0.5 else colleague
        if sender is colleague:
            to = [me]
        self._emit(ms, sender, to, cc, [], self._subject("Acme"), "CATEGORY_PERSONAL")

    def _colleague_fields(self) -> tuple[str, str, bool, int, Person]:
        p = self.rng.choice(self.colleagues)
        return p.name, p.email, False, -300, p

    def _reply(self, ms: int) -> bool:
        rng = self.rng
        recent = [c for c in self.convs[-60:] if ms - c.last_ms < 21 * _DAY_MS]
        if not recent:
            return False
        conv = rng.choice(recent)
        candidates = [p for p in conv.parties if p.email != conv.last_sender.email]
        if not candidates:
            return False
        sender = rng.choice(candidates)
        to = [conv.last_sender]
        cc: list[_Party] = []
        if rng.random() < 0.5:
            seen = {sender.email, conv.last_sender.email}
            for p in conv.parties:
                if p.email not in seen:
                    seen.add(p.email)
                    cc.append(p)
        if not any(p.member for p in (sender, *to, *cc)):
            cc.extend(p for p in conv.parties if p.member and p.email != sender.email)
        prefix = "RE: " if conv.exchange else rng.choice(("Re: ", "Re: ", "Re: ", "AW: "))
        subject = conv.subject if conv.subject.lower().startswith(("re:", "aw:")) else prefix + conv.subject
        self._emit(ms, sender, to, cc, [], subject, "CATEGORY_PERSONAL", conv=conv)
        return True

    def _automated(self, ms: int) -> None:
        rng = self.rng
        _, me = self._pick_member()
        r = rng.random()
        extra: list[Header] = []
        if r < 0.2:
            sender = _Party("Mail Delivery Subsystem", f"MAILER-DAEMON@mx.{self.org_domain}", False, 0)
            subject = "Undeliverable: " + self._subject("")
            extra.append(("Auto-Submitted", "auto-replied"))
        else:
            name, addr, _ = rng.choice(vocab.SERVICES)
            sender = _Party(name, addr, False, 0)
            subject = f"[{name}] " + rng.choice(("Your weekly summary", "Action required", "New sign-in", "Receipt"))
            if rng.random() < 0.5:
                extra.append(("List-Unsubscribe", f"<mailto:unsubscribe@{addr.split('@')[1]}>"))
        self._emit(ms, sender, [me], [], [], subject, "CATEGORY_UPDATES", extra=extra)

    def _list_mail(self, ms: int) -> None:
        rng = self.rng
        _, me = self._pick_member()
        name, addr, list_id = rng.choice(vocab.LISTS)
        sender = _Party(name, addr, False, 0)
        host = addr.split("@")[1]
        extra: list[Header] = [
            ("List-Id", list_id),
            (
                "List-Unsubscribe",
                f"<mailto:leave@{host}>, <https://{host}/unsubscribe?u={rng.getrandbits(32):x}>",
            ),
        ]
        if rng.random() < 0.7:
            extra.append(("Precedence", rng.choice(("bulk", "list"))))
        to = [me] if rng.random() < 0.6 else [sender]
        category = rng.choice(("CATEGORY_FORUMS", "CATEGORY_PROMOTIONS"))
        self._emit(
            ms,
            sender,
            to,
            [],
            [] if me in to else [me],
            f"{name}: " + self._subject(""),
            category,
            extra=extra,
        )

    def _announcement(self, ms: int) -> None:
        rng = self.rng
        _, me = self._pick_member()
        crowd = _dedupe([self._party(p) for p in rng.sample(self.externals, min(len(self.externals), 40))])
        n = rng.randint(26, 40)
        if rng.random() < 0.5:
            # a member announces to many externals
            self._emit(ms, me, crowd[:n], [], [], "Announcement: " + self._subject("Acme"), "CATEGORY_PERSONAL")
        else:
            sender = crowd[0]
            to = [*crowd[1:n], *self.member_parties]
            self._emit(ms, sender, to, [], [], "Invitation: " + self._subject(""), "CATEGORY_PERSONAL")

    def _undisclosed(self, ms: int) -> None:
        _, me = self._pick_member()
        sender = self._party(self.rng.choice(self.externals))
        self._emit(
            ms,
            sender,
            [],
            [],
            [me],
            "Save the date",
            "CATEGORY_PERSONAL",
            to_extra=["undisclosed-recipients:;"],
        )

    def _spam(self, ms: int) -> None:
        _, me = self._pick_member()
        sender = _Party("Prize Center", f"winner{self.rng.randint(1, 999)}@lucky-prize.example", False, 0)
        self._emit(ms, sender, [me], [], [], "You have WON!!!", "SPAM")

    def run(self) -> World:
        self.make_people()
        rng = self.rng
        span = SPAN_DAYS * _DAY_MS
        times = sorted(self.now_ms - 60_000 - int(rng.random() * span) for _ in range(self.size))
        for ms in times:
            r = rng.random()
            if r < 0.30:
                self._outbound(ms)
            elif r < 0.52:
                self._inbound(ms)
            elif r < 0.72:
                if not self._reply(ms):
                    self._outbound(ms)
            elif r < 0.79:
                self._internal(ms)
            elif r < 0.87:
                self._automated(ms)
            elif r < 0.93:
                self._list_mail(ms)
            elif r < 0.945:
                self._announcement(ms)
            elif r < 0.96:
                self._undisclosed(ms)
            else:
                self._spam(ms)
            if len(self.convs) > 400:
                del self.convs[:200]
        for msgs in self.mailboxes.values():
            msgs.sort(key=lambda m: (m.internal_date_ms, m.id))
        return World(
            seed=self.seed,
            now=self.now,
            org_domain=self.org_domain,
            members=self.members,
            member_names=self.member_names,
            people=self.people,
            mailboxes=self.mailboxes,
        )


def _dedupe(parties: list[_Party]) -> list[_Party]:
    seen: set[str] = set()
    out = []
    for p in parties:
        if p.email not in seen:
            seen.add(p.email)
            out.append(p)
    return out


def generate_world(
    seed: int = 0,
    *,
    size: int = 300,
    now: datetime | None = None,
    org_domain: str = "acme.test",
    members: Sequence[str] = ("alice@acme.test", "bob@acme.test", "carol@acme.test"),
) -> World:
    """Generate the same world for the same arguments; `size` is about the number of distinct emails."""
    if not members:
        raise ValueError("a world needs at least one member")
    return _Generator(seed, size, now or DEFAULT_NOW, org_domain, members).run()
