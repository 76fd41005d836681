"""SQLAlchemy models, one module per aggregate; importing this registers them all."""

from models.audit import AuditEntry
from models.base import Base, insert_ignore, utcnow
from models.contact_way import ContactWay
from models.customer import Customer, CustomerIdentity, IdentityKind
from models.follow import FollowRelation, FollowStatus
from models.group import CustomerGroup, GroupMember, GroupStatus
from models.inbox import CallbackEvent, InboxStatus
from models.org import Region, Staff, StaffRole, Store
from models.tag import CustomerTag, Tag, TagGroup, TagSource

__all__ = [
    "AuditEntry", "Base", "CallbackEvent", "ContactWay", "Customer", "CustomerGroup", "CustomerIdentity",
    "CustomerTag", "FollowRelation", "FollowStatus", "GroupMember", "GroupStatus", "IdentityKind",
    "InboxStatus", "Region", "Staff", "StaffRole", "Store", "Tag", "TagGroup", "TagSource", "insert_ignore", "utcnow",
]
