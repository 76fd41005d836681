"""Channel field maps: how a Tmall, JD, Douyin, POS or mini-program record becomes one normalised order.

Each channel is one JSON file in ``customers/channels/`` (format in that folder's README.md); adding a
channel is adding a file. Maps are validated when loaded, so a typo fails loudly naming the file and key
instead of silently rejecting every row of an import.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote_plus

from customers.identity import normalise_identities
from models import IdentityKind, OrderStatus

_LOGGER = logging.getLogger(__name__)

CHANNELS_DIR: Final = Path(__file__).resolve().parent / "channels"
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
# Tried in order when a map names no format: what Chinese back offices and Excel re-saves produce.
DEFAULT_TIME_FORMATS: Final = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "iso")
SPECIAL_TIME_FORMATS: Final = frozenset({"unix", "unix_ms", "iso"})
UNITS: Final = frozenset({"yuan", "fen"})
AMOUNT_KEYS: Final = ("total", "discount", "paid", "refunded")
TIME_KEYS: Final = ("ordered_at", "paid_at", "refunded_at", "cancelled_at")
_TOP_KEYS: Final = frozenset({
    "channel", "label", "description", "timezone", "order_id", "updated_at", "identities", "buyer_name",
    "store_code", "status", "amounts", "coupon", "share_code", "times", "items", "membership",
})
_ITEM_KEYS: Final = frozenset({"rows", "path", "unit", "sku", "name", "category", "quantity", "price", "amount"})
_MEMBERSHIP_KEYS: Final = frozenset({"tier", "points", "next_tier", "next_tier_gap", "unit"})
# Values back offices write for "no time": blank, a dash, zero dates.
_ISO_LIKE: Final = "%Y-%m-%d %H:%M:%S"
_NO_TIME: Final = frozenset({"", "-", "--", "0", "null", "none", "0000-00-00", "0000-00-00 00:00:00"})
# Excel turns long order numbers into 3.41235E+18 when a CSV is opened and saved again.
_SCIENTIFIC: Final = re.compile(r"^\d(\.\d+)?[eE]\+\d+$")
_AMOUNT_JUNK: Final = str.maketrans("", "", ",¥￥元 \u00a0\t")
STATUS_RANK: Final = {
    OrderStatus.CREATED: 0,
    OrderStatus.PAID: 1,
    OrderStatus.PARTIALLY_REFUNDED: 2,
    OrderStatus.REFUNDED: 3,
    OrderStatus.CANCELLED: 3,
}


class FieldMapError(ValueError):
    """A channel map file is malformed; the message names the file and the key."""


class RejectedRecord(ValueError):
    """One record cannot become an order; ``reason`` is a one-line explanation for the rejects file."""

    def __init__(self, reason: str, order_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.order_id = order_id


@dataclass(frozen=True)
class FieldRef:
    """Where a value lives in a record: candidate field names or dotted paths, first non-empty wins."""

    names: tuple[str, ...]
    unit: str = ""
    formats: tuple[str, ...] = ()
    param: str = ""

    @property
    def label(self) -> str:
        """The field names as shown in reject reasons."""
        return "/".join(self.names)


@dataclass(frozen=True)
class ItemsSpec:
    """Where an order's lines are: one row each (``rows``), or a list (or JSON text) at ``path``."""

    rows: bool
    path: FieldRef | None
    sku: FieldRef
    name: FieldRef | None
    category: FieldRef | None
    quantity: FieldRef | None
    price: FieldRef | None
    amount: FieldRef | None


@dataclass(frozen=True)
class MembershipSpec:
    """Member tier and points fields (POS, mini-program)."""

    tier: FieldRef | None
    points: FieldRef | None
    next_tier: FieldRef | None
    next_tier_gap: FieldRef | None


@dataclass(frozen=True)
class FieldMap:
    """One channel's map, validated."""

    channel: str
    label: str
    path: Path
    order_id: FieldRef
    identities: tuple[tuple[IdentityKind, FieldRef], ...]
    status: FieldRef
    status_values: Mapping[str, OrderStatus]
    amounts: Mapping[str, FieldRef | None]
    times: Mapping[str, FieldRef | None]
    updated_at: FieldRef | None = None
    buyer_name: FieldRef | None = None
    store_code: FieldRef | None = None
    coupon: FieldRef | None = None
    share_code: FieldRef | None = None
    items: ItemsSpec | None = None
    membership: MembershipSpec | None = None
    timezone: str = ""

    @property
    def rows_per_item(self) -> bool:
        """True when a flat export has one row per item, order fields repeated."""
        return self.items is not None and self.items.rows

    def order_id_of(self, record: Any) -> str:
        """The channel order id of a record or row group, '' if there is none."""
        first = _first_row(record)
        return _text(_get(first, self.order_id)) if isinstance(first, Mapping) else ""


@dataclass(frozen=True)
class NormalisedItem:
    """One order line; money in fen."""

    sku: str
    name: str
    category: str
    quantity: int
    price_cents: int
    amount_cents: int


@dataclass(frozen=True)
class MembershipUpdate:
    """Tier and points as the channel reported them; None means "not reported"."""

    tier: str | None = None
    points: int | None = None
    next_tier: str | None = None
    next_tier_gap_cents: int | None = None


@dataclass(frozen=True)
class NormalisedOrder:
    """A channel record mapped onto our order model: money in fen, times aware UTC."""

    channel: str
    channel_order_id: str
    identities: list[tuple[IdentityKind, str]]
    status: OrderStatus
    ordered_at: dt.datetime
    buyer_name: str = ""
    store_code: str = ""
    total_cents: int = 0
    discount_cents: int = 0
    paid_cents: int = 0
    refunded_cents: int = 0
    coupon: str = ""
    share_code: str = ""
    paid_at: dt.datetime | None = None
    refunded_at: dt.datetime | None = None
    cancelled_at: dt.datetime | None = None
    # The channel's own "last modified" time, when its records carry one.
    updated_at: dt.datetime | None = None
    items: list[NormalisedItem] = field(default_factory=list)
    membership: MembershipUpdate | None = None
    # Where the record came from ("12" = line 12, "12-14" = rows 12 to 14), for rejects and logs.
    ref: str = field(default="", compare=False)
    # The record as received, kept on the order for audits and re-mapping.
    source: Any = field(default=None, compare=False, repr=False)

    @property
    def as_of(self) -> dt.datetime:
        """How recent this record is: the channel's modification time, else its latest event."""
        if self.updated_at is not None:
            return self.updated_at
        return max(t for t in (self.ordered_at, self.paid_at, self.refunded_at, self.cancelled_at) if t is not None)


# --- loading -----------------------------------------------------------------------------------------


class _Spec:
    """Reads one map file's JSON, raising FieldMapError that names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> FieldMapError:
        return FieldMapError(f"{self.path.name}: {key}: {problem}")

    def check_keys(self, data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
        for key in data:
            if key not in allowed and not key.startswith("_"):
                raise self.fail(f"{where}{key}", f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def ref(self, value: Any, key: str, *, unit: str = "", formats: tuple[str, ...] = (),
            options: frozenset[str] = frozenset()) -> FieldRef:
        opts: Mapping[str, Any] = {}
        if isinstance(value, Mapping):
            self.check_keys(value, frozenset({"field"}) | options, f"{key}.")
            opts, value = value, value.get("field")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "expected a field name, a list of field names, or {\"field\": ...}")
        unit = opts.get("unit", unit)
        if "unit" in options and unit not in UNITS:
            raise self.fail(f"{key}.unit", f"{unit!r} is not a unit (yuan or fen)")
        fmts = opts.get("format", formats)
        if "format" in options:
            fmts = self.formats(fmts, f"{key}.format")
        param = opts.get("param", "")
        if not isinstance(param, str):
            raise self.fail(f"{key}.param", "expected a query parameter name")
        return FieldRef(tuple(value), unit=unit, formats=tuple(fmts), param=param)

    def opt_ref(self, data: Mapping[str, Any], key: str, where: str = "", **kw: Any) -> FieldRef | None:
        value = data.get(key)
        return None if value is None else self.ref(value, f"{where}{key}", **kw)

    def formats(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise self.fail(key, "expected a time format or a list of them")
        for fmt in value:
            if not isinstance(fmt, str) or (fmt not in SPECIAL_TIME_FORMATS and "%" not in fmt):
                raise self.fail(key, f"{fmt!r} is not a time format (a strftime pattern, unix, unix_ms or iso)")
        return tuple(value)

    def section(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, Mapping):
            raise self.fail(key, "expected an object")
        return value


def load_field_map(path: Path) -> FieldMap:
    """Read and validate one channel map file."""
    spec = _Spec(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FieldMapError(f"{path.name}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise FieldMapError(f"{path.name}: not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise FieldMapError(f"{path.name}: expected a JSON object")
    spec.check_keys(data, _TOP_KEYS, "")
    channel = data.get("channel", path.stem)
    if channel != path.stem or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", channel):
        raise spec.fail("channel", f"{channel!r} must equal the file name ({path.stem!r}), lower-case letters/digits")
    tz = data.get("timezone", "")
    if tz:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise spec.fail("timezone", f"{tz!r} is not a known time zone (e.g. Asia/Shanghai)") from None

    identities_raw = data.get("identities")
    if not isinstance(identities_raw, list) or not identities_raw:
        raise spec.fail("identities", "expected a non-empty list of {\"field\": ..., \"kind\": ...}")
    identities = []
    for i, entry in enumerate(identities_raw):
        key = f"identities[{i}]"
        if not isinstance(entry, Mapping):
            raise spec.fail(key, "expected {\"field\": ..., \"kind\": ...}")
        try:
            kind = IdentityKind(entry.get("kind"))
        except ValueError:
            raise spec.fail(f"{key}.kind", f"{entry.get('kind')!r} is not an identity kind "
                            f"({', '.join(k.value for k in IdentityKind)})") from None
        identities.append((kind, spec.ref(entry, key, options=frozenset({"kind"}))))

    status = spec.section(data, "status")
    spec.check_keys(status, frozenset({"field", "values"}), "status.")
    values = status.get("values")
    if not isinstance(values, Mapping) or not values:
        raise spec.fail("status.values", "expected an object of channel status word -> order status")
    status_values: dict[str, OrderStatus] = {}
    for word, target in values.items():
        try:
            status_values[word.strip().lower()] = OrderStatus(target)
        except ValueError:
            raise spec.fail(f"status.values.{word}", f"{target!r} is not an order status "
                            f"({', '.join(s.value for s in OrderStatus)})") from None

    amounts = spec.section(data, "amounts")
    spec.check_keys(amounts, frozenset(AMOUNT_KEYS) | {"unit"}, "amounts.")
    unit = amounts.get("unit", "yuan")
    if unit not in UNITS:
        raise spec.fail("amounts.unit", f"{unit!r} is not a unit (yuan or fen)")
    if "paid" not in amounts:
        raise spec.fail("amounts.paid", "missing: which field holds what the buyer paid")
    money = frozenset({"unit"})
    amount_refs = {k: spec.opt_ref(amounts, k, "amounts.", unit=unit, options=money) for k in AMOUNT_KEYS}

    times = spec.section(data, "times")
    spec.check_keys(times, frozenset(TIME_KEYS) | {"format"}, "times.")
    formats = spec.formats(times["format"], "times.format") if "format" in times else DEFAULT_TIME_FORMATS
    if "ordered_at" not in times:
        raise spec.fail("times.ordered_at", "missing: which field holds when the order was placed")
    when = frozenset({"format"})
    time_refs = {k: spec.opt_ref(times, k, "times.", formats=formats, options=when) for k in TIME_KEYS}

    items = None
    if "items" in data:
        it = spec.section(data, "items")
        spec.check_keys(it, _ITEM_KEYS, "items.")
        rows = it.get("rows", False)
        if not isinstance(rows, bool) or rows == ("path" in it):
            raise spec.fail("items", "give either \"rows\": true (one row per item) or \"path\" (a list)")
        if "sku" not in it:
            raise spec.fail("items.sku", "missing: which field holds the item's SKU")
        item_unit = it.get("unit", unit)
        if item_unit not in UNITS:
            raise spec.fail("items.unit", f"{item_unit!r} is not a unit (yuan or fen)")
        items = ItemsSpec(
            rows=rows,
            path=spec.opt_ref(it, "path", "items."),
            sku=spec.ref(it["sku"], "items.sku"),
            name=spec.opt_ref(it, "name", "items."),
            category=spec.opt_ref(it, "category", "items."),
            quantity=spec.opt_ref(it, "quantity", "items."),
            price=spec.opt_ref(it, "price", "items.", unit=item_unit, options=money),
            amount=spec.opt_ref(it, "amount", "items.", unit=item_unit, options=money),
        )

    membership = None
    if "membership" in data:
        ms = spec.section(data, "membership")
        spec.check_keys(ms, _MEMBERSHIP_KEYS, "membership.")
        ms_unit = ms.get("unit", unit)
        if ms_unit not in UNITS:
            raise spec.fail("membership.unit", f"{ms_unit!r} is not a unit (yuan or fen)")
        membership = MembershipSpec(
            tier=spec.opt_ref(ms, "tier", "membership."),
            points=spec.opt_ref(ms, "points", "membership."),
            next_tier=spec.opt_ref(ms, "next_tier", "membership."),
            next_tier_gap=spec.opt_ref(ms, "next_tier_gap", "membership.", unit=ms_unit, options=money),
        )

    if "order_id" not in data:
        raise spec.fail("order_id", "missing: which field holds the channel's order number")
    label = data.get("label", channel)
    return FieldMap(
        channel=channel,
        label=label if isinstance(label, str) else channel,
        path=path,
        order_id=spec.ref(data["order_id"], "order_id"),
        identities=tuple(identities),
        status=spec.ref(status.get("field"), "status.field"),
        status_values=status_values,
        amounts=amount_refs,
        times=time_refs,
        updated_at=spec.opt_ref(data, "updated_at", formats=formats, options=when),
        buyer_name=spec.opt_ref(data, "buyer_name"),
        store_code=spec.opt_ref(data, "store_code"),
        coupon=spec.opt_ref(data, "coupon"),
        share_code=spec.opt_ref(data, "share_code", options=frozenset({"param"})),
        items=items,
        membership=membership,
        timezone=tz,
    )


def load_field_maps(directory: Path = CHANNELS_DIR) -> dict[str, FieldMap]:
    """Every ``*.json`` map in ``directory``, by channel name."""
    return {m.channel: m for m in (load_field_map(p) for p in sorted(directory.glob("*.json")))}


@functools.cache
def _shipped_maps() -> dict[str, FieldMap]:
    maps = load_field_maps()
    _LOGGER.debug("channel maps loaded: %s", ", ".join(maps))
    return maps


def channels() -> list[str]:
    """Names of the channels that have a map."""
    return sorted(_shipped_maps())


def field_map(channel: str) -> FieldMap:
    """The shipped map of ``channel``; KeyError if there is none."""
    return _shipped_maps()[channel]


# --- values ------------------------------------------------------------------------------------------


def _first_row(record: Any) -> Any:
    if isinstance(record, Sequence) and not isinstance(record, (str, bytes)):
        return record[0] if record else None
    return record


def _lookup(record: Any, name: str) -> Any:
    # Flat rows are keyed by header (which may contain dots); nested JSON is walked by dotted path.
    if isinstance(record, Mapping) and name in record:
        return record[name]
    if "." not in name:
        return None
    value = record
    for part in name.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _get(record: Any, ref: FieldRef | None) -> Any:
    if ref is None:
        return None
    for name in ref.names:
        value = _lookup(record, name)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any) -> str:
    """A cell as clean text: trimmed, with the ="..." and leading ' that keep Excel off long numbers removed."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().lstrip("'").strip()
    if text.startswith('="') and text.endswith('"'):
        text = text[2:-1].strip()
    return text


def _cents(value: Any, ref: FieldRef) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, (Mapping, list)):
        raise RejectedRecord(f"金额无法解析 unparseable amount {ref.label}={value!r}")
    if isinstance(value, int):
        amount = Decimal(value)
    else:
        text = _text(value).translate(_AMOUNT_JUNK)
        if text in ("", "-", "--"):
            return None
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise RejectedRecord(f"金额无法解析 unparseable amount {ref.label}={value!r}") from None
        if not amount.is_finite():
            raise RejectedRecord(f"金额无法解析 unparseable amount {ref.label}={value!r}")
    cents = amount * 100 if ref.unit == "yuan" else amount
    if cents < 0:
        raise RejectedRecord(f"金额为负 negative amount {ref.label}={value!r}")
    if cents != cents.to_integral_value():
        raise RejectedRecord(f"金额精度超过分 amount {ref.label}={value!r} has fractions of a fen ({ref.unit})")
    return int(cents)


def _count(value: Any, ref: FieldRef, what: str) -> int | None:
    if value is None:
        return None
    text = _text(value).replace(",", "")
    if text == "":
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise RejectedRecord(f"{what}无法解析 unparseable {ref.label}={value!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise RejectedRecord(f"{what}无法解析 unparseable {ref.label}={value!r}")
    return int(number)


@functools.lru_cache(maxsize=16)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def _time(value: Any, ref: FieldRef | None, zone: dt.tzinfo) -> dt.datetime | None:
    if ref is None or value is None:
        return None
    text = _text(value)
    if text.lower() in _NO_TIME:
        return None
    for fmt in ref.formats:
        try:
            if fmt in ("unix", "unix_ms"):
                seconds = Decimal(text) / (1000 if fmt == "unix_ms" else 1)
                if not 0 < seconds < 10**10:
                    continue
                return dt.datetime.fromtimestamp(float(seconds), dt.timezone.utc)
            if fmt == "iso" or (fmt == _ISO_LIKE and len(text) == 19):
                when = dt.datetime.fromisoformat(text)  # ~10x faster than strptime, same result
            else:
                when = dt.datetime.strptime(text, fmt)
        except (ValueError, ArithmeticError, OverflowError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)  # exports write the brand's wall-clock time
        return when.astimezone(dt.timezone.utc)
    raise RejectedRecord(f"时间无法解析 unparseable time {ref.label}={value!r} (expected {' or '.join(ref.formats)})")


_PARAM_CACHE: dict[str, re.Pattern[str]] = {}


def _param(text: str, name: str) -> str:
    """A parameter from a URL, a hash route or a bare ``a=1&b=2`` string."""
    pattern = _PARAM_CACHE.get(name)
    if pattern is None:
        pattern = _PARAM_CACHE[name] = re.compile(rf"(?:^|[?&#;]){re.escape(name)}=([^&#;\s]*)")
    match = pattern.search(text)
    return unquote_plus(match.group(1)) if match else ""


# --- normalising -------------------------------------------------------------------------------------


def _items(fmap: FieldMap, rows: Sequence[Mapping[str, Any]]) -> list[NormalisedItem]:
    spec = fmap.items
    if spec is None:
        return []
    if spec.rows:
        lines: list[Any] = list(rows)
    else:
        raw = _get(rows[0], spec.path)
        if isinstance(raw, str):  # an items column holding JSON text
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise RejectedRecord(f"商品明细不是合法 JSON items column {spec.path.label if spec.path else ''} "
                                     "is not valid JSON") from None
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise RejectedRecord(f"商品明细不是列表 items at {spec.path.label if spec.path else ''} is not a list")
        lines = raw
    items = []
    for line in lines:
        if not isinstance(line, Mapping):
            raise RejectedRecord("商品明细格式错误 an item is not an object")
        sku, name = _text(_get(line, spec.sku))[:64], _text(_get(line, spec.name))[:255]
        if not sku and not name:
            continue  # an order row without goods (e.g. a postage-only line)
        quantity = 1
        if spec.quantity is not None:
            counted = _count(_get(line, spec.quantity), spec.quantity, "商品数量")
            quantity = 1 if counted is None else counted
        if quantity <= 0:
            raise RejectedRecord(f"商品数量必须大于 0 item quantity must be > 0, got {quantity} for {sku or name}")
        price = (_cents(_get(line, spec.price), spec.price) if spec.price else None) or 0
        amount = _cents(_get(line, spec.amount), spec.amount) if spec.amount else None
        items.append(NormalisedItem(sku=sku, name=name, category=_text(_get(line, spec.category))[:64],
                                    quantity=quantity, price_cents=price,
                                    amount_cents=price * quantity if amount is None else amount))
    return items


def _membership(fmap: FieldMap, record: Mapping[str, Any]) -> MembershipUpdate | None:
    spec = fmap.membership
    if spec is None:
        return None
    tier = _text(_get(record, spec.tier))[:32] or None
    next_tier = _text(_get(record, spec.next_tier))[:32] or None
    points = _count(_get(record, spec.points), spec.points, "积分") if spec.points else None
    if points is not None and points < 0:
        raise RejectedRecord(f"积分为负 negative points {spec.points.label if spec.points else ''}={points}")
    gap = _cents(_get(record, spec.next_tier_gap), spec.next_tier_gap) if spec.next_tier_gap else None
    if tier is None and points is None and next_tier is None and gap is None:
        return None
    return MembershipUpdate(tier=tier, points=points, next_tier=next_tier, next_tier_gap_cents=gap)


def normalise_with(fmap: FieldMap, record: Any, *, timezone: str = DEFAULT_TIMEZONE, ref: str = "") -> NormalisedOrder:
    """Map one record (or, for one-row-per-item exports, the rows of one order) with ``fmap``."""
    rows: list[Any] = list(record) if isinstance(record, Sequence) and not isinstance(record, (str, bytes)) else [record]
    if not rows or not all(isinstance(r, Mapping) for r in rows):
        raise RejectedRecord("记录不是对象 record is not a JSON object / CSV row")
    first = rows[0]
    order_id = _text(_get(first, fmap.order_id))
    try:
        return _normalise(fmap, rows, order_id, _zone(fmap.timezone or timezone), ref, record)
    except RejectedRecord as exc:
        exc.order_id = exc.order_id or order_id
        raise


def _normalise(fmap: FieldMap, rows: list[Mapping[str, Any]], order_id: str, zone: dt.tzinfo, ref: str,
               source: Any) -> NormalisedOrder:
    first = rows[0]
    if not order_id:
        raise RejectedRecord(f"缺少订单号 missing order id ({fmap.order_id.label})")
    if _SCIENTIFIC.match(order_id):
        raise RejectedRecord(f"订单号被 Excel 改成了科学计数法 order id {order_id!r} was mangled by Excel; "
                             "re-export without opening the file in Excel")
    if len(order_id) > 64:
        raise RejectedRecord(f"订单号过长 order id longer than 64 characters ({fmap.order_id.label})")

    given = [(kind, _text(_get(first, ref_))) for kind, ref_ in fmap.identities]
    identities = normalise_identities([(k, v) for k, v in given if v])
    if not identities:
        shown = ", ".join(f"{r.label}={v!r}" for (_, r), (_, v) in zip(fmap.identities, given) if v)
        fields = ", ".join(r.label for _, r in fmap.identities)
        raise RejectedRecord(
            f"没有有效的买家身份 no usable buyer identity ({shown} is not usable)" if shown
            else f"没有买家身份 no buyer identity (need one of {fields})"
        )

    raw_status = _get(first, fmap.status)
    if raw_status is None:
        raise RejectedRecord(f"缺少订单状态 missing status ({fmap.status.label})")
    status = fmap.status_values.get(_text(raw_status).lower())
    if status is None:
        raise RejectedRecord(f"未知订单状态 unknown status {_text(raw_status)!r} in {fmap.status.label}")

    amounts = {k: (_cents(_get(first, r), r) if r else None) for k, r in fmap.amounts.items()}
    items = _items(fmap, rows)
    paid = amounts["paid"] or 0
    discount = amounts["discount"]
    total = amounts["total"]
    if total is None:
        total = sum(i.amount_cents for i in items) if items else paid + (discount or 0)
    if discount is None:
        discount = max(total - paid, 0)
    refunded = amounts["refunded"] or 0
    # Channels report refunds as a status, an amount, or both: make the two agree.
    if status is OrderStatus.REFUNDED and refunded == 0:
        refunded = paid
    elif refunded and status in (OrderStatus.PAID, OrderStatus.CANCELLED):
        status = OrderStatus.REFUNDED if refunded >= paid else OrderStatus.PARTIALLY_REFUNDED
    if paid and refunded > paid:
        raise RejectedRecord(f"退款金额大于实付金额 refund {refunded / 100:.2f} exceeds paid {paid / 100:.2f}")

    times = {k: _time(_get(first, r), r, zone) for k, r in fmap.times.items()}
    ordered_at = times["ordered_at"] or times["paid_at"]
    if ordered_at is None:
        label = fmap.times["ordered_at"].label if fmap.times["ordered_at"] else "ordered_at"
        raise RejectedRecord(f"缺少下单时间 missing order time ({label})")
    share_raw = _text(_get(first, fmap.share_code))
    share = _param(share_raw, fmap.share_code.param) if fmap.share_code and fmap.share_code.param else share_raw

    return NormalisedOrder(
        channel=fmap.channel,
        channel_order_id=order_id,
        identities=identities,
        status=status,
        ordered_at=ordered_at,
        buyer_name=_text(_get(first, fmap.buyer_name))[:128],
        store_code=_text(_get(first, fmap.store_code))[:64],
        total_cents=total,
        discount_cents=discount,
        paid_cents=paid,
        refunded_cents=refunded,
        coupon=_text(_get(first, fmap.coupon))[:64],
        share_code=share[:32],
        paid_at=times["paid_at"],
        refunded_at=times["refunded_at"],
        cancelled_at=times["cancelled_at"],
        updated_at=_time(_get(first, fmap.updated_at), fmap.updated_at, zone),
        items=items,
        membership=_membership(fmap, first),
        ref=ref,
        source=source,
    )


def normalise_record(channel: str, record: Any, *, timezone: str = DEFAULT_TIMEZONE, ref: str = "") -> NormalisedOrder:
    """Map one channel record (a CSV row, a JSON object, or the rows of one order) to a NormalisedOrder."""
    try:
        fmap = field_map(channel)
    except KeyError:
        raise RejectedRecord(f"未知渠道 unknown channel {channel!r} (known: {', '.join(channels())})") from None
    return normalise_with(fmap, record, timezone=timezone, ref=ref)


def group_records(fmap: FieldMap, numbered: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Yield (ref, record); for one-row-per-item maps, consecutive rows of one order become one list.

    Only consecutive rows are grouped (exports list an order's items together), so memory stays
    bounded on a file of millions of rows; the same order id further down is a re-send of the order.
    """
    if not fmap.rows_per_item:
        yield from numbered
        return
    group: list[Any] = []
    refs: list[str] = []
    key = ""
    for ref, record in numbered:
        rid = _text(_get(record, fmap.order_id)) if isinstance(record, Mapping) else ""
        if group and (not rid or rid != key):
            yield (refs[0] if len(refs) == 1 else f"{refs[0]}-{refs[-1]}"), group
            group, refs = [], []
        if not rid:  # no order id (or not a row at all): on its own, to be rejected with its own line
            yield ref, [record] if isinstance(record, Mapping) else record
            continue
        group.append(record)
        refs.append(ref)
        key = rid
    if group:
        yield (refs[0] if len(refs) == 1 else f"{refs[0]}-{refs[-1]}"), group
