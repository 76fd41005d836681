"""SQLAlchemy models, one module per aggregate; importing this registers them all."""

from models.attribution import OrderAttribution
from models.audit import AuditEntry
from models.base import Base, insert_ignore, utcnow
from models.channel_code import ChannelCode, ChannelCodeAdd, ChannelCodeMember, ChannelKind, DutyRole
from models.commission import CommissionPlan, CommissionStatement, CommissionStatementLine
from models.contact_way import ContactWay
from models.lease import Lease
from models.customer import Customer, CustomerIdentity, IdentityKind
from models.follow import FollowRelation, FollowStatus
from models.group import CustomerGroup, GroupMember, GroupStatus
from models.inbox import CallbackEvent, InboxStatus
from models.media import MediaAsset
from models.merge import CustomerMerge
from models.note import CustomerNote
from models.order import Order, OrderItem, OrderStatus
from models.org import Region, Staff, StaffRole, Store
from models.poster import PosterTemplate
from models.push import (
    DeliveryStatus, Outcome, Push, PushDelivery, PushRecipient, PushRun, PushStatus, RunStatus, apscheduler_jobs,
)
from models.profile import CustomerStats, LifecycleStage, Membership
from models.script import ScriptCategory, ScriptSend, TalkScript
from models.segment import Segment, TagRule
from models.sharing import ContentItem, ContentKind, LinkClick, ShareChannel, ShareLink, Visitor
from models.tag import CustomerTag, Tag, TagGroup, TagSource

__all__ = [
    "Lease",
    "DeliveryStatus", "Outcome", "Push", "PushDelivery", "PushRecipient", "PushRun", "PushStatus", "RunStatus",
    "apscheduler_jobs",
    "ChannelCode", "ChannelCodeAdd", "ChannelCodeMember", "ChannelKind", "DutyRole",
    "CommissionPlan", "CommissionStatement", "CommissionStatementLine",
    "CustomerMerge", "CustomerNote", "MediaAsset", "CustomerStats", "LifecycleStage", "Membership", "Order", "OrderItem", "OrderStatus",
    "OrderAttribution", "ContentItem", "ContentKind", "LinkClick", "PosterTemplate", "ShareChannel", "ShareLink", "Visitor",
    "ScriptCategory", "ScriptSend", "Segment", "TagRule", "TalkScript",
    "AuditEntry", "Base", "CallbackEvent", "ContactWay", "Customer", "CustomerGroup", "CustomerIdentity",
    "CustomerTag", "FollowRelation", "FollowStatus", "GroupMember", "GroupStatus", "IdentityKind",
    "InboxStatus", "Region", "Staff", "StaffRole", "Store", "Tag", "TagGroup", "TagSource", "insert_ignore", "utcnow",
]
