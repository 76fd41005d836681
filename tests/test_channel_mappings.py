"""Channel field maps: a realistic record of every channel maps exactly; bad records say why; bad maps say where."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from customers.mapping import (
    CHANNELS_DIR,
    FieldMapError,
    MembershipUpdate,
    NormalisedItem,
    RejectedRecord,
    channels,
    field_map,
    group_records,
    load_field_map,
    normalise_record,
)
from models import IdentityKind as K
from models import OrderStatus

UTC = dt.timezone.utc


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def tmall_row(**overrides: str) -> dict[str, str]:
    row = {
        "订单编号": '="4012873365120451781"', "买家会员名": "tb_lily88", "收货人姓名": "林丽", "联系手机": "13800138001",
        "订单状态": "交易成功", "总金额": "1,398.00", "店铺优惠": "100.00", "买家实际支付金额": "1,298.00",
        "退款金额": "0.00", "订单创建时间": "2024-05-01 10:12:33", "订单付款时间": "2024-05-01 10:13:02",
        "退款时间": "", "订单关闭时间": "", "优惠券": "TM-618-100",
        "来源链接": "https://detail.tmall.com/item.htm?id=680012345678&scrm_share=G7kQ2p",
        "商家编码": "SKU-SER-30ML", "宝贝标题": "焕颜修护精华液 30ml", "类目": "护肤", "购买数量": "1", "价格": "899.00",
    }
    row.update(overrides)
    return row


JD = {
    "orderId": 289374651201, "pin": "jd_lily_88", "orderState": "FINISHED_L", "orderTotalPrice": "1398.00",
    "sellerDiscount": "100.00", "orderPayment": "1298.00", "orderStartTime": "2024-05-02 09:00:00",
    "paymentConfirmTime": "2024-05-02 09:01:10", "modified": "2024-05-06 18:00:00", "couponCode": "JD-DQ-100",
    "consigneeInfo": {"fullname": "林丽", "mobile": "13800138001"},
    "orderSource": {"landingUrl": "https://item.jd.com/100012043978.html?scrm_share=G7kQ2p"},
    "itemInfoList": [
        {"skuId": "100012043978", "outerSkuId": "SKU-SER-30ML", "skuName": "焕颜修护精华液 30ml",
         "categoryName": "护肤", "jdPrice": "899.00", "itemTotal": "1"},
        {"skuId": "100012043979", "outerSkuId": "", "skuName": "柔润保湿面霜 50g", "categoryName": "护肤",
         "jdPrice": "499.00", "itemTotal": "1"},
    ],
}

DOUYIN = {
    "order_id": "6919876543210987654", "doudian_open_id": "1@#ZmFrZS1vcGVuLWlk", "post_tel": "13800138001",
    "post_receiver": "林丽", "order_status": 5, "order_status_desc": "已完成", "order_amount": 29900,
    "promotion_amount": 3000, "pay_amount": 26900, "create_time": 1714530000, "pay_time": 1714530060,
    "update_time": 1714616400, "c_biz_extra": "scrm_share=D0uY1n&live_room=7321",
    "coupon_info": {"coupon_id": "DY-30"},
    "sku_order_list": [{"sku_id": 1768123, "out_sku_id": "SKU-SER-30ML", "product_name": "焕颜修护精华液 30ml",
                        "first_cname": "美妆护肤", "item_num": 1, "origin_amount": 29900}],
}


def pos_rows() -> list[dict[str, str]]:
    base = {
        "小票号": "BJ001-20240505-0007", "门店编码": "BJ001", "门店名称": "北京三里屯店", "收银时间": "2024/05/05 19:40:20",
        "交易状态": "部分退货", "会员卡号": "M0003005", "会员手机号": "159 0015 9005", "会员姓名": "钱多多",
        "会员等级": "钻石卡", "积分余额": "12,800", "应收金额": "2426.00", "优惠金额": "126.00", "实收金额": "2300.00",
        "退款金额": "129.00", "退货时间": "2024/05/07 14:00:00", "优惠券号": "POS-VIP-126", "导购分享码": "S8mN3q",
    }
    lines = [("6901234567001", "焕颜修护精华液 30ml", "护肤", "2", "899.00", "1798.00"),
             ("6901234567030", "丝绒雾面口红 #07", "彩妆", "1", "129.00", "129.00")]
    return [{**base, "商品条码": s, "商品名称": n, "品类": c, "数量": q, "单价": p, "行金额": a} for s, n, c, q, p, a in lines]


MINIAPP = {
    "out_trade_no": "MP202405010001", "payer": {"openid": "oAbC-123xyz", "unionid": "uXyZ-789abc"},
    "phone_number": "+86 138-0013-8001", "nickname": "Lily", "trade_state": "SUCCESS",
    "amount": {"total": 12900, "discount": 1000, "payer_total": 11900, "refund": 0},
    "create_time": "2024-05-01T10:00:00+08:00", "success_time": "2024-05-01T10:00:30+08:00",
    "update_time": "2024-05-01T10:00:31+08:00", "attach": "scrm_share=Mp4Sh1&store=SH001", "store_code": "SH001",
    "coupon_code": "MP-10",
    "goods_list": [{"goods_id": "g1", "sku_code": "SKU-CRM-50G", "goods_name": "柔润保湿面霜 50g", "category": "护肤",
                    "quantity": 1, "unit_price": 12900}],
    "member": {"level_name": "金卡", "points": 3600, "next_level_name": "钻石卡", "next_level_gap": 20000},
}


def test_every_shipped_map_loads() -> None:
    assert channels() == ["douyin", "jd", "miniapp", "pos", "tmall"]
    assert field_map("pos").rows_per_item and not field_map("jd").rows_per_item


def test_tmall_rows_of_one_order() -> None:
    rows = [tmall_row(), tmall_row(商家编码="SKU-CRM-50G", 宝贝标题="柔润保湿面霜 50g", 价格="499.00")]
    o = normalise_record("tmall", rows, ref="2-3")
    assert (o.channel, o.channel_order_id, o.ref) == ("tmall", "4012873365120451781", "2-3")
    assert o.identities == [(K.TMALL, "tb_lily88"), (K.PHONE, "+8613800138001")]
    assert o.buyer_name == "林丽" and o.status is OrderStatus.PAID
    assert (o.total_cents, o.discount_cents, o.paid_cents, o.refunded_cents) == (139800, 10000, 129800, 0)
    assert o.ordered_at == utc(2024, 5, 1, 2, 12, 33) and o.paid_at == utc(2024, 5, 1, 2, 13, 2)  # +08:00 -> UTC
    assert o.refunded_at is None and o.cancelled_at is None
    assert (o.coupon, o.share_code, o.store_code) == ("TM-618-100", "G7kQ2p", "")
    assert o.items == [NormalisedItem("SKU-SER-30ML", "焕颜修护精华液 30ml", "护肤", 1, 89900, 89900),
                       NormalisedItem("SKU-CRM-50G", "柔润保湿面霜 50g", "护肤", 1, 49900, 49900)]
    assert o.membership is None and o.source == rows


def test_tmall_refund_and_cancel_words() -> None:
    refunded = normalise_record("tmall", tmall_row(订单状态="退款成功", 退款金额="", 退款时间="2024-05-08 11:00:00"))
    assert refunded.status is OrderStatus.REFUNDED and refunded.refunded_cents == 129800  # whole paid amount
    assert refunded.refunded_at == utc(2024, 5, 8, 3, 0, 0) and refunded.as_of == refunded.refunded_at
    partial = normalise_record("tmall", tmall_row(退款金额="100.00"))
    assert partial.status is OrderStatus.PARTIALLY_REFUNDED and partial.refunded_cents == 10000
    closed = normalise_record("tmall", tmall_row(订单状态="交易关闭", 买家实际支付金额="0.00", 订单付款时间="",
                                                 订单关闭时间="2024/05/06 08:00"))
    assert closed.status is OrderStatus.CANCELLED and closed.cancelled_at == utc(2024, 5, 6, 0, 0)
    assert closed.paid_cents == 0 and closed.paid_at is None
    unpaid = normalise_record("tmall", tmall_row(订单状态="等待买家付款", 订单付款时间=""))
    assert unpaid.status is OrderStatus.CREATED and unpaid.paid_at is None


def test_jd_nested_json() -> None:
    o = normalise_record("jd", JD)
    assert o.channel_order_id == "289374651201"  # a JSON number becomes the id text
    assert o.identities == [(K.JD, "jd_lily_88"), (K.PHONE, "+8613800138001")]
    assert (o.total_cents, o.discount_cents, o.paid_cents) == (139800, 10000, 129800)
    assert o.ordered_at == utc(2024, 5, 2, 1, 0, 0) and o.updated_at == utc(2024, 5, 6, 10, 0, 0)
    assert o.as_of == o.updated_at
    assert [i.sku for i in o.items] == ["SKU-SER-30ML", "100012043979"]  # outerSkuId, else skuId
    assert o.share_code == "G7kQ2p" and o.coupon == "JD-DQ-100"
    refunded = normalise_record("jd", {**JD, "orderState": "TRADE_CANCELED", "refundAmount": "1298.00",
                                       "refundTime": "2024-05-07 09:30:00"})
    assert refunded.status is OrderStatus.REFUNDED and refunded.refunded_cents == 129800


def test_douyin_fen_and_unix_times() -> None:
    o = normalise_record("douyin", DOUYIN)
    assert o.identities == [(K.DOUYIN, "1@#ZmFrZS1vcGVuLWlk"), (K.PHONE, "+8613800138001")]
    assert o.status is OrderStatus.PAID and o.buyer_name == "林丽"
    assert (o.total_cents, o.discount_cents, o.paid_cents) == (29900, 3000, 26900)
    assert o.ordered_at == dt.datetime.fromtimestamp(1714530000, UTC)
    assert o.updated_at == dt.datetime.fromtimestamp(1714616400, UTC)
    assert o.items == [NormalisedItem("SKU-SER-30ML", "焕颜修护精华液 30ml", "美妆护肤", 1, 29900, 29900)]
    assert (o.share_code, o.coupon) == ("D0uY1n", "DY-30")
    by_code = normalise_record("douyin", {**DOUYIN, "order_status_desc": "", "order_status": 4})
    assert by_code.status is OrderStatus.CANCELLED


def test_pos_rows_with_member_and_store() -> None:
    o = normalise_record("pos", pos_rows())
    assert o.channel_order_id == "BJ001-20240505-0007" and o.store_code == "BJ001"
    assert o.identities == [(K.POS, "M0003005"), (K.PHONE, "+8615900159005")]
    assert o.status is OrderStatus.PARTIALLY_REFUNDED
    assert (o.total_cents, o.discount_cents, o.paid_cents, o.refunded_cents) == (242600, 12600, 230000, 12900)
    assert o.ordered_at == o.paid_at == utc(2024, 5, 5, 11, 40, 20)
    assert o.refunded_at == utc(2024, 5, 7, 6, 0, 0)
    assert [(i.sku, i.quantity, i.price_cents, i.amount_cents) for i in o.items] == [
        ("6901234567001", 2, 89900, 179800), ("6901234567030", 1, 12900, 12900)]
    assert o.membership == MembershipUpdate(tier="钻石卡", points=12800)
    assert o.share_code == "S8mN3q" and o.coupon == "POS-VIP-126"


def test_miniapp_identities_membership_and_iso_times() -> None:
    o = normalise_record("miniapp", MINIAPP)
    assert o.identities == [(K.MINIAPP_OPENID, "oAbC-123xyz"), (K.UNIONID, "uXyZ-789abc"), (K.PHONE, "+8613800138001")]
    assert (o.total_cents, o.discount_cents, o.paid_cents, o.refunded_cents) == (12900, 1000, 11900, 0)
    assert o.ordered_at == utc(2024, 5, 1, 2, 0, 0) and o.paid_at == utc(2024, 5, 1, 2, 0, 30)
    assert (o.store_code, o.share_code, o.coupon) == ("SH001", "Mp4Sh1", "MP-10")
    assert o.membership == MembershipUpdate(tier="金卡", points=3600, next_tier="钻石卡", next_tier_gap_cents=20000)
    refund = normalise_record("miniapp", {**MINIAPP, "trade_state": "REFUND", "refund_time": "2024-05-03T09:00:00Z",
                                          "amount": {**MINIAPP["amount"], "refund": 11900}})
    assert refund.status is OrderStatus.REFUNDED and refund.refunded_at == utc(2024, 5, 3, 9, 0, 0)


def test_brand_timezone_applies_to_naive_times() -> None:
    o = normalise_record("tmall", tmall_row(), timezone="UTC")
    assert o.ordered_at == utc(2024, 5, 1, 10, 12, 33)


@pytest.mark.parametrize(
    ("channel", "record", "reason"),
    [
        ("tmall", tmall_row(订单编号=""), "缺少订单号 missing order id"),
        ("tmall", tmall_row(买家会员名="", 联系手机=""), "没有买家身份 no buyer identity"),
        ("tmall", tmall_row(买家会员名="", 联系手机="138****0001"), "没有有效的买家身份 no usable buyer identity"),
        ("tmall", tmall_row(买家实际支付金额="-5.00"), "金额为负 negative amount"),
        ("tmall", tmall_row(买家实际支付金额="12O.00"), "金额无法解析 unparseable amount 买家实际支付金额"),
        ("tmall", tmall_row(价格="8.999"), "fractions of a fen"),
        ("tmall", tmall_row(订单创建时间="2024-13-45 10:00:00"), "时间无法解析 unparseable time 订单创建时间"),
        ("tmall", tmall_row(订单创建时间="", 订单付款时间=""), "缺少下单时间 missing order time"),
        ("tmall", tmall_row(订单状态="待评价"), "未知订单状态 unknown status '待评价'"),
        ("tmall", tmall_row(购买数量="0"), "商品数量必须大于 0 item quantity must be > 0"),
        ("tmall", tmall_row(购买数量="-1"), "item quantity must be > 0"),
        ("tmall", tmall_row(退款金额="2000.00"), "退款金额大于实付金额"),
        ("tmall", tmall_row(订单编号="4.01287E+18"), "mangled by Excel"),
        ("douyin", {**DOUYIN, "pay_amount": -100}, "金额为负 negative amount pay_amount"),
        ("douyin", {**DOUYIN, "create_time": "yesterday"}, "unparseable time create_time"),
        ("jd", [1, 2], "record is not a JSON object"),
        ("wechat_shop", {"id": 1}, "未知渠道 unknown channel 'wechat_shop'"),
    ],
)
def test_rejects_say_why(channel: str, record: Any, reason: str) -> None:
    with pytest.raises(RejectedRecord) as exc:
        normalise_record(channel, record)
    assert reason in exc.value.reason
    assert "\n" not in exc.value.reason
    if channel == "tmall" and record.get("订单编号"):
        assert exc.value.order_id == record["订单编号"].strip('="')


def test_rows_are_grouped_by_consecutive_order_id() -> None:
    a1, a2, b = tmall_row(), tmall_row(商家编码="X"), tmall_row(订单编号="B")
    groups = list(group_records(field_map("tmall"), [("2", a1), ("3", a2), ("4", tmall_row(订单编号="")), ("5", b),
                                                      ("6", a1)]))
    assert [ref for ref, _ in groups] == ["2-3", "4", "5", "6"]
    assert groups[0][1] == [a1, a2] and groups[3][1] == [a1]  # the same id further down: a re-send
    jd = list(group_records(field_map("jd"), [("1", JD), ("2", JD)]))
    assert jd == [("1", JD), ("2", JD)]


def _write_map(tmp_path: Path, name: str, **changes: Any) -> Path:
    data = json.loads((CHANNELS_DIR / "pos.json").read_text(encoding="utf-8"))
    data["channel"] = name
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = data
        for p in parents:
            target = target[p]
        if value is None:
            del target[last]
        else:
            target[last] = value
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status__values": {"已结账": "payed"}}, "status.values.已结账: 'payed' is not an order status"),
        ({"identities": [{"field": "会员卡号", "kind": "weibo"}]}, "identities[0].kind: 'weibo' is not an identity kind"),
        ({"amounts__unit": "jiao"}, "amounts.unit: 'jiao' is not a unit"),
        ({"amounts__paid": None}, "amounts.paid: missing"),
        ({"times__format": "YYYY-MM-DD"}, "times.format: 'YYYY-MM-DD' is not a time format"),
        ({"order_id": None}, "order_id: missing"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"items__path": "lines"}, "items: give either"),
        ({"channel": "other"}, "channel: 'other' must equal the file name"),
    ],
)
def test_bad_maps_name_file_and_key(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = _write_map(tmp_path, "newpos", **changes)
    with pytest.raises(FieldMapError) as exc:
        load_field_map(path)
    assert str(exc.value).startswith("newpos.json: ") and message in str(exc.value)


def test_a_new_channel_is_just_a_file(tmp_path: Path) -> None:
    fmap = load_field_map(_write_map(tmp_path, "outlet", _comment="the outlet stores' POS, same export"))
    assert fmap.channel == "outlet" and fmap.rows_per_item
    broken = tmp_path / "bad.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(FieldMapError, match="bad.json: not valid JSON"):
        load_field_map(broken)
